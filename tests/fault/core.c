/* Scenarios for the loop's core: callbacks, timers, futures and tasks. Each creates its own loop,
 * does a little of everything its layer offers, checks the results and frees the loop; on an
 * allocation failure it stops where the failure was seen and cleans up as an application would. */
#include <errno.h>
#include <string.h>

#include "scenarios.h"

#define MS INT64_C(1000000)

/* ---- loop: create, call_soon (past one handle slab), call_soon_threadsafe, run, free ----------- */

enum { LOOP_CALLS = 300, LOOP_TS_CALLS = 3 };
static int loop_ran, loop_expected;
static bool loop_done;

static void loop_cb(aloop_loop *loop, void *arg) {
  (void)loop, (void)arg;
  if (++loop_ran == loop_expected) loop_done = true;
}

void scenario_loop(void) {
  loop_ran = loop_expected = 0;
  loop_done = false;
  aloop_loop *loop = fault_loop();
  if (!loop) return;
  for (int i = 0; i < LOOP_CALLS; i++) {
    int rc = aloop_call_soon(loop, loop_cb, NULL, NULL);
    fault_saw("aloop_call_soon", rc);
    if (rc == 0) loop_expected++;
  }
  for (int i = 0; i < LOOP_TS_CALLS; i++) {
    int rc = aloop_call_soon_threadsafe(loop, loop_cb, NULL);
    fault_saw("aloop_call_soon_threadsafe", rc);
    if (rc == 0) loop_expected++;
  }
  if (loop_expected) fault_run_until(loop, &loop_done, "the scheduled callbacks");
  if (loop_ran != loop_expected)
    fault_violation("%d callbacks ran, %d were scheduled", loop_ran, loop_expected);
  fault_current->complete = loop_expected == LOOP_CALLS + LOOP_TS_CALLS && loop_ran == loop_expected;
  fault_free_loop(loop);
}

/* ---- timers: call_later past the heap's first size, call_at, cancel, order ------------------------ */

enum { TIMERS = 70, TIMER_CANCEL_EVERY = 7 };
static int timer_fired[TIMERS], timer_order[TIMERS], timers_ran, timers_expected;
static bool timers_done;

static void timer_cb(aloop_loop *loop, void *arg) {
  (void)loop;
  int i = (int)(intptr_t)arg;
  timer_fired[i]++;
  if (timers_ran < TIMERS) timer_order[timers_ran] = i;
  if (++timers_ran == timers_expected) timers_done = true;
}

void scenario_timers(void) {
  memset(timer_fired, 0, sizeof timer_fired);
  timers_ran = timers_expected = 0;
  timers_done = false;
  aloop_loop *loop = fault_loop();
  if (!loop) return;
  aloop_handle h[TIMERS] = {{0}};
  bool scheduled[TIMERS] = {false};
  for (int i = 0; i < TIMERS; i++) {
    /* Deadlines 20 us apart, in order; the last one through call_at. */
    int rc = i == TIMERS - 1
                 ? aloop_call_at(loop, aloop_time(loop) + MS + i * 20000, timer_cb,
                                 (void *)(intptr_t)i, &h[i])
                 : aloop_call_later(loop, MS + i * 20000, timer_cb, (void *)(intptr_t)i, &h[i]);
    fault_saw("aloop_call_later", rc);
    scheduled[i] = rc == 0;
  }
  int cancelled = 0;
  for (int i = 0; i < TIMERS; i += TIMER_CANCEL_EVERY) {
    if (!scheduled[i]) continue;
    int rc = aloop_cancel(loop, h[i]);
    if (rc != 0) fault_violation("aloop_cancel of a pending timer: %s", aloop_strerror(rc));
    scheduled[i] = false;
    cancelled++;
  }
  for (int i = 0; i < TIMERS; i++) timers_expected += scheduled[i];
  if (timers_expected) fault_run_until(loop, &timers_done, "the timers");
  for (int i = 0; i < TIMERS; i++)
    if (timer_fired[i] != scheduled[i]) fault_violation("timer %d ran %d times", i, timer_fired[i]);
  for (int k = 1; k < timers_ran && k < TIMERS; k++)
    if (timer_order[k] < timer_order[k - 1]) fault_violation("timers ran out of deadline order");
  if (h[1].h && aloop_cancel(loop, h[1]) != -ALOOP_ESTALE && scheduled[1])
    fault_violation("cancelling a timer that ran is not -ALOOP_ESTALE");
  fault_current->complete = timers_expected + cancelled == TIMERS && timers_ran == timers_expected;
  fault_free_loop(loop);
}

