/* aloop_run / aloop_stop / aloop_run_once semantics, as asyncio's run_forever and stop. */
#include <string.h>

#include "harness.h"

static int ran[4];

static void mark(aloop_loop *loop, void *arg) {
  (void)loop;
  ran[(intptr_t)arg]++;
}

static void mark_then_schedule(aloop_loop *loop, void *arg) {
  mark(loop, arg);
  aloop_call_soon(loop, mark, (void *)3, NULL);
}

static void stop(aloop_loop *loop, void *arg) {
  mark(loop, arg);
  aloop_stop(loop);
}

START_TEST(test_stop_lets_the_current_batch_finish_then_run_returns) {
  memset(ran, 0, sizeof ran);
  aloop_call_soon(L, stop, (void *)0, NULL);
  aloop_call_soon(L, mark_then_schedule, (void *)1, NULL);
  ck_assert_int_eq(aloop_run(L), 0);
  ck_assert_int_eq(ran[0], 1);
  ck_assert_int_eq(ran[1], 1);
  ck_assert_int_eq(ran[3], 0); /* scheduled during the batch: still waiting */
  ck_assert_int_eq(aloop_run_once(L, 0), 1);
  ck_assert_int_eq(ran[3], 1);
}
END_TEST

START_TEST(test_stop_before_run_runs_one_iteration) {
  memset(ran, 0, sizeof ran);
  aloop_call_soon(L, mark, (void *)0, NULL);
  aloop_stop(L);
  ck_assert_int_eq(aloop_run(L), 0);
  ck_assert_int_eq(ran[0], 1);
}
END_TEST

START_TEST(test_run_can_be_started_again_after_a_stop) {
  memset(ran, 0, sizeof ran);
  for (int round = 1; round <= 3; round++) {
    aloop_call_soon(L, stop, (void *)0, NULL);
    ck_assert_int_eq(aloop_run(L), 0);
    ck_assert_int_eq(ran[0], round);
  }
}
END_TEST

static int nested[3];
static void try_nested(aloop_loop *loop, void *arg) {
  (void)arg;
  nested[0] = aloop_run(loop);
  nested[1] = aloop_run_once(loop, 0);
  nested[2] = aloop_free(loop);
  aloop_stop(loop);
}

START_TEST(test_running_a_running_loop_fails_clearly) {
  aloop_call_soon(L, try_nested, NULL, NULL);
  ck_assert_int_eq(aloop_run(L), 0);
  for (int i = 0; i < 3; i++) ck_assert_int_eq(nested[i], -ALOOP_ERUNNING);
  ck_assert_ptr_nonnull(strstr(aloop_strerror(nested[0]), "already running"));
}
END_TEST

START_TEST(test_run_once_counts_the_callbacks_it_ran) {
  memset(ran, 0, sizeof ran);
  ck_assert_int_eq(aloop_run_once(L, 0), 0);
  for (int i = 0; i < 3; i++) aloop_call_soon(L, mark, (void *)1, NULL);
  ck_assert_int_eq(aloop_run_once(L, 0), 3);
  ck_assert_int_eq(ran[1], 3);
}
END_TEST

TCase *conformance_run_stop(void) {
  TCase *tc = conformance_tcase("run_stop");
  tcase_add_test(tc, test_stop_lets_the_current_batch_finish_then_run_returns);
  tcase_add_test(tc, test_stop_before_run_runs_one_iteration);
  tcase_add_test(tc, test_run_can_be_started_again_after_a_stop);
  tcase_add_test(tc, test_running_a_running_loop_fails_clearly);
  tcase_add_test(tc, test_run_once_counts_the_callbacks_it_ran);
  return tc;
}
