/* Timers: deadline order, FIFO ties, cancellation, many timers, never early. */
#include <stdlib.h>
#include <time.h>

#include "harness.h"

enum { MANY_TIMERS = 100000 };

struct fired {
  int64_t when;
  int index;
};
static struct fired *fired;
static int nfired;
static int64_t *deadline_of; /* by index */

static void note(aloop_loop *loop, void *arg) {
  int i = (int)(intptr_t)arg;
  ck_assert_msg(aloop_time(loop) >= deadline_of[i], "timer %d fired early", i);
  fired[nfired++] = (struct fired){deadline_of[i], i};
}

static void alloc_records(int n) {
  fired = calloc((size_t)n, sizeof *fired);
  deadline_of = calloc((size_t)n, sizeof *deadline_of);
  nfired = 0;
}

static void free_records(void) {
  free(fired);
  free(deadline_of);
}

static void stop_after(aloop_loop *loop, void *arg) {
  (void)arg;
  aloop_stop(loop);
}

START_TEST(test_timers_run_in_deadline_order) {
  alloc_records(3);
  int64_t now = aloop_time(L);
  int64_t delays[3] = {30 * MS, 10 * MS, 20 * MS};
  for (int i = 0; i < 3; i++) {
    deadline_of[i] = now + delays[i];
    aloop_call_at(L, deadline_of[i], note, (void *)(intptr_t)i, NULL);
  }
  aloop_call_at(L, now + 30 * MS, stop_after, NULL, NULL);
  ck_assert(run_at_most(L, 30 * SEC));
  ck_assert_int_eq(nfired, 3);
  ck_assert_int_eq(fired[0].index, 1);
  ck_assert_int_eq(fired[1].index, 2);
  ck_assert_int_eq(fired[2].index, 0);
  free_records();
}
END_TEST

START_TEST(test_equal_deadlines_run_in_the_order_scheduled) {
  alloc_records(100);
  int64_t when = aloop_time(L) + 5 * MS;
  for (int i = 0; i < 100; i++) {
    deadline_of[i] = when;
    aloop_call_at(L, when, note, (void *)(intptr_t)i, NULL);
  }
  aloop_call_at(L, when, stop_after, NULL, NULL);
  ck_assert(run_at_most(L, 30 * SEC));
  ck_assert_int_eq(nfired, 100);
  for (int i = 0; i < 100; i++) ck_assert_int_eq(fired[i].index, i);
  free_records();
}
END_TEST

START_TEST(test_hundred_thousand_timers_fire_once_in_order_and_cancelled_ones_never) {
  alloc_records(MANY_TIMERS);
  aloop_handle *handles = calloc(MANY_TIMERS, sizeof *handles);
  unsigned seed = 12345;
  int64_t now = aloop_time(L), last = now;
  for (int i = 0; i < MANY_TIMERS; i++) {
    /* Coarse deadlines (1 ms steps over 50 ms) so that many timers share one. */
    deadline_of[i] = now + (int64_t)(rand_r(&seed) % 50) * MS;
    if (deadline_of[i] > last) last = deadline_of[i];
    ck_assert_int_eq(aloop_call_at(L, deadline_of[i], note, (void *)(intptr_t)i, &handles[i]), 0);
  }
  int cancelled = 0;
  for (int i = 0; i < MANY_TIMERS; i += 7, cancelled++)
    ck_assert_int_eq(aloop_cancel(L, handles[i]), 0);
  aloop_call_at(L, last, stop_after, NULL, NULL); /* scheduled last: runs after every timer */
  ck_assert(run_at_most(L, 60 * SEC));
  ck_assert_int_eq(nfired, MANY_TIMERS - cancelled);
  for (int i = 0; i < nfired; i++) {
    ck_assert_msg(fired[i].index % 7 != 0, "cancelled timer %d fired", fired[i].index);
    if (i == 0) continue;
    ck_assert(fired[i - 1].when <= fired[i].when);
    if (fired[i - 1].when == fired[i].when) ck_assert_int_lt(fired[i - 1].index, fired[i].index);
  }
  free(handles);
  free_records();
}
END_TEST

static int64_t scheduled_at, ran_at;
static void mark_ran(aloop_loop *loop, void *arg) {
  (void)arg;
  ran_at = aloop_time(loop);
  aloop_stop(loop);
}

START_TEST(test_timer_never_fires_early_and_fires_within_a_generous_bound) {
  static const int64_t delays[] = {0, 1 * MS, 3 * MS, 20 * MS, 60 * MS};
  for (size_t i = 0; i < sizeof delays / sizeof delays[0]; i++) {
    scheduled_at = aloop_time(L);
    aloop_call_later(L, delays[i], mark_ran, NULL, NULL);
    ck_assert(run_at_most(L, 30 * SEC));
    int64_t took = ran_at - scheduled_at;
    ck_assert_msg(took >= delays[i], "a %lld ns timer fired after %lld ns", (long long)delays[i],
                  (long long)took);
    ck_assert_msg(took < delays[i] + 5 * SEC, "a %lld ns timer took %lld ns",
                  (long long)delays[i], (long long)took);
  }
}
END_TEST

