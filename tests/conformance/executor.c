/* The executor and name resolution: work on other threads, results on the loop's thread. */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "harness.h"

static pthread_t loop_thread;
static int ran_on_loop_thread;

static int64_t square_elsewhere(void *arg) {
  if (pthread_equal(pthread_self(), loop_thread)) return -EDEADLK; /* must not run on the loop */
  struct timespec nap = {0, 2 * MS};
  nanosleep(&nap, NULL);
  intptr_t v = (intptr_t)arg;
  return v * v;
}

static void check_thread(aloop_future *f, void *arg) {
  (void)f;
  (void)arg;
  ran_on_loop_thread = pthread_equal(pthread_self(), loop_thread);
}

START_TEST(test_executor_jobs_run_elsewhere_and_results_arrive_on_the_loop_thread) {
  loop_thread = pthread_self();
  enum { JOBS = 20 };
  aloop_future *jobs[JOBS];
  for (intptr_t i = 0; i < JOBS; i++) jobs[i] = aloop_run_in_executor(L, square_elsewhere, (void *)i);
  aloop_future_add_done_callback(jobs[0], check_thread, NULL);
  aloop_future *all = aloop_gather(L, jobs, JOBS);
  ck_assert_int_eq(aloop_run_until_complete(L, all), JOBS);
  for (int i = 0; i < JOBS; i++) {
    ck_assert_int_eq(aloop_future_outcome(jobs[i]), i * i);
    aloop_future_release(jobs[i]);
  }
  ck_assert_int_eq(ran_on_loop_thread, 1);
  aloop_future_release(all);
}
END_TEST

static int64_t slow_job(void *arg) {
  (void)arg;
  struct timespec nap = {0, 50 * MS};
  nanosleep(&nap, NULL);
  return 1;
}

START_TEST(test_a_queued_executor_job_can_be_cancelled) {
  aloop_future *busy[ALOOP_EXECUTOR_THREADS + 2];
  for (int i = 0; i < ALOOP_EXECUTOR_THREADS + 2; i++) busy[i] = aloop_run_in_executor(L, slow_job, NULL);
  aloop_future *last = busy[ALOOP_EXECUTOR_THREADS + 1]; /* behind every thread's job: queued */
  ck_assert_int_eq(aloop_future_cancel(last), 0);
  ck_assert(aloop_future_cancelled(last));
  for (int i = 0; i <= ALOOP_EXECUTOR_THREADS; i++) ck_assert_int_eq(aloop_run_until_complete(L, busy[i]), 1);
  for (int i = 0; i < ALOOP_EXECUTOR_THREADS + 2; i++) aloop_future_release(busy[i]);
}
END_TEST

START_TEST(test_getaddrinfo_resolves_loopback_and_explains_failures) {
  aloop_future *f = aloop_getaddrinfo(L, "127.0.0.1", "8080", NULL);
  ck_assert_int_eq(aloop_run_until_complete(L, f), 0);
  struct addrinfo *ai = aloop_future_data(f);
  ck_assert_ptr_nonnull(ai);
  ck_assert_int_eq(ai->ai_family, AF_INET);
  ck_assert_int_eq(ntohs(((struct sockaddr_in *)ai->ai_addr)->sin_port), 8080);
  aloop_future_release(f);

  struct addrinfo hints = {.ai_flags = AI_NUMERICHOST, .ai_socktype = SOCK_STREAM};
  f = aloop_getaddrinfo(L, "not-an-address", "80", &hints);
  ck_assert_int_eq(aloop_run_until_complete(L, f), -ALOOP_EADDRINFO);
  ck_assert_ptr_nonnull(strstr(aloop_future_message(f), "not-an-address"));
  aloop_future_release(f);
}
END_TEST

TCase *conformance_executor(void) {
  TCase *tc = conformance_tcase("executor");
  tcase_add_test(tc, test_executor_jobs_run_elsewhere_and_results_arrive_on_the_loop_thread);
  tcase_add_test(tc, test_a_queued_executor_job_can_be_cancelled);
  tcase_add_test(tc, test_getaddrinfo_resolves_loopback_and_explains_failures);
  return tc;
}
