/* aloop: an event loop for C in the manner of Python's asyncio, with interchangeable drivers.
 *
 * This header is the whole public contract. Every name is aloop_*; everything else is internal.
 * Conventions, for every function below unless its comment says otherwise:
 *   - Functions that can fail return 0 (or a count) on success and a negative errno value on failure;
 *     aloop_strerror() turns it into words. aloop also has a few codes of its own (ALOOP_E*), all
 *     outside the errno range.
 *   - A loop is used from the thread that runs it. The only exception is aloop_call_soon_threadsafe().
 *   - The loop never takes ownership of a callback's argument: it is passed back as given.
 */
#ifndef ALOOP_H
#define ALOOP_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(ALOOP_BUILDING) && defined(__GNUC__)
#define ALOOP_API __attribute__((visibility("default")))
#else
#define ALOOP_API
#endif

#if defined(__GNUC__)
#define ALOOP_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define ALOOP_PRINTF(fmt, args)
#endif

typedef struct aloop_loop aloop_loop;

/* ---- Errors ------------------------------------------------------------------------------------ */

/* aloop's own error codes; functions return them negated, like errno values. */
enum {
  ALOOP_EBASE = 0x10000,
  ALOOP_ERUNNING,    /* the loop is already running (aloop_run inside a callback, or twice) */
  ALOOP_EBACKEND,    /* no driver by that name is compiled in */
  ALOOP_EUNAVAIL,    /* the driver cannot work on this machine, or cannot do what was asked */
  ALOOP_EFDLIMIT,    /* the fd is above what this driver can watch (select: FD_SETSIZE) */
  ALOOP_ESTALE,      /* the handle has already run or was cancelled */
  ALOOP_ESIGBUSY,    /* another loop in this process handles that signal */
  ALOOP_EDONE,       /* the future is already done */
  ALOOP_EPENDING,    /* the future is not done yet */
  ALOOP_EADDRINFO,   /* name resolution failed (the message says how) */
  ALOOP_EINCOMPLETE, /* the stream ended before the bytes asked for (streams) */
  ALOOP_ELIMIT,      /* a line or record is longer than the limit (streams) */
  ALOOP_ETLS,        /* TLS failed: a handshake, a certificate, a record (the message says why) */
};

/* Words for an error code (negative or positive); never NULL, never freed by the caller. */
ALOOP_API const char *aloop_strerror(int err);

/* What the loop reports to its error handler: something went wrong that no caller is waiting to hear
 * about (a driver failure, an fd closed while watched, an error a callback chose to report). */
typedef struct aloop_error_info {
  int code;            /* negative errno or -ALOOP_E*; 0 if none applies */
  int fd;              /* the fd concerned, or -1 */
  const char *source;  /* who reports: "select", "signal", "callback", ... */
  const char *message; /* one line, no trailing newline */
  /* 0 for a report in its own words. Otherwise this is a summary: `repeats` more reports of the
   * same kind were held back in the last interval (see aloop_set_report_interval) and message is
   * the last of them. */
  uint64_t repeats;
} aloop_error_info;

typedef void (*aloop_error_fn)(aloop_loop *loop, const aloop_error_info *info, void *arg);

/* Replace the loop's error handler; fn == NULL restores the default, which prints one line to stderr:
 *   aloop: <source>: <message>: <aloop_strerror(code)> (fd N)
 * and for a summary of held-back reports:
 *   aloop: <source>: N more like this in the last S s; the last: <message>: <strerror> (fd N) */
ALOOP_API void aloop_set_error_handler(aloop_loop *loop, aloop_error_fn fn, void *arg);

/* Reports of one kind (the same source, code and place in the code: "fd too high" for every
 * connection above select's limit, say) are rate-limited, so a flood of one fault cannot flood the
 * log or slow the loop down: the first is delivered in words, the next ones within `interval_ns`
 * are counted, and one summary per interval says how many there were (aloop_error_info.repeats)
 * with the last one's words. Summaries still owed are delivered by aloop_free. Default:
 * ALOOP_REPORT_INTERVAL_DEFAULT; 0 delivers every report. */
#define ALOOP_REPORT_INTERVAL_DEFAULT (10 * INT64_C(1000000000))
ALOOP_API void aloop_set_report_interval(aloop_loop *loop, int64_t interval_ns);

