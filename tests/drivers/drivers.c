/* What differs between drivers: choosing one, falling back when io_uring is forbidden, what each
 * runs on underneath, and many fds on the drivers that have no fd limit. The behaviour every driver
 * shares is in tests/conformance. */
#include "../run_suite.h"
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "aloop.h"

static aloop_loop *open_loop(const char *backend, char *why, size_t n) {
  aloop_options opts = {.size = sizeof opts, .backend = backend, .error = why, .error_size = n};
  return aloop_new(&opts);
}

#ifdef ALOOP_HAVE_LIBURING
#ifdef ALOOP_HAVE_LIBEV
#define FALLBACK "libev"
#else
#define FALLBACK "select"
#endif

/* Make io_uring_setup fail with `err` in this process, as a container's seccomp profile or
 * kernel.io_uring_disabled (EPERM) or an old kernel (ENOSYS) would. Check runs each test in its
 * own child process, so the filter ends with the test. */
static void forbid_io_uring(int err) {
  struct sock_filter filter[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ((unsigned)err & SECCOMP_RET_DATA)),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  struct sock_fprog prog = {.len = sizeof filter / sizeof filter[0], .filter = filter};
  ck_assert_int_eq(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
  ck_assert_int_eq(prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog), 0);
}

/* Run fn with stderr going to a buffer; returns what was written. */
static const char *capture_stderr(void (*fn)(void)) {
  static char out[4096];
  FILE *tmp = tmpfile();
  ck_assert_ptr_nonnull(tmp);
  fflush(stderr);
  int saved = dup(2);
  dup2(fileno(tmp), 2);
  fn();
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  rewind(tmp);
  size_t n = fread(out, 1, sizeof out - 1, tmp);
  out[n] = '\0';
  fclose(tmp);
  return out;
}

static void open_two_auto_loops(void) {
  for (int i = 0; i < 2; i++) {
    char why[256] = "";
    aloop_loop *loop = open_loop("auto", why, sizeof why);
    ck_assert_msg(loop != NULL, "auto: %s", why);
    ck_assert_str_eq(aloop_backend_name(loop), FALLBACK);
    aloop_free(loop);
  }
}

static void check_forbidden(int err, const char *words) {
  forbid_io_uring(err);

  const char *said = capture_stderr(open_two_auto_loops);
  char expected[256];
  snprintf(expected, sizeof expected, "aloop: io_uring unavailable (io_uring_setup: %s %s); using %s\n",
           strerror(err), words, FALLBACK);
  ck_assert_str_eq(said, expected); /* one line, for two loops: said once per process */

  char why[256] = "";
  errno = 0;
  ck_assert_ptr_null(open_loop("io_uring", why, sizeof why));
  ck_assert_int_eq(errno, ALOOP_EUNAVAIL);
  ck_assert_msg(strstr(why, "io_uring") && strstr(why, strerror(err)) && strstr(why, words),
                "explicit request said: %s", why);

  aloop_backend_info info[8];
  size_t n = aloop_list_backends(info, 8);
  ck_assert_str_eq(info[0].name, "io_uring");
  ck_assert_int_eq(info[0].available, 0);
  ck_assert_ptr_nonnull(strstr(info[0].reason, strerror(err)));
  ck_assert_int_eq(info[n - 1].available, 1);
}

START_TEST(test_auto_falls_back_once_with_the_reason_when_seccomp_forbids_io_uring) {
  check_forbidden(EPERM, "(seccomp or kernel.io_uring_disabled?)");
}
END_TEST

START_TEST(test_auto_falls_back_when_the_kernel_has_no_io_uring) {
  check_forbidden(ENOSYS, "(kernel without io_uring)");
}
END_TEST

START_TEST(test_io_uring_says_how_its_ring_was_set_up) {
  char why[256] = "";
  aloop_loop *loop = open_loop("io_uring", why, sizeof why);
  ck_assert_msg(loop != NULL, "%s", why);
  const char *detail = aloop_backend_detail(loop);
  ck_assert_msg(!strcmp(detail, "single issuer, deferred task work") ||
                    !strcmp(detail, "cooperative task work") || !strcmp(detail, "plain"),
                "detail: '%s'", detail);
  aloop_free(loop);
}
END_TEST
#endif /* ALOOP_HAVE_LIBURING */

#ifdef ALOOP_HAVE_LIBEV
START_TEST(test_libev_says_which_kernel_mechanism_it_picked_and_honours_libev_flags) {
  char why[256] = "";
  aloop_loop *loop = open_loop("libev", why, sizeof why);
  ck_assert_msg(loop != NULL, "%s", why);
  ck_assert_str_eq(aloop_backend_detail(loop), "epoll"); /* what libev prefers on Linux */
  aloop_free(loop);

  setenv("LIBEV_FLAGS", "2", 1); /* EVBACKEND_POLL */
  loop = open_loop("libev", why, sizeof why);
  ck_assert_msg(loop != NULL, "%s", why);
  ck_assert_str_eq(aloop_backend_detail(loop), "poll");
  aloop_free(loop);
}
END_TEST
#endif

START_TEST(test_select_has_no_detail_and_a_known_limit) {
  aloop_loop *loop = open_loop("select", NULL, 0);
  ck_assert_ptr_nonnull(loop);
  ck_assert_str_eq(aloop_backend_detail(loop), "");
  aloop_free(loop);
  aloop_backend_info info[8];
  size_t n = aloop_list_backends(info, 8);
  ck_assert_str_eq(info[n - 1].name, "select");
  ck_assert_int_eq(info[n - 1].max_fd, 1024);
}
END_TEST

