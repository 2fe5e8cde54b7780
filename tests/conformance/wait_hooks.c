/* aloop_set_wait_hooks: a host's hooks run around every poll that may block, before then after,
 * and never around a poll that cannot (nothing to give up for a wait that does not happen). */
#include <string.h>

#include "harness.h"

enum { LOG_MAX = 64 };
static char log_buf[LOG_MAX + 1];
static size_t log_len;
static int inside; /* 1 between before and after: callbacks must never see it */

static void log_event(char c) {
  if (log_len < LOG_MAX) log_buf[log_len++] = c;
  log_buf[log_len] = '\0';
}

static void before_wait(void *arg) {
  ck_assert_ptr_eq(arg, &inside);
  ck_assert_int_eq(inside, 0);
  inside = 1;
  log_event('B');
}

static void after_wait(void *arg) {
  ck_assert_ptr_eq(arg, &inside);
  ck_assert_int_eq(inside, 1);
  inside = 0;
  log_event('A');
}

static void reset_log(void) {
  log_len = 0;
  log_buf[0] = '\0';
  inside = 0;
}

static void timer_fired(aloop_loop *loop, void *arg) {
  ck_assert_int_eq(inside, 0);
  log_event('T');
  if (arg) aloop_stop(loop);
}

/* B then A, in pairs, and nothing else before the first callback. */
static void assert_pairs_then_timer(void) {
  ck_assert_msg(log_len >= 3, "log: %s", log_buf);
  ck_assert_int_eq(log_buf[log_len - 1], 'T');
  for (size_t i = 0; i + 1 < log_len; i += 2)
    ck_assert_msg(log_buf[i] == 'B' && log_buf[i + 1] == 'A', "log: %s", log_buf);
}

START_TEST(test_hooks_run_before_and_after_a_blocking_wait) {
  reset_log();
  aloop_set_wait_hooks(L, before_wait, after_wait, &inside);
  ck_assert_int_eq(aloop_call_later(L, 20 * 1000000LL, timer_fired, L, NULL), 0);
  ck_assert_int_eq(aloop_run(L), 0);
  assert_pairs_then_timer();
  ck_assert_int_eq(inside, 0);
}
END_TEST

START_TEST(test_hooks_do_not_run_around_a_poll_that_does_not_wait) {
  reset_log();
  aloop_set_wait_hooks(L, before_wait, after_wait, &inside);
  ck_assert_int_eq(aloop_run_once(L, 0), 0); /* asked not to wait */
  ck_assert_int_eq(aloop_call_soon(L, timer_fired, NULL, NULL), 0);
  ck_assert_int_eq(aloop_run_once(L, -1), 1); /* a callback is ready: the poll does not wait */
  ck_assert_str_eq(log_buf, "T");
  aloop_stop(L);
  ck_assert_int_eq(aloop_run(L), 0); /* a pending stop: one iteration that does not wait */
  ck_assert_str_eq(log_buf, "T");
}
END_TEST

START_TEST(test_hooks_run_around_a_bounded_wait_of_run_once) {
  reset_log();
  aloop_set_wait_hooks(L, before_wait, after_wait, &inside);
  ck_assert_int_eq(aloop_run_once(L, 1000000), 0);
  ck_assert_str_eq(log_buf, "BA");
}
END_TEST

START_TEST(test_removed_hooks_are_not_called) {
  reset_log();
  aloop_set_wait_hooks(L, before_wait, after_wait, &inside);
  aloop_set_wait_hooks(L, NULL, NULL, NULL);
  ck_assert_int_eq(aloop_run_once(L, 1000000), 0);
  aloop_set_wait_hooks(L, before_wait, NULL, &inside); /* half a pair is no pair */
  ck_assert_int_eq(aloop_run_once(L, 1000000), 0);
  ck_assert_str_eq(log_buf, "");
}
END_TEST

TCase *conformance_wait_hooks(void) {
  TCase *tc = conformance_tcase("wait_hooks");
  tcase_add_test(tc, test_hooks_run_before_and_after_a_blocking_wait);
  tcase_add_test(tc, test_hooks_do_not_run_around_a_poll_that_does_not_wait);
  tcase_add_test(tc, test_hooks_run_around_a_bounded_wait_of_run_once);
  tcase_add_test(tc, test_removed_hooks_are_not_called);
  return tc;
}