/* Report an error through the loop's handler (for callbacks that have nobody else to tell). The loop
 * keeps running. fd may be -1. Rate-limited per call site, as above. */
ALOOP_API void aloop_report_error(aloop_loop *loop, int code, int fd, const char *fmt, ...)
    ALOOP_PRINTF(4, 5);

/* ---- Drivers ----------------------------------------------------------------------------------- */

/* What aloop_list_backends() says about one compiled driver. */
typedef struct aloop_backend_info {
  const char *name;  /* "io_uring", "libev", "select" */
  int available;     /* 1 if it works on this machine */
  int max_fd;        /* highest fd it can watch plus one, or 0 for no limit of its own */
  char reason[160];  /* when !available: why not, in words */
} aloop_backend_info;

/* Fill up to `max` entries in `auto` preference order; returns how many drivers are compiled in
 * (which may be more than max). Probing may open and close a kernel object per driver. */
ALOOP_API size_t aloop_list_backends(aloop_backend_info *out, size_t max);

/* ---- Loop lifetime ----------------------------------------------------------------------------- */

typedef struct aloop_options {
  size_t size;         /* sizeof(aloop_options): lets the struct grow without breaking callers */
  const char *backend; /* "select", "libev", "io_uring" or "auto"; NULL: $ALOOP_BACKEND, else auto */
  char *error;         /* optional: on failure aloop_new writes why here, in words */
  size_t error_size;
  /* Nonzero: the loop will run inside another program's loop (aloop_backend_fd), so each driver
   * sets up in a way whose fd can wake that host (io_uring: cooperative task work rather than a
   * single-issuer ring with deferred task work, which cannot). */
  int embedded;
} aloop_options;

/* Create a loop. opts may be NULL. On failure returns NULL with errno set (EINVAL for a malformed
 * options struct, ALOOP_EBACKEND for an unknown name, ALOOP_EUNAVAIL when the named driver cannot work
 * here, ENOMEM, or what the kernel said) and, if opts->error is set, the reason in words. `auto` picks
 * the first driver that works in the order io_uring, libev, select, and says once per process on
 * stderr when it had to skip one. */
ALOOP_API aloop_loop *aloop_new(const aloop_options *opts);

/* Free the loop, its pending callbacks and timers, and restore the signal dispositions it changed.
 * Tasks still suspended are discarded with their stacks (their code never runs again); release
 * every future you hold first. Returns -ALOOP_ERUNNING (and frees nothing) if called from inside
 * the running loop. The fds it watched are not closed: they belong to the caller. */
ALOOP_API int aloop_free(aloop_loop *loop);

/* The name of the driver this loop runs on ("select", "libev", "io_uring"). */
ALOOP_API const char *aloop_backend_name(const aloop_loop *loop);

/* What the driver runs on underneath, in a few words, or "" (libev: the kernel mechanism it
 * picked, e.g. "epoll"; io_uring: the ring setup the kernel accepted). */
ALOOP_API const char *aloop_backend_detail(const aloop_loop *loop);

/* ---- Running ----------------------------------------------------------------------------------- */

/* Run until aloop_stop(). Returns 0 after a stop, -ALOOP_ERUNNING if the loop is already running. If
 * aloop_stop() was called before, runs one iteration (polling without waiting) and returns.
 * If the driver cannot wait any more, returns its error (reported once, in words) instead of
 * spinning: so with io_uring's single-issuer ring (the default where the kernel has it), which
 * belongs to the first thread that ran the loop, a run on another thread gives -EEXIST
 * (ALOOP_IO_URING=setup=cooperative lets a loop change threads). */
ALOOP_API int aloop_run(aloop_loop *loop);

/* Run one iteration, waiting at most timeout_ns for I/O if nothing is ready (-1: no limit, 0: do not
 * wait). Returns the number of callbacks run, or a negative error (-ALOOP_ERUNNING, or the driver's
 * as for aloop_run, from every later call too). While a stop
 * is pending (aloop_stop() called and no aloop_run consumed it) it does not wait. */
ALOOP_API int aloop_run_once(aloop_loop *loop, int64_t timeout_ns);

/* Make aloop_run() return once the current iteration's callbacks have run. */
ALOOP_API void aloop_stop(aloop_loop *loop);

