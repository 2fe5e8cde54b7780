/* The ready queue: FIFO order, one batch per iteration, cancellation, error reports. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "harness.h"

enum { MANY = 1000 };
static int order[MANY], norder;

static void record(aloop_loop *loop, void *arg) {
  (void)loop;
  order[norder++] = (int)(intptr_t)arg;
}

START_TEST(test_callbacks_run_in_the_order_scheduled) {
  norder = 0;
  for (intptr_t i = 0; i < MANY; i++) ck_assert_int_eq(aloop_call_soon(L, record, (void *)i, NULL), 0);
  ck_assert_int_eq(aloop_run_once(L, 0), MANY);
  ck_assert_int_eq(norder, MANY);
  for (int i = 0; i < MANY; i++) ck_assert_int_eq(order[i], i);
}
END_TEST

static void schedule_next(aloop_loop *loop, void *arg) {
  record(loop, arg);
  intptr_t depth = (intptr_t)arg;
  if (depth < 3) aloop_call_soon(loop, schedule_next, (void *)(depth + 1), NULL);
}

START_TEST(test_callbacks_scheduled_by_callbacks_wait_for_the_next_iteration) {
  norder = 0;
  aloop_call_soon(L, schedule_next, (void *)0, NULL);
  for (int i = 1; i <= 4; i++) {
    ck_assert_int_eq(aloop_run_once(L, 0), 1);
    ck_assert_int_eq(norder, i);
  }
  ck_assert_int_eq(aloop_run_once(L, 0), 0);
}
END_TEST

static aloop_handle victim;
static void cancel_victim(aloop_loop *loop, void *arg) {
  record(loop, arg);
  ck_assert_int_eq(aloop_cancel(loop, victim), 0);
}

START_TEST(test_cancelled_callback_never_runs) {
  norder = 0;
  aloop_handle h;
  aloop_call_soon(L, record, (void *)1, &h);
  aloop_call_soon(L, record, (void *)2, NULL);
  ck_assert_int_eq(aloop_cancel(L, h), 0);
  ck_assert_int_eq(aloop_cancel(L, h), -ALOOP_ESTALE);
  ck_assert_int_eq(aloop_run_once(L, 0), 1);
  ck_assert_int_eq(norder, 1);
  ck_assert_int_eq(order[0], 2);
}
END_TEST

START_TEST(test_a_callback_can_cancel_a_later_one_in_the_same_batch) {
  norder = 0;
  aloop_call_soon(L, cancel_victim, (void *)1, NULL);
  aloop_call_soon(L, record, (void *)2, &victim);
  aloop_call_soon(L, record, (void *)3, NULL);
  ck_assert_int_eq(aloop_run_once(L, 0), 2);
  ck_assert_int_eq(norder, 2);
  ck_assert_int_eq(order[1], 3);
}
END_TEST

static aloop_handle self;
static int self_cancel_result;
static void cancel_self(aloop_loop *loop, void *arg) {
  (void)arg;
  self_cancel_result = aloop_cancel(loop, self);
}

START_TEST(test_cancelling_a_handle_that_ran_is_stale_even_after_reuse) {
  aloop_call_soon(L, cancel_self, NULL, &self);
  ck_assert_int_eq(aloop_run_once(L, 0), 1);
  ck_assert_int_eq(self_cancel_result, -ALOOP_ESTALE);
  /* The slot is recycled for the next callback; the old handle must not cancel it. */
  norder = 0;
  aloop_handle fresh;
  aloop_call_soon(L, record, (void *)7, &fresh);
  ck_assert_int_eq(aloop_cancel(L, self), -ALOOP_ESTALE);
  ck_assert_int_eq(aloop_run_once(L, 0), 1);
  ck_assert_int_eq(norder, 1);
  aloop_handle none = {0};
  ck_assert_int_eq(aloop_cancel(L, none), -EINVAL);
}
END_TEST

static void report_then_continue(aloop_loop *loop, void *arg) {
  (void)arg;
  aloop_report_error(loop, -EPIPE, 9, "peer %s went away", "127.0.0.1:1");
}

