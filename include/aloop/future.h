/* Futures: the outcome of work that finishes later, as asyncio.Future. Included by aloop.h.
 *
 * An outcome is one int64_t: >= 0 is a result (a count, an fd, a value), < 0 is an error code
 * (negative errno or -ALOOP_E*), -ECANCELED means cancelled. A future may also carry a pointer
 * (aloop_future_data), e.g. the bytes of aloop_sock_recv or the addrinfo of aloop_getaddrinfo.
 *
 * Ownership: every function that returns a future gives the caller one reference; drop it with
 * aloop_future_release() whether or not the future is done. The work keeps its own reference while
 * it runs, so releasing early never cancels anything. */
#ifndef ALOOP_FUTURE_H
#define ALOOP_FUTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct aloop_future aloop_future;
typedef void (*aloop_future_cb)(aloop_future *future, void *arg);

/* A pending future on `loop`, or NULL (ENOMEM). `origin` names what will produce it, for error
 * reports (a string literal, or NULL). */
ALOOP_API aloop_future *aloop_future_new(aloop_loop *loop, const char *origin);
ALOOP_API aloop_future *aloop_future_ref(aloop_future *future);
/* Drop a reference. The last one frees the future; if it ended with an error nobody looked at
 * (aloop_future_outcome, aloop_await...), the loop's error handler hears "... was never retrieved"
 * with the origin and the message, as asyncio's "exception was never retrieved". */
ALOOP_API void aloop_future_release(aloop_future *future);
ALOOP_API aloop_loop *aloop_future_loop(const aloop_future *future);

/* Complete it. Returns 0, -ALOOP_EDONE if it is already done, -EINVAL for a negative value. */
ALOOP_API int aloop_future_set_result(aloop_future *future, int64_t value);
/* code < 0; fmt may be NULL (the message is then aloop_strerror(code)). */
ALOOP_API int aloop_future_set_error(aloop_future *future, int code, const char *fmt, ...)
    ALOOP_PRINTF(3, 4);
/* Attach a pointer; free_fn (may be NULL) is called on it when the future is freed, unless it was
 * taken with aloop_future_take_data. */
ALOOP_API void aloop_future_set_data(aloop_future *future, void *data, void (*free_fn)(void *));
ALOOP_API void *aloop_future_data(const aloop_future *future);
ALOOP_API void *aloop_future_take_data(aloop_future *future); /* caller now owns it */

/* Ask for cancellation. A plain future is cancelled at once. A future of work in flight (a task, a
 * socket operation, an executor job) asks that work to stop and is done when it has: an in-flight
 * I/O request is cancelled in the driver first, so no buffer or fd is touched after the future is
 * done. Returns 0 if cancellation was requested, -ALOOP_EDONE if it was already done. */
ALOOP_API int aloop_future_cancel(aloop_future *future);

ALOOP_API bool aloop_future_done(const aloop_future *future);
ALOOP_API bool aloop_future_cancelled(const aloop_future *future);
/* The outcome (see above), or -ALOOP_EPENDING while pending. Marks an error as retrieved. */
ALOOP_API int64_t aloop_future_outcome(aloop_future *future);
/* The error's message (never NULL; "" if there is no error). */
ALOOP_API const char *aloop_future_message(const aloop_future *future);

/* Call cb(future, arg) once the future is done, through the ready queue (never from inside the
 * call that completed it), in the order added. Added to a done future: scheduled at once.
 * Returns 0 or -ENOMEM. */
ALOOP_API int aloop_future_add_done_callback(aloop_future *future, aloop_future_cb cb, void *arg);
/* Remove every registration of (cb, arg) not yet run; returns how many. */
ALOOP_API int aloop_future_remove_done_callback(aloop_future *future, aloop_future_cb cb,
                                                void *arg);

/* Run the loop until the future is done; returns its outcome. -ALOOP_ERUNNING if called from
 * inside the loop; -ALOOP_EPENDING if a callback called aloop_stop() before it was done. */
ALOOP_API int64_t aloop_run_until_complete(aloop_loop *loop, aloop_future *future);

/* A future that completes with 0 after delay_ns; cancelling it cancels the timer. */
ALOOP_API aloop_future *aloop_sleep(aloop_loop *loop, int64_t delay_ns);

/* A future done when all n futures are; its outcome is n, or the first error among them in the
 * order given (the others stay available on their own futures), or -ECANCELED if one was
 * cancelled. Cancelling it cancels every one not yet done. Takes its own references. */
ALOOP_API aloop_future *aloop_gather(aloop_loop *loop, aloop_future *const *futures, size_t n);

/* A future with the inner future's outcome, or -ETIMEDOUT after timeout_ns, in which case the inner
 * work is cancelled first (and the timeout reported once that cancellation completed). */
ALOOP_API aloop_future *aloop_wait_for(aloop_loop *loop, aloop_future *inner, int64_t timeout_ns);

#ifdef __cplusplus
}
#endif
#endif
