/* The loop's internal state, shared by the files of src/. Nothing here is exported; drivers see
 * only backends/driver.h. */
#ifndef ALOOP_CORE_H
#define ALOOP_CORE_H

#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "aloop.h"
#include "driver.h"
#include "heap.h"
#include "op.h"

#define ALOOP__ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* One stream read on the readiness path, at most: 64 KiB, as libuv and Node. Every byte read is
 * handed to the protocol, which may only pause after the fact, so this is also what a connection
 * whose peer never reads can take beyond its limits in one go (256 KiB made a paused stream hold
 * three times its limit). */
#define ALOOP__READ_BUFFER (64 * 1024)
/* At most this many 16 KiB write chunks wait for reuse per loop (512 KiB). */
#define ALOOP__SPARE_CHUNKS 32

/* A scheduled callback. Handles live in slabs owned by the loop and are never returned to malloc
 * before aloop_free, so a stale aloop_handle can always be compared safely by its seq. */
enum aloop__handle_state { H_FREE, H_READY, H_TIMER, H_CANCELLED };

struct aloop__handle {
  aloop_cb cb;
  void *arg;
  uint64_t seq;                 /* changes every time the slot is reused; also the FIFO tie-break */
  int64_t when;                 /* timers: deadline in aloop_time() nanoseconds */
  struct aloop__handle *next;   /* ready queue or free list */
  uint32_t heap_index;          /* position in the timer heap while H_TIMER */
  uint8_t state;
};

/* A handle FIFO threaded through handle->next. */
struct aloop__queue {
  struct aloop__handle *head, **tail;
  size_t len;
};

/* Per-fd record. Stored in fixed-size chunks so its address never changes: drivers keep pointers to
 * their fd_priv bytes (libev links its ev_io watchers into its own lists). */
struct aloop__fd {
  aloop_io_cb reader, writer;
  void *reader_arg, *writer_arg;
  uint8_t events;      /* interest wanted now */
  uint8_t registered;  /* interest the driver was last told */
  uint8_t revents;     /* readiness reported in this iteration, not yet dispatched */
  bool in_changes, in_pending, internal;
  bool forget;         /* interest fell to 0 since the driver was told: it must forget the fd first */
  struct aloop__op_queue read_ops, write_ops; /* operations waiting for readiness, in order */
  uint32_t native_ops; /* operations in a completion driver's hands */
  /* followed by the driver's fd_priv_size bytes, aligned to max_align_t */
};

#define ALOOP__FD_CHUNK 256 /* fds per chunk: a page or two of records, never moved once allocated */

struct aloop__fd_table {
  unsigned char **chunks;  /* chunks[fd / ALOOP__FD_CHUNK], NULL until first used */
  size_t nchunks;
  size_t stride;           /* sizeof(struct aloop__fd) + fd_priv_size, aligned */
  int *changes;            /* fds whose interest changed since the driver was last told */
  size_t nchanges, changes_cap;
  int *pending;            /* fds with readiness to dispatch */
  size_t npending, pending_cap;
  size_t user_fds;         /* fds with a user reader or writer (for stats) */
};

struct aloop__ts_call {
  aloop_cb cb;
  void *arg;
};

struct aloop__signal {
  aloop_cb cb;
  void *arg;
  bool installed;
  struct sigaction previous;
};

/* One kind of report being rate-limited (error.c): its first report went out in words at the
 * start of the window; later ones in the window are counted, the last one's words kept. */
struct aloop__report_kind {
  const char *fmt;            /* with source and code: the kind (fmt's address is the call site;
                                 it is compared, never read) */
  char source[32];            /* a copy: a source may be a task's name, gone before the summary */
  int code, fd;
  int64_t window_end;
  uint64_t held;
  char last[256];
};
#define ALOOP__REPORT_KINDS 8

struct aloop_loop {
  const struct aloop__driver *drv;
  void *drv_state;
  uint32_t op_kinds; /* the driver's op_kinds less what its init declined for this loop */

  struct aloop__queue ready;
  struct aloop__heap timers;
  struct aloop__handle *free_handles;
  void **slabs;
  size_t nslabs;
  uint64_t next_seq;

  struct aloop__fd_table fds;

  /* Thread-safe calls and signals wake the loop through one eventfd, written only when
   * wake_pending flips from 0 to 1 (so a burst of calls costs one write and one read). */
  int wake_fd;
  atomic_int wake_pending;
  pthread_mutex_t ts_lock;
  struct aloop__ts_call *ts_calls;
  size_t ts_len, ts_cap;

