/* Tasks: coroutines on the loop that await futures; cancellation; unretrieved errors; stacks that
 * are guarded and reused; the queue between tasks. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdint.h>
#include <sys/socket.h>
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

/* ---- the guard gap: a frame larger than a page must not step over it ------------------------------ */

enum { BIG_FRAME = 128 * 1024, SMALL_STACK = 64 * 1024 };
static volatile char *victim_canary;

static void on_overflow(int sig) {
  (void)sig;
  if (!victim_canary) _exit(44);
  for (int i = 0; i < 256; i++)
    if (victim_canary[i] != (char)0x5a) _exit(43); /* the neighbour's stack was written */
  _exit(42);
}

static int64_t victim(void *arg) {
  volatile char canary[256];
  memset((char *)canary, 0x5a, sizeof canary);
  victim_canary = canary;
  return aloop_await_keep(arg); /* suspended, its frame alive, until the process ends */
}

/* Built without stack-clash protection on purpose: user code may be, and the gap must hold then.
 * The frame's lowest byte is written first and then the rest upwards, as a buffer's fill would. */
__attribute__((optimize("no-stack-clash-protection"), noinline)) static int64_t fill_big_frame(int v) {
  volatile char frame[BIG_FRAME];
  for (size_t i = 0; i < sizeof frame; i++) frame[i] = (char)v;
  return frame[v];
}

static int64_t big_frame(void *arg) {
  aloop_task_yield(L); /* the victim's turn first: it suspends with its canary on its stack */
  return fill_big_frame((int)(intptr_t)arg);
}

START_TEST(test_a_frame_larger_than_a_page_faults_in_the_guard_gap_instead_of_writing_another_stack) {
  fflush(NULL);
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    static char altstack[64 * 1024];
    stack_t ss = {.ss_sp = altstack, .ss_size = sizeof altstack};
    struct sigaction sa = {.sa_handler = on_overflow, .sa_flags = SA_ONSTACK};
    if (sigaltstack(&ss, NULL) < 0 || sigaction(SIGSEGV, &sa, NULL) < 0) _exit(2);
    aloop_task_options opts = {.size = sizeof opts, .stack_size = SMALL_STACK};
    /* Mapped first, so the victim's stack, mapped next, lies right below it. */
    aloop_future *bad = aloop_task_spawn(L, big_frame, (void *)1, &opts);
    aloop_future *never = aloop_future_new(L, "never");
    aloop_future *v = aloop_task_spawn(L, victim, never, &opts);
    aloop_run_until_complete(L, bad);
    (void)v;
    _exit(0); /* returned: the frame fitted somewhere it must not have */
  }
  int status;
  ck_assert_int_eq(waitpid(pid, &status, 0), pid);
  ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 42,
                "expected a fault in the gap with the neighbour intact (exit 42); status %#x",
                status);
}
END_TEST

/* ---- awaiting oneself ------------------------------------------------------------------------------- */

static int64_t await_self(void *arg) {
  (void)arg;
  int64_t r = aloop_await_keep(aloop_task_current());
  return r == -EDEADLK ? 1 : aloop_task_error(-EPROTO, "awaiting itself gave %lld", (long long)r);
}

START_TEST(test_a_task_awaiting_its_own_future_is_refused) {
  aloop_future *t = aloop_task_spawn(L, await_self, NULL, NULL);
  ck_assert_int_eq(run_within(t, 10 * SEC), 1);
}
END_TEST

/* ---- a result that completed before the cancel is delivered ---------------------------------------- */

static void cancel_task_cb(aloop_future *f, void *arg) {
  (void)f;
  aloop_future_cancel(arg);
}

/* Accepts once; the accept's first done-callback (before the task resumes) cancels the task, as a
 * cancel arriving between the kernel's completion and the task's turn would. */
static int64_t accept_then_cancelled(void *arg) {
  int lfd = (int)(intptr_t)arg;
  aloop_future *f = aloop_sock_accept(L, lfd);
  if (!f) return -ENOMEM;
  aloop_future_add_done_callback(f, cancel_task_cb, aloop_task_current());
  int64_t fd = aloop_await(f);
  if (fd < 0) return aloop_task_error(fd, "the accepted connection was lost: %lld", (long long)fd);
  close((int)fd);
  /* The cancellation is still on: the next wait ends at once. */
  int64_t next = aloop_await(aloop_sleep(L, 60 * SEC));
  return next == -ECANCELED ? 1 : aloop_task_error(-EPROTO, "next await gave %lld", (long long)next);
}

static int count_fds(void) {
  int n = 0;
  for (int fd = 0; fd < 4096; fd++) n += fcntl(fd, F_GETFD) >= 0;
  return n;
}

START_TEST(test_a_task_cancelled_after_its_accept_completed_gets_the_fd_and_nothing_leaks) {
  struct sockaddr_in addr;
  int lfd = tcp_listener(&addr);
  int before = count_fds();
  aloop_future *t = aloop_task_spawn(L, accept_then_cancelled, (void *)(intptr_t)lfd, NULL);
  aloop_run_once(L, 0); /* the task starts its accept and waits: nobody is connecting yet */
  ck_assert(!aloop_future_done(t));
  int cfd = tcp_socket();
  ck_assert(connect(cfd, (struct sockaddr *)&addr, sizeof addr) == 0 || errno == EINPROGRESS);
  ck_assert_int_eq(run_within(t, 20 * SEC), 1);
  close(cfd);
  ck_assert_int_eq(count_fds(), before);
  aloop_close(L, lfd);
}
END_TEST

/* ---- freeing a loop with suspended tasks ------------------------------------------------------------ */

static int count_mappings(void) {
  FILE *f = fopen("/proc/self/maps", "r");
  ck_assert_ptr_nonnull(f);
  int n = 0;
  for (int c; (c = fgetc(f)) != EOF;) n += c == '\n';
  fclose(f);
  return n;
}

static int64_t wait_forever(void *arg) { return aloop_await_keep(arg); }

START_TEST(test_freeing_a_loop_with_suspended_tasks_unmaps_their_stacks) {
  aloop_loop *loop = new_test_loop();
  aloop_future *never = aloop_future_new(loop, "never");
  int before = count_mappings();
  for (int i = 0; i < 20; i++) aloop_future_release(aloop_task_spawn(loop, wait_forever, never, NULL));
  ck_assert_int_ge(aloop_run_once(loop, 0), 20); /* each task ran and now waits */
  ck_assert_int_ge(count_mappings(), before + 20 * 2); /* a guard and a stack each */
  aloop_future_release(never); /* nothing else holds it: the tasks only wait */
  ck_assert_int_eq(aloop_free(loop), 0);
  /* A driver's own allocations may leave a mapping or two behind; twenty stacks would be 40. */
  ck_assert_int_lt(count_mappings(), before + 20);
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
  tcase_add_test(tc, test_a_frame_larger_than_a_page_faults_in_the_guard_gap_instead_of_writing_another_stack);
  tcase_add_test(tc, test_a_task_awaiting_its_own_future_is_refused);
  tcase_add_test(tc, test_a_task_cancelled_after_its_accept_completed_gets_the_fd_and_nothing_leaks);
  tcase_add_test(tc, test_freeing_a_loop_with_suspended_tasks_unmaps_their_stacks);
  return tc;
}
