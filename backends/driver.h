/* The driver vtable: the only thing the core knows about a driver, and the only core functions a
 * driver may call. A driver waits for readiness and reports it; it never runs user code, never owns
 * timers or the ready queue, and never decides what a callback means. */
#ifndef ALOOP_DRIVER_H
#define ALOOP_DRIVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "aloop.h"
#include "op.h"

/* Interest and readiness bits exchanged between the core and the drivers. */
enum { ALOOP__READ = 1u, ALOOP__WRITE = 2u };

struct aloop__driver {
  const char *name;
  int max_fd;           /* fds >= max_fd cannot be watched (0: no limit of the driver's own) */
  size_t state_size;    /* bytes the core allocates (zeroed) for the driver's per-loop state */
  size_t fd_priv_size;  /* bytes the core keeps (zeroed, never moved) per fd for the driver */

  /* Can this driver work here? 0, or a negative errno with the reason in words in `why`. */
  int (*probe)(char *why, size_t n);
  /* Set up `state`. 0, or a negative errno with the reason in words. */
  int (*init)(aloop_loop *loop, void *state, char *why, size_t n);
  void (*fini)(aloop_loop *loop, void *state);
  /* Interest in fd changes from old_ev to new_ev (ALOOP__READ|ALOOP__WRITE bits; new_ev may be 0).
   * Called only from the core's change list, once per fd per iteration at most. */
  int (*watch)(aloop_loop *loop, void *state, int fd, void *fd_priv, unsigned old_ev,
               unsigned new_ev);
  /* Wait once for readiness, at most timeout_ns (-1: until something happens), reporting ready fds
   * with aloop__fd_event(). Returns 0 or a negative errno (EINTR is not an error: return 0). The
   * system call that waits goes between aloop__wait_begin and aloop__wait_end, and nothing else. */
  int (*poll)(aloop_loop *loop, void *state, int64_t timeout_ns);
  /* Optional: a word for the kernel mechanism in use (libev: "epoll"), or NULL. */
  const char *(*detail)(aloop_loop *loop, void *state);

  /* Optional, for embedding (aloop_backend_fd): an fd that is readable whenever a poll with
   * timeout 0 would report something, and whose readiness wakes a poll(2) on it; or a negative
   * errno (-ALOOP_EUNAVAIL with words through aloop__report if the driver has none it can trust).
   * The driver owns it. Without this entry the core answers -ALOOP_EUNAVAIL. */
  int (*backend_fd)(aloop_loop *loop, void *state);
  /* Optional, for embedding (aloop_backend_timeout): whether the driver holds requests the kernel
   * has not been handed yet (the next poll hands them over). While it does, its fd cannot speak
   * for them, so the host must not sleep. NULL: the driver never holds any back. */
  bool (*holds_requests)(aloop_loop *loop, void *state);
  /* Optional: hand the kernel the requests queued so far, now, without waiting for anything.
   * The core calls it during a long round of ready callbacks (see run_ready in src/loop.c), so
   * that what an early callback wrote is not held back until the round ends. */
  void (*flush)(aloop_loop *loop, void *state);

  /* Completion drivers only. op_kinds: the ALOOP__OP_BIT()s of the operations the driver completes
   * itself (the core performs the others on readiness). submit queues one (0, or a negative errno
   * and the core completes the op with it); cancel asks the kernel to stop it. Either way the
   * driver later reports the op's one completion with aloop__op_done(). */
  uint32_t op_kinds;
  int (*submit)(aloop_loop *loop, void *state, struct aloop__op *op);
  void (*cancel)(aloop_loop *loop, void *state, struct aloop__op *op);
  /* aloop_close: stop everything the driver does on fd; `ops` operations of it are in flight. */
  void (*cancel_fd)(aloop_loop *loop, void *state, int fd, uint32_t ops);
};

/* From init: this loop's driver will not complete these kinds (ALOOP__OP_BIT()s of op_kinds) after
 * all, as the kernel lacks them or ALOOP_IO_URING says so; the core performs them itself. */
void aloop__decline_op_kinds(aloop_loop *loop, uint32_t kinds);
/* Readiness in: fd is ready for `revents`. Cheap; callbacks run after poll returns. */
void aloop__fd_event(aloop_loop *loop, int fd, unsigned revents);
/* Around the system call that may block in poll (aloop_set_wait_hooks: the host lets go of its
 * lock in between, so no callback may run there): began = aloop__wait_begin(loop, timeout_ns);
 * <the wait>; aloop__wait_end(loop, began). Nothing happens for a timeout of 0. */
bool aloop__wait_begin(aloop_loop *loop, int64_t timeout_ns);
void aloop__wait_end(aloop_loop *loop, bool began);
/* fd is no longer valid (closed while watched): the core reports it and drops its watchers. */
void aloop__fd_invalid(aloop_loop *loop, int fd, int err);
/* The per-fd bytes the core keeps for the driver (fd_priv_size of them), or NULL if fd is unknown. */
void *aloop__fd_priv(aloop_loop *loop, int fd);
/* Whether the loop was made to run inside a host's loop (aloop_options.embedded): a driver with
 * several setups picks one whose backend_fd can wake the host. */
bool aloop__embedded(const aloop_loop *loop);
/* Report through the loop's error handler. */
void aloop__report(aloop_loop *loop, int code, int fd, const char *source, const char *fmt, ...)
    ALOOP_PRINTF(5, 6);

/* The drivers compiled in, in `auto` preference order (backends/registry.c). */
extern const struct aloop__driver *const aloop__drivers[];
extern const size_t aloop__ndrivers;

extern const struct aloop__driver aloop__driver_select;
#ifdef ALOOP_HAVE_LIBEV
extern const struct aloop__driver aloop__driver_libev;
#endif
#ifdef ALOOP_HAVE_LIBURING
extern const struct aloop__driver aloop__driver_io_uring;
#endif

/* Nanoseconds to a timeval/timespec-style pair, rounded up so that a wait never ends early. */
static inline int64_t aloop__ns_to_us_ceil(int64_t ns) { return (ns + 999) / 1000; }

#endif /* ALOOP_DRIVER_H */