  struct aloop__signal *signals; /* NSIG entries, allocated on first use */
  size_t nsignals;

  struct aloop__executor *executor; /* created on first use */
  struct aloop__task *task_pool;     /* finished tasks whose stacks can be reused */
  struct aloop__task *tasks;         /* tasks not finished (their stacks go at aloop_free) */
  size_t task_pool_len;
  size_t live_futures, live_tasks, live_ops;
  unsigned char *read_buf; /* ALOOP__READ_BUFFER bytes for stream reads on the readiness path */
  /* Sent write chunks of the smallest size, for the next write of any transport (transport.c):
   * a connection that goes quiet holds none, and a busy loop allocates none per message. */
  void *spare_chunks[ALOOP__SPARE_CHUNKS];
  unsigned nspare_chunks;

  aloop_process *sigchld_children; /* process.c: children watched through SIGCHLD (no pidfds) */

  bool running, stopping;
  bool embedded; /* aloop_options.embedded: a host waits on the driver's fd */
  aloop_error_fn error_fn;
  void *error_arg;
  uint64_t iterations, errors;
  int64_t report_interval;
  struct aloop__report_kind report_kinds[ALOOP__REPORT_KINDS];
  aloop_handle report_timer;  /* delivers the summaries due; internal, not in aloop_get_stats */
  bool report_timer_armed;
  bool poll_failed; /* the driver's wait failed for good: said once (loop.c) */
  /* aloop_set_wait_hooks: run around a poll that may block (loop.c) */
  void (*wait_before)(void *arg);
  void (*wait_after)(void *arg);
  void *wait_arg;
};

/* handle.c */
struct aloop__handle *aloop__handle_new(aloop_loop *loop, aloop_cb cb, void *arg);
void aloop__handle_release(aloop_loop *loop, struct aloop__handle *h);
void aloop__queue_init(struct aloop__queue *q);
void aloop__queue_push(struct aloop__queue *q, struct aloop__handle *h);
int aloop__handles_init(aloop_loop *loop);
void aloop__handles_fini(aloop_loop *loop);
/* Move timers due at `now` to the ready queue. */
void aloop__timers_collect(aloop_loop *loop, int64_t now);
int64_t aloop__now(void);

/* fd.c */
int aloop__fds_init(aloop_loop *loop);
void aloop__fds_fini(aloop_loop *loop);
void aloop__fds_apply_changes(aloop_loop *loop);
void aloop__fds_dispatch(aloop_loop *loop);
/* A reader of the loop's own on fd (not counted as the user's, not removable by
 * aloop_remove_reader); unwatch drops it again (aloop_close drops it too). */
int aloop__fd_watch_internal(aloop_loop *loop, int fd, aloop_io_cb reader, void *arg);
void aloop__fd_unwatch_internal(aloop_loop *loop, int fd);

/* wakeup.c */
int aloop__wakeup_init(aloop_loop *loop);
void aloop__wakeup_fini(aloop_loop *loop);
void aloop__wake(aloop_loop *loop); /* async-signal-safe */

/* signal.c */
void aloop__signals_dispatch(aloop_loop *loop); /* on the loop, after a wake-up */
void aloop__signals_fini(aloop_loop *loop);

/* future.c: for the layers that complete futures */
struct aloop__future_work {
  void (*cancel)(aloop_future *future, void *arg); /* asks the work to stop; it finishes later */
  void *arg;
};
void aloop__future_set_work(aloop_future *f, void (*cancel)(aloop_future *, void *), void *arg);
bool aloop__future_cancel_requested(const aloop_future *f);
/* Complete with an outcome (-ECANCELED: cancelled) and a message (NULL: none). 0 or -ALOOP_EDONE. */
int aloop__future_finish(aloop_future *f, int64_t outcome, const char *message);

/* executor.c: a job on the pool. fn(arg) runs on a worker; its return value lands in result. */
struct aloop__job {
  aloop_job_fn fn;
  void *arg;
  int64_t result;
  aloop_future *future; /* aloop_run_in_executor's jobs */
  /* Optional, on the loop thread once fn returned: turn the result into the future's outcome. */
  void (*complete)(struct aloop__job *job);
  void (*cleanup)(struct aloop__job *job); /* optional: free what the request owns */
  /* The core's own jobs (no future): called on the loop thread once fn returned; the job is then
   * its owner's again. cleanup, if set, is what aloop_free does with one that never ran. */
  void (*finished)(struct aloop__job *job);
  bool started;
  struct aloop__job *next;
};
/* Queue one of the core's jobs (finished set). 0, or -ENOMEM / -EAGAIN (no thread could start). */
int aloop__executor_start(aloop_loop *loop, struct aloop__job *job);
/* Drop a queued job no thread has taken yet: true if it was dropped (finished will not be called). */
bool aloop__executor_unqueue(aloop_loop *loop, struct aloop__job *job);
void aloop__executor_drain(aloop_loop *loop); /* completed jobs: on the loop, after a wake-up */
void aloop__executor_fini(aloop_loop *loop);

