/* Tasks: functions that run as coroutines on the loop and wait for futures in straight-line code,
 * as asyncio tasks. Included by aloop.h.
 *
 *   static int64_t handle(void *arg) {
 *     char buf[4096];
 *     int fd = (int)(intptr_t)arg;
 *     for (int64_t n; (n = aloop_await(aloop_sock_recv_into(loop, fd, buf, sizeof buf))) > 0;)
 *       if ((n = aloop_await(aloop_sock_sendall(loop, fd, buf, (size_t)n))) < 0) return n;
 *     return 0;
 *   }
 *   aloop_future_release(aloop_task_spawn(loop, handle, (void *)(intptr_t)fd, NULL));
 */
#ifndef ALOOP_TASK_H
#define ALOOP_TASK_H

#ifdef __cplusplus
extern "C" {
#endif

/* The task's body. Its return value is the task's outcome (>= 0 a result, < 0 an error; return
 * aloop_task_error() to give the error a message). */
typedef int64_t (*aloop_task_fn)(void *arg);

typedef struct aloop_task_options {
  size_t size;       /* sizeof(aloop_task_options) */
  size_t stack_size; /* 0: ALOOP_TASK_STACK_DEFAULT; rounded up to whole pages */
  const char *name;  /* for error reports; NULL: "task" */
} aloop_task_options;

/* 256 KiB: room for the C library's deeper calls (printf, getaddrinfo-sized frames); untouched
 * pages cost no memory. */
#define ALOOP_TASK_STACK_DEFAULT (256 * 1024)
/* Below every task's stack lies an unmapped gap of this size (address space only, no memory), so
 * an overflow faults instead of writing into another task's stack, as long as no single function's
 * frame (its locals: arrays, VLAs, alloca) is larger than the gap. Code with larger frames that
 * runs in tasks must be compiled with -fstack-clash-protection (GCC and Clang: every page of a
 * large frame is touched in order, so the first one faults in the gap); aloop itself is. */
#define ALOOP_TASK_STACK_GUARD (256 * 1024)

/* Start fn(arg) as a task; it first runs on the next iteration. Returns the task's future (one
 * reference for the caller; release it if you will not wait), or NULL with ENOMEM. A task that
 * ends with an error nobody retrieves is reported ("task ... error was never retrieved"). */
ALOOP_API aloop_future *aloop_task_spawn(aloop_loop *loop, aloop_task_fn fn, void *arg,
                                         const aloop_task_options *opts);

/* Inside a task: wait until `future` is done and return its outcome, then release the caller's
 * reference (so aloop_await(aloop_sock_recv_into(...)) leaks nothing). If the task is cancelled
 * while waiting, the awaited work is cancelled too and this returns -ECANCELED; the task should
 * then clean up and return -ECANCELED. If the work had already completed when the cancel came,
 * its result is returned instead (an accepted fd, bytes read: never lost) and the cancellation
 * takes effect at the next await of something not yet done. A NULL future (an allocation failed)
 * gives -ENOMEM; the task's own future gives -EDEADLK (it would wait forever). Outside a task:
 * -EPERM (and the future is released). */
ALOOP_API int64_t aloop_await(aloop_future *future);
/* Like aloop_await but keeps the reference: for futures whose data is still needed. */
ALOOP_API int64_t aloop_await_keep(aloop_future *future);

/* Inside a task: record a message for the error the task is about to return; returns code. */
ALOOP_API int64_t aloop_task_error(int64_t code, const char *fmt, ...) ALOOP_PRINTF(2, 3);

/* The running task's future, or NULL outside a task. Borrowed: do not release. */
ALOOP_API aloop_future *aloop_task_current(void);

/* Inside a task: let every callback that is ready run, then continue (asyncio.sleep(0)). */
ALOOP_API int64_t aloop_task_yield(aloop_loop *loop);

/* A bounded FIFO for handing work between tasks (asyncio.Queue). Items are pointers. */
typedef struct aloop_queue aloop_queue;
/* maxsize 0: unbounded. NULL on ENOMEM. */
ALOOP_API aloop_queue *aloop_queue_new(aloop_loop *loop, size_t maxsize);
/* Frees the queue; waiting puts and gets are cancelled. The items still queued are the caller's:
 * take them first with aloop_queue_try_get. */
ALOOP_API void aloop_queue_free(aloop_queue *queue);
ALOOP_API size_t aloop_queue_size(const aloop_queue *queue);
/* Future done (0) once the item is in the queue; waits while the queue is full. */
ALOOP_API aloop_future *aloop_queue_put(aloop_queue *queue, void *item);
/* Future done once an item is available: outcome 0 and the item in aloop_future_data. */
ALOOP_API aloop_future *aloop_queue_get(aloop_queue *queue);
/* Without waiting: 0, or -EAGAIN if full / empty. */
ALOOP_API int aloop_queue_try_put(aloop_queue *queue, void *item);
ALOOP_API int aloop_queue_try_get(aloop_queue *queue, void **item);

#ifdef __cplusplus
}
#endif
#endif