/* Hooks for a host that runs aloop under a lock of its own (Python's interpreter lock): before(arg)
 * is called right before the driver's wait (the system call that sleeps) whenever it may block
 * (its timeout is not 0), after(arg) right after it returns, on the loop's thread, so the host can
 * let other threads run while aloop sleeps. No callback of the loop's runs in between (io_uring's
 * completions, which call protocols, come after). A poll that does not wait (ready callbacks,
 * aloop_run_once(loop, 0)) calls neither. The hooks must not call into the loop. Both NULL (or
 * either) removes them. */
ALOOP_API void aloop_set_wait_hooks(aloop_loop *loop, void (*before)(void *arg),
                                    void (*after)(void *arg), void *arg);

/* ---- Embedding in another program's loop ------------------------------------------------------- */

/* A program that already runs a loop (a GUI toolkit's, another library's) hosts aloop with these
 * two and aloop_run_once(loop, 0):
 *
 *   for (;;) {                                       // the host's loop, one turn
 *     int64_t ns = aloop_backend_timeout(loop);     // after every aloop call, before sleeping
 *     int ms = ns < 0 ? -1 : (int)((ns + 999999) / 1000000);   // round up: never early
 *     struct pollfd p = {.fd = aloop_backend_fd(loop), .events = POLLIN};
 *     poll(&p, 1, ms);                               // with the host's own fds
 *     aloop_run_once(loop, 0);                       // whatever woke the host
 *   }
 *
 * with a loop made by aloop_new() with aloop_options.embedded set. Nothing is lost between the
 * host's poll and aloop's turn: what arrives meanwhile either keeps the fd readable or is found by
 * that aloop_run_once. aloop_stop() means nothing here (it is for aloop_run). */

/* An fd that becomes readable when aloop has I/O to process: libev's epoll fd, or the io_uring
 * ring's fd. Create the loop with aloop_options.embedded. The loop owns the fd: watch it for
 * reading only, never read, close or change it. -ALOOP_EUNAVAIL when the driver has no fd that
 * could say so honestly: select (its interest is a pair of bitmaps, not a kernel object), libev on
 * a mechanism other than epoll (LIBEV_FLAGS), or an io_uring ring with deferred task work (the
 * default without `embedded`: the kernel does not wake a poll on its fd for those completions). */
ALOOP_API int aloop_backend_fd(aloop_loop *loop);

/* How long the host may sleep on aloop_backend_fd before calling aloop_run_once, in nanoseconds:
 * 0 when something is ready already (callbacks, due timers, calls from other threads and signals
 * that arrived, changes the driver must hear before its fd can speak for them, a driver that
 * failed for good, whose error the next aloop_run_once returns); the time to the earliest timer;
 * -1 when nothing is scheduled and only I/O can wake aloop. Call it after aloop_run_once and
 * after your own code called into aloop, right before sleeping. Works on every driver. */
ALOOP_API int64_t aloop_backend_timeout(aloop_loop *loop);

/* Monotonic time in nanoseconds: the clock timers are measured against. */
ALOOP_API int64_t aloop_time(const aloop_loop *loop);

/* ---- Callbacks and timers ---------------------------------------------------------------------- */

typedef void (*aloop_cb)(aloop_loop *loop, void *arg);

/* A reference to a scheduled callback. A plain value: copying it is free, and it stays safe to use
 * after the callback ran (aloop_cancel then answers -ALOOP_ESTALE). Zero-initialised = no callback. */
typedef struct aloop_handle {
  struct aloop__handle *h;
  uint64_t seq;
} aloop_handle;

/* Schedule cb(loop, arg) on the next iteration. Callbacks run in the order scheduled; those scheduled
 * while the ready queue runs wait for the next iteration, after I/O has been polled. `out` may be
 * NULL. Returns 0 or -ENOMEM. */
ALOOP_API int aloop_call_soon(aloop_loop *loop, aloop_cb cb, void *arg, aloop_handle *out);

/* Schedule cb after delay_ns (>= 0) / at the absolute aloop_time() `when`. A timer never runs before
 * its time; timers run in deadline order, equal deadlines in the order scheduled. */
ALOOP_API int aloop_call_later(aloop_loop *loop, int64_t delay_ns, aloop_cb cb, void *arg,
                               aloop_handle *out);
