/* Readers and writers on pipes and socketpairs, and changing them from inside callbacks. */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

#include "harness.h"

struct counter {
  int calls;
  int last_fd;
};

static void count(aloop_loop *loop, int fd, void *arg) {
  (void)loop;
  struct counter *c = arg;
  c->calls++;
  c->last_fd = fd;
}

static void count_and_stop(aloop_loop *loop, int fd, void *arg) {
  count(loop, fd, arg);
  aloop_stop(loop);
}

static void put(int fd, const char *s) { ck_assert_int_eq(write(fd, s, 1), 1); }

START_TEST(test_reader_runs_when_a_pipe_has_data) {
  int p[2];
  make_pipe(p);
  struct counter c = {0};
  ck_assert_int_eq(aloop_add_reader(L, p[0], count_and_stop, &c), 0);
  ck_assert_int_eq(aloop_run_once(L, 0), 0); /* nothing to read yet */
  ck_assert_int_eq(c.calls, 0);
  put(p[1], "x");
  ck_assert(run_at_most(L, 30 * SEC));
  ck_assert_int_eq(c.calls, 1);
  ck_assert_int_eq(c.last_fd, p[0]);
  ck_assert_int_eq(aloop_remove_reader(L, p[0]), 1);
  close(p[0]);
  close(p[1]);
}
END_TEST

START_TEST(test_writer_runs_while_a_socket_is_writable) {
  int sv[2];
  make_socketpair(sv);
  struct counter c = {0};
  ck_assert_int_eq(aloop_add_writer(L, sv[0], count, &c), 0);
  for (int i = 0; i < 3; i++) aloop_run_once(L, 5 * SEC);
  ck_assert_int_eq(c.calls, 3); /* level-triggered: every iteration while writable */
  ck_assert_int_eq(aloop_remove_writer(L, sv[0]), 1);
  close(sv[0]);
  close(sv[1]);
}
END_TEST

START_TEST(test_reader_and_writer_on_one_fd_both_run) {
  int sv[2];
  make_socketpair(sv);
  struct counter r = {0}, w = {0};
  aloop_add_reader(L, sv[0], count, &r);
  aloop_add_writer(L, sv[0], count, &w);
  put(sv[1], "x");
  aloop_run_once(L, 5 * SEC);
  ck_assert_int_eq(r.calls, 1);
  ck_assert_int_eq(w.calls, 1);
  ck_assert_int_eq(aloop_remove_reader(L, sv[0]), 1);
  aloop_run_once(L, 5 * SEC);
  ck_assert_int_eq(r.calls, 1);
  ck_assert_int_eq(w.calls, 2);
  ck_assert_int_eq(aloop_remove_writer(L, sv[0]), 1);
  close(sv[0]);
  close(sv[1]);
}
END_TEST

START_TEST(test_removed_reader_no_longer_runs_though_data_remains) {
  int p[2];
  make_pipe(p);
  struct counter c = {0};
  aloop_add_reader(L, p[0], count, &c);
  put(p[1], "x");
  aloop_run_once(L, 5 * SEC);
  ck_assert_int_eq(c.calls, 1);
  ck_assert_int_eq(aloop_remove_reader(L, p[0]), 1);
  ck_assert_int_eq(aloop_remove_reader(L, p[0]), 0);
  aloop_run_once(L, 20 * MS);
  ck_assert_int_eq(c.calls, 1);
  close(p[0]);
  close(p[1]);
}
END_TEST

static int pipes[2][2];
static int remover_calls;
static void remove_both(aloop_loop *loop, int fd, void *arg) {
  (void)fd;
  (void)arg;
  remover_calls++;
  aloop_remove_reader(loop, pipes[0][0]);
  aloop_remove_reader(loop, pipes[1][0]);
}

START_TEST(test_a_reader_removed_by_another_callback_does_not_run_even_if_ready) {
  make_pipe(pipes[0]);
  make_pipe(pipes[1]);
  remover_calls = 0;
  aloop_add_reader(L, pipes[0][0], remove_both, NULL);
  aloop_add_reader(L, pipes[1][0], remove_both, NULL);
  put(pipes[0][1], "x");
  put(pipes[1][1], "x");
  /* Give the second pipe's readiness time to be seen in the same poll. */
  aloop_run_once(L, 5 * SEC);
  ck_assert_int_eq(remover_calls, 1);
  for (int i = 0; i < 2; i++) close(pipes[i][0]), close(pipes[i][1]);
}
END_TEST

