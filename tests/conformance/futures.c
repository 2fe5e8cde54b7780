/* Futures: outcomes, done-callbacks through the ready queue, cancellation, errors nobody read,
 * and the combinators (sleep, gather, wait_for). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

static int order[8], norder;
static void note(aloop_future *f, void *arg) {
  (void)f;
  order[norder++] = (int)(intptr_t)arg;
}

START_TEST(test_done_callbacks_run_later_in_the_order_added) {
  norder = 0;
  aloop_future *f = aloop_future_new(L, "test");
  for (intptr_t i = 0; i < 3; i++) ck_assert_int_eq(aloop_future_add_done_callback(f, note, (void *)i), 0);
  ck_assert_int_eq(aloop_future_remove_done_callback(f, note, (void *)1), 1);
  ck_assert(!aloop_future_done(f));
  ck_assert_int_eq(aloop_future_outcome(f), -ALOOP_EPENDING);
  ck_assert_int_eq(aloop_future_set_result(f, 42), 0);
  ck_assert_int_eq(norder, 0); /* never from inside set_result */
  ck_assert_int_eq(aloop_future_set_result(f, 1), -ALOOP_EDONE);
  aloop_run_once(L, 0);
  ck_assert_int_eq(norder, 2);
  ck_assert_int_eq(order[0], 0);
  ck_assert_int_eq(order[1], 2);
  ck_assert_int_eq(aloop_future_add_done_callback(f, note, (void *)7), 0); /* already done */
  ck_assert_int_eq(norder, 2);
  aloop_run_once(L, 0);
  ck_assert_int_eq(order[2], 7);
  ck_assert_int_eq(aloop_future_outcome(f), 42);
  aloop_future_release(f);
}
END_TEST

START_TEST(test_errors_carry_a_code_and_a_message) {
  aloop_future *f = aloop_future_new(L, "test");
  ck_assert_int_eq(aloop_future_set_result(f, -1), -EINVAL);
  ck_assert_int_eq(aloop_future_set_error(f, -ECONNRESET, "peer %s left", "x"), 0);
  ck_assert_int_eq(aloop_future_outcome(f), -ECONNRESET);
  ck_assert_str_eq(aloop_future_message(f), "peer x left");
  aloop_future_release(f);
}
END_TEST

START_TEST(test_an_error_never_retrieved_is_reported_when_freed) {
  reports_expected = 1;
  aloop_future *f = aloop_future_new(L, "the producer");
  aloop_future_set_error(f, -EPIPE, "write failed");
  aloop_future_release(f);
  ck_assert_int_eq(reports.count, 1);
  ck_assert_int_eq(reports.code, -EPIPE);
  ck_assert_str_eq(reports.source, "the producer");
  ck_assert_ptr_nonnull(strstr(reports.message, "never retrieved"));
  ck_assert_ptr_nonnull(strstr(reports.message, "write failed"));
  /* Read, or cancelled: no report. */
  f = aloop_future_new(L, "x");
  aloop_future_set_error(f, -EPIPE, NULL);
  ck_assert_int_eq(aloop_future_outcome(f), -EPIPE);
  aloop_future_release(f);
  f = aloop_future_new(L, "x");
  ck_assert_int_eq(aloop_future_cancel(f), 0);
  ck_assert(aloop_future_cancelled(f));
  ck_assert_int_eq(aloop_future_cancel(f), -ALOOP_EDONE);
  aloop_future_release(f);
  ck_assert_int_eq(reports.count, 1);
}
END_TEST

START_TEST(test_data_is_freed_with_the_future_unless_taken) {
  aloop_future *f = aloop_future_new(L, "x");
  aloop_future_set_data(f, strdup("owned"), free); /* the sanitizer build sees a leak if not freed */
  aloop_future_release(f);
  f = aloop_future_new(L, "x");
  aloop_future_set_data(f, strdup("taken"), free);
  char *s = aloop_future_take_data(f);
  aloop_future_release(f);
  ck_assert_str_eq(s, "taken");
  free(s);
}
END_TEST

START_TEST(test_sleep_completes_after_its_delay_and_not_before) {
  int64_t t0 = aloop_time(L);
  aloop_future *f = aloop_sleep(L, 30 * MS);
  ck_assert_int_eq(aloop_run_until_complete(L, f), 0);
  ck_assert_int_ge(aloop_time(L) - t0, 30 * MS);
  aloop_future_release(f);
}
END_TEST