ALOOP_API int aloop_call_at(aloop_loop *loop, int64_t when_ns, aloop_cb cb, void *arg,
                            aloop_handle *out);

/* Cancel: the callback will not run. Returns 0, or -ALOOP_ESTALE if it already ran or was cancelled,
 * -EINVAL for a zero handle. Safe from inside any callback, including the handle's own. */
ALOOP_API int aloop_cancel(aloop_loop *loop, aloop_handle handle);

/* The only function callable from any thread (or from a signal handler): schedule cb on the loop and
 * wake it if it sleeps. Calls from one thread run in the order made; none is lost or run twice.
 * Returns 0 or -ENOMEM. */
ALOOP_API int aloop_call_soon_threadsafe(aloop_loop *loop, aloop_cb cb, void *arg);

/* ---- File descriptors -------------------------------------------------------------------------- */

typedef void (*aloop_io_cb)(aloop_loop *loop, int fd, void *arg);

/* Call cb whenever fd is readable / writable, until removed. One reader and one writer per fd: adding
 * again replaces the callback. The fd must stay open while watched; remove it before closing.
 * Errors: -EBADF (fd < 0), -ALOOP_EFDLIMIT (driver cannot watch an fd that high), -ENOMEM, or what
 * the driver's kernel interface says. Adding and removing from inside callbacks is safe: a removed
 * watcher does not run, even if its fd was already reported ready in this iteration. */
ALOOP_API int aloop_add_reader(aloop_loop *loop, int fd, aloop_io_cb cb, void *arg);
ALOOP_API int aloop_add_writer(aloop_loop *loop, int fd, aloop_io_cb cb, void *arg);

/* Stop watching. Returns 1 if a watcher was removed, 0 if there was none. */
ALOOP_API int aloop_remove_reader(aloop_loop *loop, int fd);
ALOOP_API int aloop_remove_writer(aloop_loop *loop, int fd);

/* Close fd and make the loop forget it: parked and in-flight socket operations on it are cancelled
 * (their futures complete once the driver let go), its reader and writer are removed, and the
 * driver drops the fd even if the same number comes back for a new file at once. Use it for fds
 * the loop has worked on; a plain close(2) is fine once nothing is parked or watched on the fd and
 * the loop has run an iteration since. Returns 0 or close(2)'s negative errno. */
ALOOP_API int aloop_close(aloop_loop *loop, int fd);

/* ---- Signals ----------------------------------------------------------------------------------- */

/* Run cb on the loop (never in signal context) after signum arrives. Several deliveries before the
 * loop runs may be merged into one call, as with any Unix signal. One loop per signal in a process:
 * another loop's signal gives -ALOOP_ESIGBUSY. Adding again replaces the callback. -EINVAL for
 * SIGKILL, SIGSTOP or a bad number. */
ALOOP_API int aloop_add_signal_handler(aloop_loop *loop, int signum, aloop_cb cb, void *arg);

/* Restore the disposition that was in place before. Returns 1 if a handler was removed, 0 if none. */
ALOOP_API int aloop_remove_signal_handler(aloop_loop *loop, int signum);

/* ---- Introspection ----------------------------------------------------------------------------- */

typedef struct aloop_stats {
  size_t ready;      /* callbacks waiting in the ready queue (cancelled ones included until skipped) */
  size_t timers;     /* timers scheduled and not yet due */
  size_t fds;        /* fds with a reader or writer from the user */
  size_t signals;    /* signal handlers installed */
  size_t futures;    /* futures alive (tasks included) */
  size_t tasks;      /* tasks not yet finished */
  size_t ops;        /* socket and file operations in flight */
  uint64_t iterations;
  uint64_t errors;   /* reports made to the error handler */
} aloop_stats;

ALOOP_API void aloop_get_stats(const aloop_loop *loop, aloop_stats *out);

#ifdef __cplusplus
}
#endif

#include "aloop/future.h"
#include "aloop/task.h"
#include "aloop/net.h"
#include "aloop/transport.h"
#include "aloop/server.h"
#include "aloop/stream.h"
#include "aloop/datagram.h"
#include "aloop/process.h"
#include "aloop/tls.h"
#include "aloop/file.h"

#endif /* ALOOP_H */