static struct counter readded;
static void remove_and_readd_self(aloop_loop *loop, int fd, void *arg) {
  (void)arg;
  ck_assert_int_eq(aloop_remove_reader(loop, fd), 1);
  ck_assert_int_eq(aloop_add_reader(loop, fd, count, &readded), 0);
}

START_TEST(test_a_reader_can_replace_itself_from_its_own_callback) {
  int p[2];
  make_pipe(p);
  readded = (struct counter){0};
  aloop_add_reader(L, p[0], remove_and_readd_self, NULL);
  put(p[1], "x");
  aloop_run_once(L, 5 * SEC);
  ck_assert_int_eq(readded.calls, 0);
  aloop_run_once(L, 5 * SEC);
  ck_assert_int_eq(readded.calls, 1);
  aloop_remove_reader(L, p[0]);
  close(p[0]);
  close(p[1]);
}
END_TEST

static int other_pipe[2];
static struct counter added_later;
static void add_other(aloop_loop *loop, int fd, void *arg) {
  (void)fd;
  (void)arg;
  aloop_remove_reader(loop, fd);
  ck_assert_int_eq(aloop_add_reader(loop, other_pipe[0], count_and_stop, &added_later), 0);
}

START_TEST(test_a_reader_added_from_a_callback_runs) {
  int p[2];
  make_pipe(p);
  make_pipe(other_pipe);
  added_later = (struct counter){0};
  aloop_add_reader(L, p[0], add_other, NULL);
  put(p[1], "x");
  put(other_pipe[1], "y");
  ck_assert(run_at_most(L, 30 * SEC));
  ck_assert_int_eq(added_later.calls, 1);
  ck_assert_int_eq(added_later.last_fd, other_pipe[0]);
  aloop_remove_reader(L, other_pipe[0]);
  close(p[0]), close(p[1]), close(other_pipe[0]), close(other_pipe[1]);
}
END_TEST

START_TEST(test_adding_a_reader_again_replaces_its_callback) {
  int p[2];
  make_pipe(p);
  struct counter first = {0}, second = {0};
  aloop_add_reader(L, p[0], count, &first);
  aloop_add_reader(L, p[0], count, &second);
  put(p[1], "x");
  aloop_run_once(L, 5 * SEC);
  ck_assert_int_eq(first.calls, 0);
  ck_assert_int_eq(second.calls, 1);
  aloop_stats st;
  aloop_get_stats(L, &st);
  ck_assert_uint_eq(st.fds, 1);
  aloop_remove_reader(L, p[0]);
  close(p[0]);
  close(p[1]);
}
END_TEST

START_TEST(test_bad_fds_and_callbacks_are_refused) {
  ck_assert_int_eq(aloop_add_reader(L, -1, count, NULL), -EBADF);
  ck_assert_int_eq(aloop_add_writer(L, -5, count, NULL), -EBADF);
  ck_assert_int_eq(aloop_add_reader(L, 0, NULL, NULL), -EINVAL);
  ck_assert_int_eq(aloop_remove_reader(L, -1), 0);
  ck_assert_int_eq(aloop_remove_writer(L, 123456), 0);
}
END_TEST

static void read_eof(aloop_loop *loop, int fd, void *arg) {
  char b;
  ck_assert_int_eq(read(fd, &b, 1), 0);
  count_and_stop(loop, fd, arg);
}

START_TEST(test_peer_hangup_makes_the_reader_run_and_read_eof) {
  int sv[2];
  make_socketpair(sv);
  struct counter c = {0};
  aloop_add_reader(L, sv[0], read_eof, &c);
  close(sv[1]);
  ck_assert(run_at_most(L, 30 * SEC));
  ck_assert_int_eq(c.calls, 1);
  aloop_remove_reader(L, sv[0]);
  close(sv[0]);
}
END_TEST

/* Remove, close, and get the same fd number back for a new socket, all between two polls: the driver
 * (epoll, io_uring) still holds the old file and must be made to watch the new one. */
