/* A loop run by one thread and later by another: it works, or the second run fails at once with
 * one report in words; it never spins. */
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

/* A thread's run: it stops itself after a short timer, as a program's main loop would. */
struct run {
  int result;
  uint64_t iterations;
  int stopped;
};

static void stop_run(aloop_loop *loop, void *arg) {
  ((struct run *)arg)->stopped = 1;
  aloop_stop(loop);
}

static void *run_on_thread(void *arg) {
  struct run *r = arg;
  aloop_handle timer;
  ck_assert_int_eq(aloop_call_later(L, 20 * MS, stop_run, r, &timer), 0);
  aloop_stats before, after;
  aloop_get_stats(L, &before);
  r->result = aloop_run(L);
  aloop_get_stats(L, &after);
  r->iterations = after.iterations - before.iterations;
  if (!r->stopped) aloop_cancel(L, timer); /* the run failed before its timer was due */
  return NULL;
}

static struct run run_thread(void) {
  struct run r = {0};
  pthread_t th;
  ck_assert_int_eq(pthread_create(&th, NULL, run_on_thread, &r), 0);
  ck_assert_int_eq(pthread_join(th, NULL), 0);
  return r;
}

static void count_readable(aloop_loop *loop, int fd, void *arg) {
  (void)loop, (void)fd;
  ++*(int *)arg;
}

START_TEST(test_a_loop_run_by_one_thread_then_another_runs_or_fails_in_words_never_spins) {
  int sv[2], readable = 0;
  make_socketpair(sv); /* something in the driver's hands while threads change */
  ck_assert_int_eq(aloop_add_reader(L, sv[0], count_readable, &readable), 0);
  struct run first = run_thread();
  ck_assert_int_eq(first.result, 0);
  ck_assert(first.stopped);
  struct run second = run_thread();
  /* A waiting loop makes a handful of iterations in 20 ms; a spinning one makes thousands. */
  ck_assert_msg(second.iterations < 1000, "%llu iterations in one run: the loop spins",
                (unsigned long long)second.iterations);
  if (second.result == 0) { /* it works: readiness still arrives */
    ck_assert(second.stopped);
    ck_assert_int_eq(write(sv[1], "hi", 2), 2);
    for (int i = 0; i < 1000 && !readable; i++) aloop_run_once(L, 10 * MS);
    ck_assert_int_gt(readable, 0);
  } else { /* it cannot: said once, in words, and it stays an error, not a spin */
    ck_assert_int_lt(second.result, 0);
    reports_expected = 1;
    ck_assert_msg(reports.count == 1, "%d reports", reports.count);
    ck_assert_msg(strlen(reports.message) > 40, "not in words: %s", reports.message);
    ck_assert_int_lt(aloop_run_once(L, 0), 0);
    ck_assert_int_eq(reports.count, 1);
  }
  aloop_remove_reader(L, sv[0]);
  close(sv[0]), close(sv[1]);
}
END_TEST

TCase *conformance_threads(void) {
  TCase *tc = conformance_tcase("threads");
  tcase_add_test(tc, test_a_loop_run_by_one_thread_then_another_runs_or_fails_in_words_never_spins);
  return tc;
}
