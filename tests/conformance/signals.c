/* Signal handlers run on the loop, not in signal context; one loop per signal. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

static volatile sig_atomic_t handled;

static void on_signal(aloop_loop *loop, void *arg) {
  (void)arg;
  handled++;
  aloop_stop(loop);
}

START_TEST(test_handler_runs_on_the_loop_after_the_signal) {
  handled = 0;
  ck_assert_int_eq(aloop_add_signal_handler(L, SIGUSR1, on_signal, NULL), 0);
  raise(SIGUSR1);
  ck_assert_int_eq(handled, 0); /* not called from the signal handler itself */
  ck_assert(run_at_most(L, 30 * SEC));
  ck_assert_int_eq(handled, 1);
  ck_assert_int_eq(aloop_remove_signal_handler(L, SIGUSR1), 1);
  ck_assert_int_eq(aloop_remove_signal_handler(L, SIGUSR1), 0);
}
END_TEST

static void *signal_later(void *arg) {
  (void)arg;
  struct timespec nap = {0, 50 * MS};
  nanosleep(&nap, NULL);
  kill(getpid(), SIGUSR2);
  return NULL;
}

START_TEST(test_signal_sent_while_the_loop_sleeps_wakes_it) {
  handled = 0;
  ck_assert_int_eq(aloop_add_signal_handler(L, SIGUSR2, on_signal, NULL), 0);
  pthread_t thread;
  ck_assert_int_eq(pthread_create(&thread, NULL, signal_later, NULL), 0);
  int stopped = run_at_most(L, 60 * SEC);
  pthread_join(thread, NULL);
  ck_assert(stopped);
  ck_assert_int_eq(handled, 1);
  aloop_remove_signal_handler(L, SIGUSR2);
}
END_TEST

static volatile sig_atomic_t previous_ran;
static void previous_handler(int signum) {
  (void)signum;
  previous_ran = 1;
}

START_TEST(test_removing_a_handler_restores_the_previous_disposition) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = previous_handler;
  ck_assert_int_eq(sigaction(SIGUSR1, &sa, NULL), 0);
  previous_ran = 0;
  ck_assert_int_eq(aloop_add_signal_handler(L, SIGUSR1, on_signal, NULL), 0);
  raise(SIGUSR1);
  ck_assert_int_eq(previous_ran, 0);
  ck_assert_int_eq(aloop_remove_signal_handler(L, SIGUSR1), 1);
  raise(SIGUSR1);
  ck_assert_int_eq(previous_ran, 1);
  aloop_run_once(L, 0); /* the delivery before removal must not call the removed handler */
  ck_assert_int_eq(handled, 0);
}
END_TEST

START_TEST(test_a_signal_belongs_to_one_loop_at_a_time) {
  aloop_loop *other = new_test_loop();
  ck_assert_int_eq(aloop_add_signal_handler(L, SIGUSR1, on_signal, NULL), 0);
  ck_assert_int_eq(aloop_add_signal_handler(other, SIGUSR1, on_signal, NULL), -ALOOP_ESIGBUSY);
  ck_assert_int_eq(aloop_add_signal_handler(L, SIGUSR1, on_signal, NULL), 0); /* replaces */
  ck_assert_int_eq(aloop_remove_signal_handler(L, SIGUSR1), 1);
  ck_assert_int_eq(aloop_add_signal_handler(other, SIGUSR1, on_signal, NULL), 0);
  ck_assert_int_eq(aloop_free(other), 0); /* frees its handler too */
  ck_assert_int_eq(aloop_add_signal_handler(L, SIGUSR1, on_signal, NULL), 0);
  aloop_remove_signal_handler(L, SIGUSR1);
}
END_TEST

START_TEST(test_uncatchable_and_invalid_signals_are_refused) {
  ck_assert_int_eq(aloop_add_signal_handler(L, SIGKILL, on_signal, NULL), -EINVAL);
  ck_assert_int_eq(aloop_add_signal_handler(L, SIGSTOP, on_signal, NULL), -EINVAL);
  ck_assert_int_eq(aloop_add_signal_handler(L, 0, on_signal, NULL), -EINVAL);
  ck_assert_int_eq(aloop_add_signal_handler(L, 100000, on_signal, NULL), -EINVAL);
  ck_assert_int_eq(aloop_add_signal_handler(L, SIGUSR1, NULL, NULL), -EINVAL);
}
END_TEST

/* ---- signals caught on another thread, one at a time ------------------------------------------ */

enum { ROUNDS = 300 };
static atomic_int seen_rounds;

static void count_round(aloop_loop *loop, void *arg) {
  (void)arg;
  if (atomic_fetch_add(&seen_rounds, 1) + 1 == ROUNDS) aloop_stop(loop);
}

/* Each round raises the signal on this thread (so the handler runs here, not on the loop's) and
 * waits until the loop has seen it: a signal whose wake-up was lost would stall its round. */
static void *raise_rounds(void *arg) {
  (void)arg;
  for (int i = 0; i < ROUNDS; i++) {
    pthread_kill(pthread_self(), SIGUSR1);
    for (int waited = 0; atomic_load(&seen_rounds) <= i && waited < 30000; waited++) {
      struct timespec nap = {0, 1 * MS};
      nanosleep(&nap, NULL);
    }
    if (atomic_load(&seen_rounds) <= i) return (void *)(intptr_t)(i + 1); /* lost */
  }
  return NULL;
}

START_TEST(test_signals_caught_on_another_thread_each_reach_the_loop) {
  atomic_store(&seen_rounds, 0);
  ck_assert_int_eq(aloop_add_signal_handler(L, SIGUSR1, count_round, NULL), 0);
  pthread_t thread;
  ck_assert_int_eq(pthread_create(&thread, NULL, raise_rounds, NULL), 0);
  int stopped = run_at_most(L, 120 * SEC);
  void *lost;
  pthread_join(thread, &lost);
  ck_assert_msg(lost == NULL, "round %d's signal never reached the loop", (int)(intptr_t)lost - 1);
  ck_assert(stopped);
  ck_assert_int_eq(atomic_load(&seen_rounds), ROUNDS);
  aloop_remove_signal_handler(L, SIGUSR1);
}
END_TEST

TCase *conformance_signals(void) {
  TCase *tc = conformance_tcase("signals");
  tcase_add_test(tc, test_handler_runs_on_the_loop_after_the_signal);
  tcase_add_test(tc, test_signal_sent_while_the_loop_sleeps_wakes_it);
  tcase_add_test(tc, test_removing_a_handler_restores_the_previous_disposition);
  tcase_add_test(tc, test_a_signal_belongs_to_one_loop_at_a_time);
  tcase_add_test(tc, test_uncatchable_and_invalid_signals_are_refused);
  tcase_add_test(tc, test_signals_caught_on_another_thread_each_reach_the_loop);
  return tc;
}
