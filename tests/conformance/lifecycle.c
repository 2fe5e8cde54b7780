/* Creating and freeing loops, naming drivers. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

START_TEST(test_loop_runs_on_the_driver_asked_for) {
  ck_assert_str_eq(aloop_backend_name(L), test_driver);
}
END_TEST

START_TEST(test_unknown_driver_name_is_an_error_listing_valid_names) {
  char why[256] = "";
  aloop_options opts = {.size = sizeof opts, .backend = "selcet", .error = why,
                        .error_size = sizeof why};
  errno = 0;
  ck_assert_ptr_null(aloop_new(&opts));
  ck_assert_int_eq(errno, ALOOP_EBACKEND);
  ck_assert_msg(strstr(why, "'selcet'") && strstr(why, "select") && strstr(why, "auto"),
                "message was: %s", why);
  ck_assert_ptr_nonnull(strstr(why, test_driver));
}
END_TEST

START_TEST(test_environment_variable_names_the_driver) {
  ck_assert_int_eq(setenv("ALOOP_BACKEND", test_driver, 1), 0);
  aloop_loop *loop = aloop_new(NULL);
  ck_assert_ptr_nonnull(loop);
  ck_assert_str_eq(aloop_backend_name(loop), test_driver);
  ck_assert_int_eq(aloop_free(loop), 0);
}
END_TEST

START_TEST(test_options_name_wins_over_environment) {
  ck_assert_int_eq(setenv("ALOOP_BACKEND", "no-such-driver", 1), 0);
  aloop_options opts = {.size = sizeof opts, .backend = test_driver};
  aloop_loop *loop = aloop_new(&opts);
  ck_assert_ptr_nonnull(loop);
  ck_assert_str_eq(aloop_backend_name(loop), test_driver);
  ck_assert_int_eq(aloop_free(loop), 0);
}
END_TEST

START_TEST(test_options_with_a_bad_size_are_refused) {
  aloop_options opts = {.size = 1, .backend = test_driver};
  errno = 0;
  ck_assert_ptr_null(aloop_new(&opts));
  ck_assert_int_eq(errno, EINVAL);
}
END_TEST

START_TEST(test_driver_list_says_this_driver_works) {
  aloop_backend_info info[8];
  size_t n = aloop_list_backends(info, 8);
  ck_assert_uint_ge(n, 1);
  int found = 0;
  for (size_t i = 0; i < n && i < 8; i++) {
    if (strcmp(info[i].name, test_driver) == 0) found = info[i].available;
    if (!info[i].available) ck_assert_msg(info[i].reason[0], "%s: no reason given", info[i].name);
  }
  ck_assert_int_eq(found, 1);
  ck_assert_str_eq(info[n - 1 < 8 ? n - 1 : 7].name, "select"); /* the last resort comes last */
}
END_TEST

static void never(aloop_loop *loop, void *arg) {
  (void)loop;
  ck_abort_msg("callback %p ran on a freed loop", arg);
}

static void never_io(aloop_loop *loop, int fd, void *arg) {
  (void)loop;
  ck_abort_msg("reader for fd %d (%p) ran on a freed loop", fd, arg);
}

START_TEST(test_freeing_a_loop_with_pending_work_releases_it) {
  aloop_loop *loop = new_test_loop();
  int sv[2];
  make_socketpair(sv);
  for (int i = 0; i < 1000; i++) {
    ck_assert_int_eq(aloop_call_soon(loop, never, NULL, NULL), 0);
    ck_assert_int_eq(aloop_call_later(loop, (i + 1) * SEC, never, NULL, NULL), 0);
  }
  ck_assert_int_eq(aloop_add_reader(loop, sv[0], never_io, NULL), 0);
  ck_assert_int_eq(aloop_free(loop), 0); /* the sanitizer build checks that nothing leaked */
  close(sv[0]);
  close(sv[1]);
}
END_TEST

START_TEST(test_error_words_exist_for_own_codes_and_errno) {
  ck_assert_ptr_nonnull(strstr(aloop_strerror(-ALOOP_ERUNNING), "already running"));
  ck_assert_ptr_nonnull(strstr(aloop_strerror(-ALOOP_EFDLIMIT), "FD_SETSIZE"));
  ck_assert_str_eq(aloop_strerror(-EBADF), strerror(EBADF));
  ck_assert_str_eq(aloop_strerror(ALOOP_EBASE + 999), "unknown aloop error");
}
END_TEST

TCase *conformance_lifecycle(void) {
  TCase *tc = conformance_tcase("lifecycle");
  tcase_add_test(tc, test_loop_runs_on_the_driver_asked_for);
  tcase_add_test(tc, test_unknown_driver_name_is_an_error_listing_valid_names);
  tcase_add_test(tc, test_environment_variable_names_the_driver);
  tcase_add_test(tc, test_options_name_wins_over_environment);
  tcase_add_test(tc, test_options_with_a_bad_size_are_refused);
  tcase_add_test(tc, test_driver_list_says_this_driver_works);
  tcase_add_test(tc, test_freeing_a_loop_with_pending_work_releases_it);
  tcase_add_test(tc, test_error_words_exist_for_own_codes_and_errno);
  return tc;
}
