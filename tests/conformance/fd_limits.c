/* fds a driver cannot watch, and fds closed while watched. */
#include <errno.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "harness.h"

enum { HIGH_FD = 1500 }; /* above select's FD_SETSIZE (1024) */

static int driver_max_fd(void) {
  aloop_backend_info info[8];
  size_t n = aloop_list_backends(info, 8);
  for (size_t i = 0; i < n && i < 8; i++)
    if (strcmp(info[i].name, test_driver) == 0) return info[i].max_fd;
  return -1;
}

static int reads;
static void read_and_stop(aloop_loop *loop, int fd, void *arg) {
  (void)arg;
  char b;
  if (read(fd, &b, 1) == 1) reads++;
  aloop_stop(loop);
}

START_TEST(test_an_fd_above_the_driver_limit_is_refused_in_words_or_works) {
  struct rlimit rl;
  ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
  if (rl.rlim_cur <= HIGH_FD) {
    ck_assert_msg(rl.rlim_max > HIGH_FD, "RLIMIT_NOFILE hard limit %ju is too low for this test",
                  (uintmax_t)rl.rlim_max);
    rl.rlim_cur = HIGH_FD + 1;
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
  }
  int p[2];
  make_pipe(p);
  ck_assert_int_eq(dup2(p[0], HIGH_FD), HIGH_FD);
  int max_fd = driver_max_fd();
  int err = aloop_add_reader(L, HIGH_FD, read_and_stop, NULL);
  if (max_fd > 0 && HIGH_FD >= max_fd) {
    ck_assert_int_eq(err, -ALOOP_EFDLIMIT);
    ck_assert_ptr_nonnull(strstr(aloop_strerror(err), "FD_SETSIZE"));
    aloop_stats st;
    aloop_get_stats(L, &st);
    ck_assert_uint_eq(st.fds, 0);
  } else {
    ck_assert_int_eq(err, 0);
    reads = 0;
    ck_assert_int_eq(write(p[1], "x", 1), 1);
    ck_assert(run_at_most(L, 30 * SEC));
    ck_assert_int_eq(reads, 1);
    ck_assert_int_eq(aloop_remove_reader(L, HIGH_FD), 1);
  }
  close(HIGH_FD);
  close(p[0]);
  close(p[1]);
}
END_TEST

static int closed_calls;
static void count_closed(aloop_loop *loop, int fd, void *arg) {
  (void)loop;
  (void)fd;
  (void)arg;
  closed_calls++;
}

/* Closing a watched fd is the caller's mistake; the loop must survive it: no crash, no busy loop,
 * at most one report and one last callback. select(2) fails as a whole on a closed fd: that driver
 * must find it, report it once and drop its watchers without calling them. epoll forgets closed
 * fds by itself and may say nothing; an io_uring poll holds the file, so its hang-up may still be
 * delivered once before the re-armed poll finds the fd gone and the driver reports it. */
START_TEST(test_an_fd_closed_while_watched_is_reported_not_looped_on) {
  int p[2];
  make_pipe(p);
  ck_assert_int_eq(aloop_add_reader(L, p[0], count_closed, NULL), 0);
  aloop_run_once(L, 0); /* the driver now watches it */
  int fd = p[0];
  close(p[0]);
  close(p[1]);
  aloop_stats before, after;
  aloop_get_stats(L, &before);
  for (int i = 0; i < 5; i++) aloop_run_once(L, 20 * MS);
  aloop_get_stats(L, &after);
  ck_assert_int_le(closed_calls, 1);
  ck_assert_uint_eq(after.iterations - before.iterations, 5);
  if (strcmp(test_driver, "select") == 0) {
    ck_assert_int_eq(closed_calls, 0);
    ck_assert_int_eq(reports.count, 1);
    ck_assert_int_eq(reports.code, -EBADF);
    ck_assert_int_eq(reports.fd, fd);
    ck_assert_ptr_nonnull(strstr(reports.message, "closed while watched"));
    ck_assert_uint_eq(after.fds, 0);
  }
  reports_expected = reports.count;
  ck_assert_int_le(reports.count, 1);
  if (after.fds) aloop_remove_reader(L, fd);
  aloop_run_once(L, 0); /* the driver forgets it without a new complaint */
  ck_assert_int_eq(reports.count, reports_expected);
}
END_TEST

TCase *conformance_fd_limits(void) {
  TCase *tc = conformance_tcase("fd_limits");
  tcase_add_test(tc, test_an_fd_above_the_driver_limit_is_refused_in_words_or_works);
  tcase_add_test(tc, test_an_fd_closed_while_watched_is_reported_not_looped_on);
  return tc;
}
