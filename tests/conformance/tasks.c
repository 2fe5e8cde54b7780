/* Tasks: coroutines on the loop that await futures; cancellation; unretrieved errors; stacks that
 * are guarded and reused; the queue between tasks. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

static int64_t return_seven(void *arg) {
  (void)arg;
  return 7;
}

START_TEST(test_a_task_outcome_is_what_its_function_returns) {
  aloop_future *t = aloop_task_spawn(L, return_seven, NULL, NULL);
  ck_assert_ptr_nonnull(t);
  ck_assert(!aloop_future_done(t)); /* it starts on the next iteration */
  ck_assert_int_eq(aloop_run_until_complete(L, t), 7);
  aloop_future_release(t);
}
END_TEST

static char trace[64];
static size_t ntrace;

static int64_t sleeper(void *arg) {
  const char *name = arg;
  for (int i = 0; i < 3; i++) {
    trace[ntrace++] = name[0];
    int64_t r = aloop_await(aloop_sleep(L, (name[0] == 'a' ? 10 : 15) * MS));
    if (r < 0) return r;
  }
  return name[0];
}

START_TEST(test_tasks_interleave_at_their_awaits) {
  ntrace = 0;
  aloop_future *ts[2] = {aloop_task_spawn(L, sleeper, "a", NULL), aloop_task_spawn(L, sleeper, "b", NULL)};
  aloop_future *all = aloop_gather(L, ts, 2);
  ck_assert_int_eq(aloop_run_until_complete(L, all), 2);
  trace[ntrace] = '\0';
  ck_assert_str_eq(trace, "ababab"); /* a wakes at 10, 20; b at 15, 30: a a... never twice in a row */
  ck_assert_int_eq(aloop_future_outcome(ts[0]), 'a');
  ck_assert_int_eq(aloop_future_outcome(ts[1]), 'b');
  aloop_future_release(ts[0]), aloop_future_release(ts[1]), aloop_future_release(all);
}
END_TEST

static int64_t await_child(void *arg) {
  (void)arg;
  int64_t r = aloop_await(aloop_task_spawn(L, return_seven, NULL, NULL));
  return r * 6;
}

START_TEST(test_a_task_can_await_another_task) {
  aloop_future *t = aloop_task_spawn(L, await_child, NULL, NULL);
  ck_assert_int_eq(aloop_run_until_complete(L, t), 42);
  aloop_future_release(t);
}
END_TEST

static int cleaned_up;
static int64_t sleep_long(void *arg) {
  (void)arg;
  int64_t r = aloop_await(aloop_sleep(L, 60 * SEC));
  if (r == -ECANCELED) cleaned_up = 1;
  return r;
}

static void cancel_it(aloop_loop *loop, void *arg) {
  (void)loop;
  ck_assert_int_eq(aloop_future_cancel(arg), 0);
}

START_TEST(test_cancelling_a_task_cancels_what_it_awaits) {
  cleaned_up = 0;
  aloop_future *t = aloop_task_spawn(L, sleep_long, NULL, NULL);
  aloop_call_later(L, 10 * MS, cancel_it, t, NULL);
  ck_assert_int_eq(aloop_run_until_complete(L, t), -ECANCELED);
  ck_assert(aloop_future_cancelled(t));
  ck_assert_int_eq(cleaned_up, 1); /* the task saw -ECANCELED and ran its own cleanup */
  aloop_future_release(t);         /* teardown checks the 60 s timer is gone */
}
END_TEST

static int ran;
static int64_t mark_ran(void *arg) {
  (void)arg;
  ran = 1;
  return 0;
}

START_TEST(test_a_task_cancelled_before_it_starts_never_runs) {
  ran = 0;
  aloop_future *t = aloop_task_spawn(L, mark_ran, NULL, NULL);
  ck_assert_int_eq(aloop_future_cancel(t), 0);
  ck_assert_int_eq(aloop_run_until_complete(L, t), -ECANCELED);
  ck_assert_int_eq(ran, 0);
  aloop_future_release(t);
}
END_TEST

static int64_t fail_with_message(void *arg) {
  (void)arg;
  aloop_await(aloop_sleep(L, 1 * MS));
  return aloop_task_error(-EPROTO, "client sent %s", "boom");
}

static int64_t healthy(void *arg) {
  (void)arg;
  for (int i = 0; i < 5; i++)
    if (aloop_task_yield(L) < 0) return -1;
  return 5;
}

START_TEST(test_an_error_in_a_task_nobody_awaits_is_reported_and_others_go_on) {
  reports_expected = 1;
  aloop_task_options opts = {.size = sizeof opts, .name = "client handler"};
  aloop_future_release(aloop_task_spawn(L, fail_with_message, NULL, &opts));
  aloop_future *ok = aloop_task_spawn(L, healthy, NULL, NULL);
  aloop_future *later = aloop_sleep(L, 20 * MS);
  ck_assert_int_eq(aloop_run_until_complete(L, later), 0);
  ck_assert_int_eq(aloop_run_until_complete(L, ok), 5);
  ck_assert_int_eq(reports.count, 1);
  ck_assert_int_eq(reports.code, -EPROTO);
  ck_assert_str_eq(reports.source, "client handler");
  ck_assert_ptr_nonnull(strstr(reports.message, "never retrieved: client sent boom"));
  aloop_future_release(ok);
  aloop_future_release(later);
}
END_TEST

enum { MANY_TASKS = 1000 };
static int64_t yield_thrice(void *arg) {
  for (int i = 0; i < 3; i++) aloop_task_yield(L);
  return (int64_t)(intptr_t)arg;
}