START_TEST(test_reported_errors_reach_the_handler_and_the_loop_goes_on) {
  norder = 0;
  reports_expected = 1;
  aloop_call_soon(L, report_then_continue, NULL, NULL);
  aloop_call_soon(L, record, (void *)5, NULL);
  ck_assert_int_eq(aloop_run_once(L, 0), 2);
  ck_assert_int_eq(reports.count, 1);
  ck_assert_int_eq(reports.code, -EPIPE);
  ck_assert_int_eq(reports.fd, 9);
  ck_assert_str_eq(reports.source, "callback");
  ck_assert_str_eq(reports.message, "peer 127.0.0.1:1 went away");
  ck_assert_int_eq(norder, 1);
  aloop_stats st;
  aloop_get_stats(L, &st);
  ck_assert_uint_eq(st.errors, 1);
}
END_TEST

/* ---- rate-limited reports ----------------------------------------------------------------------- */

static struct {
  int delivered, summaries;
  uint64_t repeats;
  int fd;
  int64_t at;
  char message[256];
} seen;

static void count_report(aloop_loop *loop, const aloop_error_info *info, void *arg) {
  (void)arg;
  seen.delivered++;
  seen.at = aloop_time(loop);
  seen.fd = info->fd;
  snprintf(seen.message, sizeof seen.message, "%s", info->message);
  if (info->repeats) {
    seen.summaries++;
    seen.repeats = info->repeats;
    aloop_stop(loop);
  }
}

static void flood(aloop_loop *loop, int n) {
  for (int i = 0; i < n; i++) aloop_report_error(loop, -EMFILE, 100 + i, "connection %d refused", i);
}

START_TEST(test_a_flood_of_one_kind_of_report_is_one_line_then_one_summary_per_interval) {
  memset(&seen, 0, sizeof seen);
  aloop_set_error_handler(L, count_report, NULL);
  aloop_set_report_interval(L, 200 * MS);
  int64_t t0 = aloop_time(L);
  flood(L, 10000);
  aloop_report_error(L, -EPIPE, -1, "another kind"); /* not held back by the first kind */
  ck_assert_int_eq(seen.delivered, 2);
  ck_assert_int_eq(seen.summaries, 0);
  ck_assert(run_at_most(L, 30 * SEC)); /* the summary stops the loop */
  ck_assert_int_eq(seen.summaries, 1);
  ck_assert_uint_eq(seen.repeats, 9999);
  ck_assert_str_eq(seen.message, "connection 9999 refused");
  ck_assert_int_eq(seen.fd, 100 + 9999);
  ck_assert_int_ge(seen.at - t0, 200 * MS); /* never before its interval */
  /* Quiet for a while: the next one is in words again. */
  ck_assert(!run_at_most(L, 500 * MS));
  ck_assert_int_eq(seen.delivered, 3);
  flood(L, 1);
  ck_assert_int_eq(seen.delivered, 4);
  ck_assert_int_eq(seen.summaries, 1);
  aloop_stats st;
  aloop_get_stats(L, &st);
  ck_assert_uint_eq(st.errors, 10002);
  /* Interval 0: every report goes out. */
  aloop_set_report_interval(L, 0);
  flood(L, 5);
  ck_assert_int_eq(seen.delivered, 9);
}
END_TEST

START_TEST(test_freeing_the_loop_delivers_the_summaries_still_owed) {
  memset(&seen, 0, sizeof seen);
  aloop_loop *loop = new_test_loop();
  aloop_set_error_handler(loop, count_report, NULL);
  flood(loop, 3);
  ck_assert_int_eq(seen.delivered, 1);
  ck_assert_int_eq(aloop_free(loop), 0);
  ck_assert_int_eq(seen.delivered, 2);
  ck_assert_int_eq(seen.summaries, 1);
  ck_assert_uint_eq(seen.repeats, 2);
}
END_TEST

TCase *conformance_call_soon(void) {
  TCase *tc = conformance_tcase("call_soon");
  tcase_add_test(tc, test_callbacks_run_in_the_order_scheduled);
  tcase_add_test(tc, test_callbacks_scheduled_by_callbacks_wait_for_the_next_iteration);
  tcase_add_test(tc, test_cancelled_callback_never_runs);
  tcase_add_test(tc, test_a_callback_can_cancel_a_later_one_in_the_same_batch);
  tcase_add_test(tc, test_cancelling_a_handle_that_ran_is_stale_even_after_reuse);
  tcase_add_test(tc, test_reported_errors_reach_the_handler_and_the_loop_goes_on);
  tcase_add_test(tc, test_a_flood_of_one_kind_of_report_is_one_line_then_one_summary_per_interval);
  tcase_add_test(tc, test_freeing_the_loop_delivers_the_summaries_still_owed);
  return tc;
}