START_TEST(test_misspelled_and_absent_driver_names_are_explained) {
  char why[256] = "";
  ck_assert_ptr_null(open_loop("uring", why, sizeof why));
  ck_assert_int_eq(errno, ALOOP_EBACKEND);
  ck_assert_msg(strstr(why, "unknown driver 'uring'") && strstr(why, "valid: select"), "%s", why);
#ifndef ALOOP_HAVE_LIBEV
  ck_assert_ptr_null(open_loop("libev", why, sizeof why));
  ck_assert_ptr_nonnull(strstr(why, "not compiled into this build"));
#endif
}
END_TEST

/* ---- many fds ------------------------------------------------------------------------------- */

/* 10,000 socketpairs, but only LIVE_PEERS keep both ends open: the others get their byte and lose
 * their writing end before the loop starts, so the test needs about 14,000 fds, within the 20,000
 * this kind of machine allows without privileges. Both paths are covered: fds ready before they are
 * watched, and fds that become ready while the loop waits. */
enum { PAIRS = 10000, LIVE_PEERS = 4000 };
static int (*pairs)[2];
static int drained;

static void drain(aloop_loop *loop, int fd, void *arg) {
  (void)arg;
  char b;
  ck_assert_int_eq(read(fd, &b, 1), 1);
  ck_assert_int_eq(aloop_remove_reader(loop, fd), 1);
  if (++drained == PAIRS) aloop_stop(loop);
}

static void stop_on_deadline(aloop_loop *loop, void *arg) {
  *(int *)arg = 1;
  aloop_stop(loop);
}

static void ten_thousand_socketpairs(const char *backend) {
  struct rlimit rl;
  rlim_t need = PAIRS + LIVE_PEERS + 64;
  getrlimit(RLIMIT_NOFILE, &rl);
  if (rl.rlim_cur < need) {
    rl.rlim_cur = need;
    ck_assert_msg(setrlimit(RLIMIT_NOFILE, &rl) == 0, "need %ju fds: %s", (uintmax_t)need,
                  strerror(errno));
  }
  char why[256] = "";
  aloop_loop *loop = open_loop(backend, why, sizeof why);
  ck_assert_msg(loop != NULL, "%s", why);
  pairs = calloc(PAIRS, sizeof *pairs);
  for (int i = 0; i < PAIRS; i++) {
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, pairs[i]), 0);
    if (i >= LIVE_PEERS) { /* ready before it is watched */
      ck_assert_int_eq(write(pairs[i][1], "x", 1), 1);
      close(pairs[i][1]);
      pairs[i][1] = -1;
    }
    ck_assert_int_eq(aloop_add_reader(loop, pairs[i][0], drain, NULL), 0);
  }
  drained = 0;
  aloop_run_once(loop, 0);
  ck_assert_int_le(drained, PAIRS - LIVE_PEERS); /* only the pre-written ones can have run */
  for (int i = 0; i < LIVE_PEERS; i++) ck_assert_int_eq(write(pairs[i][1], "x", 1), 1);
  int timed_out = 0;
  aloop_handle deadline;
  aloop_call_later(loop, 120 * (int64_t)1000000000, stop_on_deadline, &timed_out, &deadline);
  aloop_run(loop);
  ck_assert_int_eq(timed_out, 0);
  ck_assert_int_eq(drained, PAIRS);
  aloop_cancel(loop, deadline);
  aloop_stats st;
  aloop_get_stats(loop, &st);
  ck_assert_uint_eq(st.fds, 0);
  ck_assert_uint_eq(st.errors, 0);
  aloop_free(loop);
  for (int i = 0; i < PAIRS; i++) {
    close(pairs[i][0]);
    if (pairs[i][1] >= 0) close(pairs[i][1]);
  }
  free(pairs);
}

#ifdef ALOOP_HAVE_LIBEV
START_TEST(test_libev_watches_ten_thousand_socketpairs) { ten_thousand_socketpairs("libev"); }
END_TEST
#endif
#ifdef ALOOP_HAVE_LIBURING
START_TEST(test_io_uring_watches_ten_thousand_socketpairs) { ten_thousand_socketpairs("io_uring"); }
END_TEST
#endif

int main(void) {
  Suite *suite = suite_create("drivers");
  TCase *tc = tcase_create("drivers");
  tcase_set_timeout(tc, 240);
#ifdef ALOOP_HAVE_LIBURING
  tcase_add_test(tc, test_auto_falls_back_once_with_the_reason_when_seccomp_forbids_io_uring);
  tcase_add_test(tc, test_auto_falls_back_when_the_kernel_has_no_io_uring);
  tcase_add_test(tc, test_io_uring_says_how_its_ring_was_set_up);
  tcase_add_test(tc, test_io_uring_watches_ten_thousand_socketpairs);
#endif
#ifdef ALOOP_HAVE_LIBEV
  tcase_add_test(tc, test_libev_says_which_kernel_mechanism_it_picked_and_honours_libev_flags);
  tcase_add_test(tc, test_libev_watches_ten_thousand_socketpairs);
#endif
  tcase_add_test(tc, test_select_has_no_detail_and_a_known_limit);
  tcase_add_test(tc, test_misspelled_and_absent_driver_names_are_explained);
  suite_add_tcase(suite, tc);
  return run_suite(suite);
}