START_TEST(test_a_thousand_tasks_run_to_completion_twice_over_reused_stacks) {
  static aloop_future *ts[MANY_TASKS];
  for (int round = 0; round < 2; round++) {
    for (intptr_t i = 0; i < MANY_TASKS; i++) ts[i] = aloop_task_spawn(L, yield_thrice, (void *)i, NULL);
    aloop_future *all = aloop_gather(L, ts, MANY_TASKS);
    ck_assert_int_eq(aloop_run_until_complete(L, all), MANY_TASKS);
    for (int i = 0; i < MANY_TASKS; i++) {
      ck_assert_int_eq(aloop_future_outcome(ts[i]), i);
      aloop_future_release(ts[i]);
    }
    aloop_future_release(all);
  }
}
END_TEST

START_TEST(test_await_outside_a_task_is_refused) {
  ck_assert_int_eq(aloop_await(aloop_sleep(L, 1 * SEC)), -EPERM);
  ck_assert_int_eq(aloop_await(NULL), -ENOMEM);
  /* The sleep's future was released; its timer still runs out harmlessly. */
  ck_assert(!run_at_most(L, 1200 * MS));
}
END_TEST

static int64_t use_stack(void *arg) {
  volatile char big[96 * 1024];
  memset((char *)big, (int)(intptr_t)arg, sizeof big);
  return big[sizeof big - 1];
}

/* 4 KiB a frame, a million deep: far past any stack, but not infinite in the compiler's eyes. */
static int64_t recurse(void *arg) {
  volatile char frame[4096];
  frame[0] = (char)(intptr_t)arg;
  if ((intptr_t)arg > 1000000) return frame[0];
  return recurse((void *)((intptr_t)arg + 1)) + frame[0];
}

START_TEST(test_a_task_stack_is_usable_and_an_overflow_faults_instead_of_corrupting) {
  aloop_future *t = aloop_task_spawn(L, use_stack, (void *)5, NULL);
  ck_assert_int_eq(aloop_run_until_complete(L, t), 5);
  aloop_future_release(t);

  fflush(NULL);
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) { /* the child overflows a small stack; it must die, not return */
    aloop_task_options opts = {.size = sizeof opts, .stack_size = 64 * 1024};
    aloop_future *bad = aloop_task_spawn(L, recurse, (void *)1, &opts);
    aloop_run_until_complete(L, bad);
    _exit(0);
  }
  int status;
  ck_assert_int_eq(waitpid(pid, &status, 0), pid);
  /* SIGSEGV from the guard page; under AddressSanitizer its report and exit status instead. */
  ck_assert_msg((WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV) ||
                    (WIFEXITED(status) && WEXITSTATUS(status) != 0),
                "the overflowing task's process ended with status %d", status);
}
END_TEST

static aloop_queue *queue;
static int64_t produce(void *arg) {
  (void)arg;
  for (intptr_t i = 1; i <= 100; i++)
    if (aloop_await(aloop_queue_put(queue, (void *)i)) < 0) return -1;
  return 100;
}

static int64_t consume(void *arg) {
  (void)arg;
  int64_t sum = 0;
  for (intptr_t i = 1; i <= 100; i++) {
    aloop_future *g = aloop_queue_get(queue);
    if (aloop_await_keep(g) < 0) return -1;
    intptr_t item = (intptr_t)aloop_future_data(g);
    aloop_future_release(g);
    if (item != i) return aloop_task_error(-EILSEQ, "got %ld, expected %ld", (long)item, (long)i);
    sum += item;
    if (aloop_queue_size(queue) > 2) return aloop_task_error(-EOVERFLOW, "queue above its bound");
  }
  return sum;
}

START_TEST(test_a_bounded_queue_hands_items_between_tasks_in_order) {
  queue = aloop_queue_new(L, 2);
  aloop_future *c = aloop_task_spawn(L, consume, NULL, NULL);
  aloop_future *p = aloop_task_spawn(L, produce, NULL, NULL);
  ck_assert_int_eq(aloop_run_until_complete(L, c), 5050);
  ck_assert_int_eq(aloop_run_until_complete(L, p), 100);
  void *item;
  ck_assert_int_eq(aloop_queue_try_get(queue, &item), -EAGAIN);
  aloop_future *waiting = aloop_queue_get(queue);
  ck_assert_int_eq(aloop_future_cancel(waiting), 0);
  ck_assert(aloop_future_cancelled(waiting));
  ck_assert_int_eq(aloop_queue_try_put(queue, (void *)1), 0); /* not handed to the cancelled getter */
  ck_assert_int_eq(aloop_queue_size(queue), 1);
  aloop_future_release(waiting);
  aloop_future_release(c);
  aloop_future_release(p);
  aloop_queue_free(queue);
}
END_TEST

TCase *conformance_tasks(void) {
  TCase *tc = conformance_tcase("tasks");
  tcase_add_test(tc, test_a_task_outcome_is_what_its_function_returns);
  tcase_add_test(tc, test_tasks_interleave_at_their_awaits);
  tcase_add_test(tc, test_a_task_can_await_another_task);
  tcase_add_test(tc, test_cancelling_a_task_cancels_what_it_awaits);
  tcase_add_test(tc, test_a_task_cancelled_before_it_starts_never_runs);
  tcase_add_test(tc, test_an_error_in_a_task_nobody_awaits_is_reported_and_others_go_on);
  tcase_add_test(tc, test_a_thousand_tasks_run_to_completion_twice_over_reused_stacks);
  tcase_add_test(tc, test_await_outside_a_task_is_refused);
  tcase_add_test(tc, test_a_task_stack_is_usable_and_an_overflow_faults_instead_of_corrupting);
  tcase_add_test(tc, test_a_bounded_queue_hands_items_between_tasks_in_order);
  return tc;
}