static void schedule_after_a_long_callback(aloop_loop *loop, void *arg) {
  (void)arg;
  struct timespec nap = {0, 30 * MS};
  nanosleep(&nap, NULL); /* the iteration's view of "now" is 30 ms old after this */
  scheduled_at = aloop_time(loop);
  aloop_call_later(loop, 20 * MS, mark_ran, NULL, NULL);
}

START_TEST(test_timer_set_late_in_a_long_callback_still_waits_its_whole_delay) {
  aloop_call_soon(L, schedule_after_a_long_callback, NULL, NULL);
  ck_assert(run_at_most(L, 30 * SEC));
  ck_assert_int_ge(ran_at - scheduled_at, 20 * MS);
}
END_TEST

START_TEST(test_cancelled_timer_never_runs) {
  aloop_handle h;
  ran_at = 0;
  aloop_call_later(L, 1 * MS, mark_ran, NULL, &h);
  ck_assert_int_eq(aloop_cancel(L, h), 0);
  ck_assert_int_eq(aloop_cancel(L, h), -ALOOP_ESTALE);
  ck_assert(!run_at_most(L, 50 * MS)); /* nothing stops the loop but the deadline */
  ck_assert_int_eq(ran_at, 0);
}
END_TEST

START_TEST(test_loop_sleeps_until_the_next_timer_instead_of_spinning) {
  aloop_call_later(L, 100 * MS, mark_ran, NULL, NULL);
  aloop_stats before, after;
  aloop_get_stats(L, &before);
  ck_assert(run_at_most(L, 30 * SEC));
  aloop_get_stats(L, &after);
  /* One or two waits, plus a few if the kernel wakes us early; a spinning loop makes thousands. */
  ck_assert_uint_lt(after.iterations - before.iterations, 20);
}
END_TEST

START_TEST(test_run_once_waits_at_most_its_timeout) {
  aloop_handle far;
  aloop_call_later(L, 60 * SEC, mark_ran, NULL, &far);
  int64_t t0 = aloop_time(L);
  ck_assert_int_eq(aloop_run_once(L, 20 * MS), 0);
  int64_t took = aloop_time(L) - t0;
  ck_assert_int_ge(took, 20 * MS);
  ck_assert_int_lt(took, 10 * SEC);
  ck_assert_int_eq(aloop_cancel(L, far), 0);
}
END_TEST

static void mark_huge(aloop_loop *loop, void *arg) {
  (void)loop;
  *(int *)arg = 1;
}

static void complete_it(aloop_loop *loop, void *arg) {
  (void)loop;
  aloop_future_set_result(arg, 7);
}

START_TEST(test_a_delay_past_the_clocks_range_never_fires_and_a_huge_timeout_waits) {
  int huge_fired = 0;
  aloop_handle far, farther;
  ck_assert_int_eq(aloop_call_later(L, INT64_MAX, mark_huge, &huge_fired, &far), 0);
  ck_assert_int_eq(aloop_call_later(L, INT64_MAX - 1, mark_huge, &huge_fired, &farther), 0);
  ck_assert(!run_at_most(L, 100 * MS)); /* only the deadline stops it */
  ck_assert_int_eq(huge_fired, 0);
  ck_assert_int_eq(aloop_cancel(L, far), 0);
  ck_assert_int_eq(aloop_cancel(L, farther), 0);

  aloop_future *inner = aloop_future_new(L, "inner");
  aloop_call_later(L, 30 * MS, complete_it, inner, NULL);
  aloop_future *w = aloop_wait_for(L, inner, INT64_MAX);
  ck_assert_int_eq(run_within(w, 30 * SEC), 7); /* not -ETIMEDOUT at once */
  aloop_future_release(inner);

  aloop_future *sleep = aloop_sleep(L, INT64_MAX);
  ck_assert(!run_at_most(L, 50 * MS));
  ck_assert(!aloop_future_done(sleep));
  aloop_future_cancel(sleep);
  aloop_future_release(sleep);
}
END_TEST

TCase *conformance_timers(void) {
  TCase *tc = conformance_tcase("timers");
  tcase_add_test(tc, test_timers_run_in_deadline_order);
  tcase_add_test(tc, test_a_delay_past_the_clocks_range_never_fires_and_a_huge_timeout_waits);
  tcase_add_test(tc, test_equal_deadlines_run_in_the_order_scheduled);
  tcase_add_test(tc, test_hundred_thousand_timers_fire_once_in_order_and_cancelled_ones_never);
  tcase_add_test(tc, test_timer_never_fires_early_and_fires_within_a_generous_bound);
  tcase_add_test(tc, test_timer_set_late_in_a_long_callback_still_waits_its_whole_delay);
  tcase_add_test(tc, test_cancelled_timer_never_runs);
  tcase_add_test(tc, test_loop_sleeps_until_the_next_timer_instead_of_spinning);
  tcase_add_test(tc, test_run_once_waits_at_most_its_timeout);
  return tc;
}
