/* Tasks: a function run as a coroutine, whose outcome is its future's. The loop resumes a task from
 * the ready queue (its first step, then each done-callback of a future it awaits), and the task
 * switches back when it awaits something pending or returns. Only the loop's thread runs tasks. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "coro/coro.h"

_Static_assert(ALOOP_TASK_STACK_GUARD == ALOOP__CORO_GUARD, "task.h promises coro.c's guard gap");

/* Finished tasks kept per loop with their stacks mapped, for the next spawn. */
#define TASK_POOL_MAX 64

struct aloop__task {
  struct aloop__coro co;
  aloop_loop *loop;
  aloop_future *future;  /* the task's own; the task holds a reference until it finished */
  aloop_task_fn fn;
  void *arg;
  aloop_future *waiting; /* what it awaits, while suspended */
  int64_t outcome;
  char message[256];
  struct aloop__task *next_free;
  struct aloop__task *prev, *next; /* the loop's unfinished tasks */
};

static _Thread_local struct aloop__task *current;

static void task_body(void *arg) {
  struct aloop__task *t = arg;
  t->outcome = aloop__future_cancel_requested(t->future) ? -ECANCELED : t->fn(t->arg);
}

static void link_live(aloop_loop *loop, struct aloop__task *t) {
  t->prev = NULL;
  if ((t->next = loop->tasks)) t->next->prev = t;
  loop->tasks = t;
  loop->live_tasks++;
}

static void unlink_live(aloop_loop *loop, struct aloop__task *t) {
  if (t->prev)
    t->prev->next = t->next;
  else
    loop->tasks = t->next;
  if (t->next) t->next->prev = t->prev;
  loop->live_tasks--;
}

static void release_task(aloop_loop *loop, struct aloop__task *t) {
  unlink_live(loop, t);
  if (loop->task_pool_len < TASK_POOL_MAX) {
    t->next_free = loop->task_pool;
    loop->task_pool = t;
    loop->task_pool_len++;
    return;
  }
  aloop__coro_fini(&t->co);
  free(t);
}

/* Run the task until it awaits something pending or returns. Always on the loop's own stack. */
static void step(struct aloop__task *t) {
  struct aloop__task *outer = current;
  current = t;
  aloop__coro_resume(&t->co);
  current = outer;
  if (!t->co.finished) return;
  aloop_future *f = t->future;
  aloop__future_finish(f, t->outcome, t->outcome < 0 && t->message[0] ? t->message : NULL);
  release_task(t->loop, t);
  aloop_future_release(f);
}

static void first_step(aloop_loop *loop, void *arg) {
  (void)loop;
  step(arg);
}

static void cancel_task(aloop_future *f, void *arg) {
  (void)f;
  struct aloop__task *t = arg;
  /* Suspended: stop what it waits for; it sees -ECANCELED when that is done. Not started yet: its
   * first step sees the request and never calls fn. */
  if (t->waiting) aloop_future_cancel(t->waiting);
}

aloop_future *aloop_task_spawn(aloop_loop *loop, aloop_task_fn fn, void *arg,
                               const aloop_task_options *opts) {
  aloop_task_options o = {0};
  if (opts) memcpy(&o, opts, opts->size < sizeof o ? opts->size : sizeof o);
  size_t stack = o.stack_size ? o.stack_size : ALOOP_TASK_STACK_DEFAULT;

  struct aloop__task *t = loop->task_pool;
  if (t) {
    loop->task_pool = t->next_free;
    loop->task_pool_len--;
  } else if (!(t = calloc(1, sizeof *t))) {
    return NULL;
  }
  link_live(loop, t);
  t->loop = loop;
  t->fn = fn;
  t->arg = arg;
  t->waiting = NULL;
  t->message[0] = '\0';
  aloop_future *f = aloop_future_new(loop, o.name ? o.name : "task");
  if (!f || aloop__coro_init(&t->co, stack, task_body, t) < 0 ||
      aloop_call_soon(loop, first_step, t, NULL) < 0) {
    if (f) aloop_future_release(f);
    release_task(loop, t);
    errno = ENOMEM;
    return NULL;
  }
  t->future = aloop_future_ref(f); /* the task's own reference, until it finished */
  aloop__future_set_work(f, cancel_task, t);
  return f;
}

static void resume_waiter(aloop_future *f, void *arg) {
  (void)f;
  step(arg);
}

int64_t aloop_await_keep(aloop_future *f) {
  struct aloop__task *t = current;
  if (!f) return -ENOMEM;
  if (!t) return -EPERM;
  if (f == t->future) /* it would wait for its own end, forever (asyncio: RuntimeError) */
    return aloop_task_error(-EDEADLK, "a task cannot await its own future");
  if (!aloop_future_done(f)) {
    if (aloop__future_cancel_requested(t->future)) aloop_future_cancel(f);
    if (!aloop_future_done(f)) {
      int err = aloop_future_add_done_callback(f, resume_waiter, t);
      if (err < 0) {
        /* Nothing would wake the task: stop the work instead of leaving it running (on buffers
         * the task may give up as soon as this returns, or a timer that outlives the loop). */
        aloop_future_cancel(f);
        return err;
      }
      t->waiting = f;
      aloop__coro_yield(&t->co);
      t->waiting = NULL;
    }
  }
  /* A result that arrived is delivered even if the task was cancelled meanwhile (an accepted fd
   * or bytes already read must reach someone who can close or use them); the cancellation then
   * takes effect at the task's next await of something pending. */
  return aloop_future_outcome(f);
}

int64_t aloop_await(aloop_future *f) {
  int64_t outcome = aloop_await_keep(f);
  if (f && !current) aloop_future_outcome(f); /* misuse is answered by -EPERM, not a report */
  aloop_future_release(f);
  return outcome;
}

int64_t aloop_task_error(int64_t code, const char *fmt, ...) {
  if (current && fmt) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(current->message, sizeof current->message, fmt, ap);
    va_end(ap);
  }
  return code;
}

aloop_future *aloop_task_current(void) { return current ? current->future : NULL; }

static void complete_yield(aloop_loop *loop, void *arg) {
  (void)loop;
  aloop__future_finish(arg, 0, NULL);
  aloop_future_release(arg);
}

int64_t aloop_task_yield(aloop_loop *loop) {
  aloop_future *f = aloop_future_new(loop, "yield");
  if (!f) return -ENOMEM;
  if (aloop_call_soon(loop, complete_yield, aloop_future_ref(f), NULL) < 0) {
    aloop_future_release(f);
    aloop_future_release(f);
    return -ENOMEM;
  }
  return aloop_await(f);
}

void aloop__tasks_fini(aloop_loop *loop) {
  struct aloop__task *t;
  /* Tasks still suspended never run again: their stacks go, and with them the task's own
   * reference to its future (anyone else's reference must be released before aloop_free). */
  while ((t = loop->tasks)) {
    unlink_live(loop, t);
    aloop_future_release(t->future);
    aloop__coro_fini(&t->co);
    free(t);
  }
  while ((t = loop->task_pool)) {
    loop->task_pool = t->next_free;
    aloop__coro_fini(&t->co);
    free(t);
  }
  loop->task_pool_len = 0;
}
