/* aloop_call_soon_threadsafe from several threads: nothing lost, nothing twice, per-thread order. */
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "harness.h"

enum { THREADS = 4, CALLS = 10000 };

static int seen[THREADS][CALLS];
static int last_index[THREADS];
static int total, out_of_order;

static void arrive(aloop_loop *loop, void *arg) {
  intptr_t v = (intptr_t)arg;
  int t = (int)(v / CALLS), i = (int)(v % CALLS);
  seen[t][i]++;
  if (i <= last_index[t]) out_of_order++;
  last_index[t] = i;
  if (++total == THREADS * CALLS) aloop_stop(loop);
}

static void *producer(void *arg) {
  intptr_t t = (intptr_t)arg;
  for (intptr_t i = 0; i < CALLS; i++)
    if (aloop_call_soon_threadsafe(L, arrive, (void *)(t * CALLS + i)) != 0) abort();
  return NULL;
}

START_TEST(test_calls_from_four_threads_arrive_once_each_in_order) {
  total = out_of_order = 0;
  for (int t = 0; t < THREADS; t++) last_index[t] = -1;
  pthread_t threads[THREADS];
  for (intptr_t t = 0; t < THREADS; t++)
    ck_assert_int_eq(pthread_create(&threads[t], NULL, producer, (void *)t), 0);
  int stopped = run_at_most(L, 60 * SEC);
  for (int t = 0; t < THREADS; t++) pthread_join(threads[t], NULL);
  ck_assert(stopped);
  ck_assert_int_eq(total, THREADS * CALLS);
  ck_assert_int_eq(out_of_order, 0);
  for (int t = 0; t < THREADS; t++)
    for (int i = 0; i < CALLS; i++) ck_assert_int_eq(seen[t][i], 1);
}
END_TEST

static void stop_loop(aloop_loop *loop, void *arg) {
  (void)arg;
  aloop_stop(loop);
}

static void *wake_later(void *arg) {
  (void)arg;
  struct timespec nap = {0, 50 * MS};
  nanosleep(&nap, NULL);
  aloop_call_soon_threadsafe(L, stop_loop, NULL);
  return NULL;
}

START_TEST(test_a_call_from_another_thread_wakes_a_sleeping_loop) {
  pthread_t thread;
  ck_assert_int_eq(pthread_create(&thread, NULL, wake_later, NULL), 0);
  /* Nothing else is scheduled but the 60 s deadline: the loop sleeps until woken. */
  int stopped = run_at_most(L, 60 * SEC);
  pthread_join(thread, NULL);
  ck_assert(stopped);
}
END_TEST

TCase *conformance_threadsafe(void) {
  TCase *tc = conformance_tcase("threadsafe");
  tcase_add_test(tc, test_calls_from_four_threads_arrive_once_each_in_order);
  tcase_add_test(tc, test_a_call_from_another_thread_wakes_a_sleeping_loop);
  return tc;
}