/* ---- futures and tasks: spawn, await, sleep, gather, wait_for (both ways), yield, a queue ------ */

static int64_t small_task(void *arg) {
  aloop_loop *loop = arg;
  int64_t rc = aloop_task_yield(loop);
  return rc < 0 ? rc : 7;
}

/* Release the n futures (NULLs allowed). */
static void release_all(aloop_future **fs, size_t n) {
  for (size_t i = 0; i < n; i++) aloop_future_release(fs[i]);
}

static int64_t main_task(void *arg) {
  aloop_loop *loop = arg;
  int64_t rc = aloop_await(aloop_sleep(loop, MS));
  if (rc != 0) return rc;

  aloop_future *fs[3] = {aloop_sleep(loop, 0), aloop_sleep(loop, MS),
                         aloop_task_spawn(loop, small_task, loop, NULL)};
  aloop_future *g = fs[0] && fs[1] && fs[2] ? aloop_gather(loop, fs, 3) : NULL;
  rc = g ? aloop_await(g) : -ENOMEM;
  if (rc < 0) { /* cancel what still runs, and wait for it: nothing may be left running */
    for (int i = 0; i < 3; i++)
      if (fs[i]) aloop_future_cancel(fs[i]);
    for (int i = 0; i < 3; i++)
      if (fs[i]) aloop_await_keep(fs[i]);
  }
  release_all(fs, 3);
  if (rc != 3) return rc < 0 ? rc : aloop_task_error(-EPROTO, "gather gave %lld", (long long)rc);

  aloop_future *inner = aloop_sleep(loop, MS);
  if (!inner) return -ENOMEM;
  rc = aloop_await(aloop_wait_for(loop, inner, 10000 * MS)); /* in time */
  if (rc == -ENOMEM) aloop_future_cancel(inner);
  aloop_await(inner);
  if (rc != 0) return rc;

  inner = aloop_sleep(loop, 10000 * MS);
  if (!inner) return -ENOMEM;
  rc = aloop_await(aloop_wait_for(loop, inner, MS)); /* times out: the sleep is cancelled */
  if (rc == -ENOMEM) aloop_future_cancel(inner);
  int64_t inner_rc = aloop_await(inner);
  if (rc != -ETIMEDOUT) return rc < 0 ? rc : aloop_task_error(-EPROTO, "wait_for gave %lld", (long long)rc);
  if (inner_rc != -ECANCELED) return aloop_task_error(-EPROTO, "the timed-out sleep gave %lld", (long long)inner_rc);

  aloop_queue *q = aloop_queue_new(loop, 2);
  if (!q) return -ENOMEM;
  static int items[3];
  rc = 0;
  for (int i = 0; i < 3 && rc >= 0; i++) rc = aloop_queue_try_put(q, &items[i]);
  if (rc != -EAGAIN) { /* the third did not fit: -EAGAIN; -ENOMEM if the ring could not grow */
    aloop_queue_free(q);
    return rc < 0 ? rc : aloop_task_error(-EPROTO, "a full queue took an item");
  }
  aloop_future *got = aloop_queue_get(q);
  rc = aloop_await_keep(got);
  void *item = got ? aloop_future_data(got) : NULL;
  aloop_future_release(got);
  void *rest;
  while (aloop_queue_try_get(q, &rest) == 0) continue;
  aloop_queue_free(q);
  if (rc < 0) return rc;
  if (item != &items[0]) return aloop_task_error(-EPROTO, "the queue gave the wrong item");
  return 42;
}

void scenario_tasks(void) {
  aloop_loop *loop = fault_loop();
  if (!loop) return;
  aloop_future *task = aloop_task_spawn(loop, main_task, loop, NULL);
  int64_t rc = fault_await_keep(loop, task, "the task");
  if (rc < 0 && rc != -ENOMEM) fault_violation("the task: %s", aloop_future_message(task));
  fault_saw("the task", rc);
  aloop_future_release(task);
  fault_current->complete = rc == 42;
  fault_free_loop(loop);
}