/* task.c */
void aloop__tasks_fini(aloop_loop *loop);

/* fd.c, for op.c */
struct aloop__fd *aloop__fd_record(aloop_loop *loop, int fd); /* created if needed; NULL: ENOMEM */
/* Recompute fd's interest from its watchers and parked operations. `forget`: the caller may close
 * the fd now, so the driver must drop what it holds before watching again (see fd.c). */
int aloop__fd_update_interest(aloop_loop *loop, int fd, struct aloop__fd *f, bool forget);

/* transport.c, for server.c: a server's link to each connection it accepted. `lost` runs once,
 * after the protocol's connection_lost, just before the transport is freed. */
struct aloop__conn {
  struct aloop__conn *prev, *next;
  void (*lost)(struct aloop__conn *conn);
  void *owner;
};
struct aloop__conn *aloop__transport_conn(aloop_transport *t);
aloop_transport *aloop__conn_transport(struct aloop__conn *conn);
/* For a server that makes the protocol's ctx only once the transport exists (so that a ctx is
 * never made for a connection that cannot have a transport): set it before connection_made, or
 * discard the transport (closed, and the protocol never hears of it). */
void aloop__transport_set_ctx(aloop_transport *t, void *ctx);
void aloop__transport_discard(aloop_transport *t);
/* The peer's address as accept gave it, so peername needs no syscall. */
void aloop__transport_set_peer(aloop_transport *t, const struct sockaddr_storage *addr,
                               socklen_t len);

/* server.c, for stream.c: a server that also frees arg (with arg_free) when it is freed. Either
 * host/port or path (a Unix socket). */
aloop_future *aloop__create_server(aloop_loop *loop, const aloop_protocol *proto,
                                   aloop_ctx_factory factory, void *arg, void (*arg_free)(void *),
                                   const char *host, int port, const char *path,
                                   const aloop_server_options *opts);
/* server.c, for stream.c: the server that accepted t (NULL if none); a hold keeps the server's
 * wait_closed from completing (a connection's task still running). */
aloop_server *aloop__server_of(aloop_transport *t);
void aloop__server_hold(aloop_server *s, bool hold);
/* server.c, for stream.c: connect and give the connection a transport with proto and ctx. If it
 * never gets one, ctx_free(ctx) runs. With `connected`, it is told the transport at once and the
 * future's data is ctx instead of the transport. */
aloop_future *aloop__connect(aloop_loop *loop, const aloop_protocol *proto, void *ctx,
                             void (*ctx_free)(void *), void (*connected)(void *, aloop_transport *),
                             const char *host, int port, const char *path,
                             const aloop_connect_options *opts);

/* tls.c: give t a TLS layer (its handshake starts when t is made); told (may be NULL) hears once
 * how the handshake ended. 0, -EINVAL (a client context for a server...) or -ENOMEM. */
int aloop__tls_attach(aloop_transport *t, aloop_tls_context *c, bool server,
                      const char *server_hostname,
                      void (*told)(aloop_transport *t, int err, const char *why, void *arg),
                      void *told_arg);
aloop_tls_context *aloop__tls_context_ref(aloop_tls_context *c);
/* A client's handshake, for the connecting task: done when the handshake is; a failure silences
 * the protocol (the connect's caller hears instead). */
aloop_future *aloop__tls_connect(aloop_transport *t, aloop_tls_context *c,
                                 const char *server_hostname);

/* error.c */
void aloop__reports_fini(aloop_loop *loop); /* the summaries still owed, before the loop goes */
void aloop__vreport(aloop_loop *loop, int code, int fd, const char *source, const char *fmt,
                    va_list ap) ALOOP_PRINTF(5, 0);
void aloop__set_why(char *why, size_t n, const char *fmt, ...) ALOOP_PRINTF(3, 4);

/* backends/registry.c: find, probe and initialise the named driver ("auto": the first that works);
 * sets loop->drv and loop->drv_state. 0, or a negative error with the reason in words. */
int aloop__driver_start(aloop_loop *loop, const char *name, char *why, size_t n);
void aloop__driver_stop(aloop_loop *loop);

#endif /* ALOOP_CORE_H */