START_TEST(test_a_reader_on_a_reused_fd_number_watches_the_new_file) {
  int old[2], fresh[2];
  make_socketpair(old);
  struct counter c = {0};
  aloop_add_reader(L, old[0], count_and_stop, &c);
  aloop_run_once(L, 0); /* the driver now holds the old socket */
  ck_assert_int_eq(aloop_remove_reader(L, old[0]), 1);
  close(old[0]);
  close(old[1]);
  make_socketpair(fresh);
  if (fresh[0] != old[0]) { /* the kernel gives the lowest free number; make sure of it anyway */
    ck_assert_int_eq(dup2(fresh[0], old[0]), old[0]);
    close(fresh[0]);
    fresh[0] = old[0];
  }
  ck_assert_int_eq(aloop_add_reader(L, fresh[0], count_and_stop, &c), 0);
  put(fresh[1], "x");
  ck_assert(run_at_most(L, 10 * SEC));
  ck_assert_int_eq(c.calls, 1);
  aloop_remove_reader(L, fresh[0]);
  close(fresh[0]);
  close(fresh[1]);
}
END_TEST

/* A callback that always schedules itself keeps the ready queue non-empty, so every poll is a
 * zero-timeout one: readiness must still be collected (asyncio's guarantee that callbacks cannot
 * starve I/O). On io_uring with deferred task work this needs the zero-timeout poll to enter the
 * kernel for completions, not only to submit. */
static int spins;
static bool spinning;
static void spin(aloop_loop *loop, void *arg) {
  (void)arg;
  spins++;
  if (spinning) aloop_call_soon(loop, spin, NULL, NULL);
}

START_TEST(test_a_busy_ready_queue_does_not_starve_io) {
  int p[2];
  make_pipe(p);
  struct counter c = {0};
  spins = 0;
  spinning = true;
  aloop_add_reader(L, p[0], count_and_stop, &c);
  aloop_run_once(L, 0); /* watched from now on */
  aloop_call_soon(L, spin, NULL, NULL);
  put(p[1], "x");
  ck_assert(run_at_most(L, 10 * SEC));
  ck_assert_int_eq(c.calls, 1);
  ck_assert_int_lt(spins, 1000); /* a few iterations, not until the deadline */
  spinning = false;
  aloop_run_once(L, 0); /* the chain's last link */
  aloop_remove_reader(L, p[0]);
  close(p[0]);
  close(p[1]);
}
END_TEST

enum { PAIRS = 400 }; /* 800 fds: below select's FD_SETSIZE with room for stdio and the loop's own */
static int pairs[PAIRS][2];
static int drained;
static void drain_one(aloop_loop *loop, int fd, void *arg) {
  (void)arg;
  char b[8];
  ck_assert_int_eq(read(fd, b, sizeof b), 1);
  aloop_remove_reader(loop, fd);
  if (++drained == PAIRS) aloop_stop(loop);
}

START_TEST(test_hundreds_of_socketpairs_each_reported_once) {
  drained = 0;
  for (int i = 0; i < PAIRS; i++) {
    make_socketpair(pairs[i]);
    ck_assert_int_eq(aloop_add_reader(L, pairs[i][0], drain_one, NULL), 0);
  }
  for (int i = PAIRS; i-- > 0;) put(pairs[i][1], "z");
  ck_assert(run_at_most(L, 60 * SEC));
  ck_assert_int_eq(drained, PAIRS);
  for (int i = 0; i < PAIRS; i++) close(pairs[i][0]), close(pairs[i][1]);
}
END_TEST

TCase *conformance_io(void) {
  TCase *tc = conformance_tcase("io");
  tcase_add_test(tc, test_reader_runs_when_a_pipe_has_data);
  tcase_add_test(tc, test_writer_runs_while_a_socket_is_writable);
  tcase_add_test(tc, test_reader_and_writer_on_one_fd_both_run);
  tcase_add_test(tc, test_removed_reader_no_longer_runs_though_data_remains);
  tcase_add_test(tc, test_a_reader_removed_by_another_callback_does_not_run_even_if_ready);
  tcase_add_test(tc, test_a_reader_can_replace_itself_from_its_own_callback);
  tcase_add_test(tc, test_a_reader_added_from_a_callback_runs);
  tcase_add_test(tc, test_adding_a_reader_again_replaces_its_callback);
  tcase_add_test(tc, test_bad_fds_and_callbacks_are_refused);
  tcase_add_test(tc, test_peer_hangup_makes_the_reader_run_and_read_eof);
  tcase_add_test(tc, test_hundreds_of_socketpairs_each_reported_once);
  tcase_add_test(tc, test_a_reader_on_a_reused_fd_number_watches_the_new_file);
  tcase_add_test(tc, test_a_busy_ready_queue_does_not_starve_io);
  return tc;
}