START_TEST(test_gather_waits_for_all_and_reports_the_first_error_in_order) {
  aloop_future *items[3] = {aloop_sleep(L, 20 * MS), aloop_future_new(L, "b"), aloop_sleep(L, 1 * MS)};
  aloop_future *all = aloop_gather(L, items, 3);
  aloop_future_set_error(items[1], -EIO, "b broke");
  ck_assert_int_eq(aloop_run_until_complete(L, all), -EIO);
  ck_assert_str_eq(aloop_future_message(all), "b broke");
  ck_assert(aloop_future_done(items[0])); /* it waited for the slow one too */
  for (int i = 0; i < 3; i++) aloop_future_release(items[i]);
  aloop_future_release(all);

  aloop_future *ok[2] = {aloop_sleep(L, 1 * MS), aloop_sleep(L, 2 * MS)};
  all = aloop_gather(L, ok, 2);
  ck_assert_int_eq(aloop_run_until_complete(L, all), 2);
  aloop_future_release(ok[0]), aloop_future_release(ok[1]), aloop_future_release(all);
}
END_TEST

START_TEST(test_cancelling_a_gather_cancels_what_is_pending) {
  aloop_future *items[2] = {aloop_sleep(L, 60 * SEC), aloop_sleep(L, 60 * SEC)};
  aloop_future *all = aloop_gather(L, items, 2);
  ck_assert_int_eq(aloop_future_cancel(all), 0);
  ck_assert_int_eq(aloop_run_until_complete(L, all), -ECANCELED);
  ck_assert(aloop_future_cancelled(items[0]) && aloop_future_cancelled(items[1]));
  aloop_future_release(items[0]), aloop_future_release(items[1]), aloop_future_release(all);
}
END_TEST

START_TEST(test_wait_for_times_out_and_cancels_the_inner_work) {
  aloop_future *slow = aloop_sleep(L, 60 * SEC);
  int64_t t0 = aloop_time(L);
  aloop_future *w = aloop_wait_for(L, slow, 20 * MS);
  ck_assert_int_eq(aloop_run_until_complete(L, w), -ETIMEDOUT);
  ck_assert_int_ge(aloop_time(L) - t0, 20 * MS);
  ck_assert(aloop_future_cancelled(slow));
  aloop_future_release(w);
  aloop_future_release(slow);

  aloop_future *fast = aloop_sleep(L, 1 * MS);
  w = aloop_wait_for(L, fast, 30 * SEC);
  ck_assert_int_eq(aloop_run_until_complete(L, w), 0);
  aloop_future_release(w);
  aloop_future_release(fast);
}
END_TEST

static void stop_now(aloop_loop *loop, void *arg) {
  (void)arg;
  aloop_stop(loop);
}

START_TEST(test_run_until_complete_returns_early_when_the_loop_is_stopped) {
  aloop_future *never = aloop_future_new(L, "never");
  aloop_call_soon(L, stop_now, NULL, NULL);
  ck_assert_int_eq(aloop_run_until_complete(L, never), -ALOOP_EPENDING);
  ck_assert_int_eq(aloop_future_cancel(never), 0);
  aloop_future_release(never);
  aloop_future *s = aloop_sleep(L, 1 * MS); /* the stop was consumed: this one waits as usual */
  ck_assert_int_eq(aloop_run_until_complete(L, s), 0);
  aloop_future_release(s);
}
END_TEST

TCase *conformance_futures(void) {
  TCase *tc = conformance_tcase("futures");
  tcase_add_test(tc, test_done_callbacks_run_later_in_the_order_added);
  tcase_add_test(tc, test_errors_carry_a_code_and_a_message);
  tcase_add_test(tc, test_an_error_never_retrieved_is_reported_when_freed);
  tcase_add_test(tc, test_data_is_freed_with_the_future_unless_taken);
  tcase_add_test(tc, test_sleep_completes_after_its_delay_and_not_before);
  tcase_add_test(tc, test_gather_waits_for_all_and_reports_the_first_error_in_order);
  tcase_add_test(tc, test_cancelling_a_gather_cancels_what_is_pending);
  tcase_add_test(tc, test_wait_for_times_out_and_cancels_the_inner_work);
  tcase_add_test(tc, test_run_until_complete_returns_early_when_the_loop_is_stopped);
  return tc;
}
