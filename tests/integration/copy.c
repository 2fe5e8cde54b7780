/* aloop-copy as a user runs it, on each compiled driver: a file of several pieces and a ragged
 * end copied byte for byte, an empty file, and a missing source or an unwritable destination
 * refused with the reason in words and exit status 1. */
#include "../run_suite.h"
#include <check.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "aloop.h"

#define COPY "examples/aloop-copy"

static char dir[64];

/* Run aloop-copy on backend with src and dst; its stderr into err; returns its exit status. */
static int copy(const char *backend, const char *src, const char *dst, char *err, size_t cap) {
  char cmd[PATH_MAX * 2 + 128];
  snprintf(cmd, sizeof cmd, COPY " --backend %s '%s' '%s' 2>&1 >/dev/null", backend, src, dst);
  FILE *p = popen(cmd, "r");
  ck_assert_ptr_nonnull(p);
  size_t n = fread(err, 1, cap - 1, p);
  err[n] = '\0';
  int status = pclose(p);
  ck_assert(WIFEXITED(status));
  return WEXITSTATUS(status);
}

static void write_file(const char *path, const unsigned char *data, size_t n) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(write(fd, data, n), (ssize_t)n);
  close(fd);
}

static void expect_same(const char *path, const unsigned char *data, size_t n) {
  unsigned char *got = malloc(n + 1);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  ck_assert_int_ge(fd, 0);
  ssize_t k = read(fd, got, n + 1);
  close(fd);
  ck_assert_int_eq(k, (ssize_t)n);
  ck_assert_msg(memcmp(got, data, n) == 0, "%s differs from its source", path);
  free(got);
}

static void copies_and_refuses(const char *backend) {
  enum { SIZE = 5 * 256 * 1024 + 12345 }; /* more pieces than run at once, and a ragged end */
  static unsigned char data[SIZE];
  for (size_t i = 0; i < SIZE; i++) data[i] = (unsigned char)(i * 2654435761u >> 13);
  char src[128], dst[128], empty[128], err[1024];
  snprintf(src, sizeof src, "%s/src", dir);
  snprintf(dst, sizeof dst, "%s/dst", dir);
  snprintf(empty, sizeof empty, "%s/empty", dir);
  write_file(src, data, SIZE);
  ck_assert_msg(copy(backend, src, dst, err, sizeof err) == 0, "%s: %s", backend, err);
  expect_same(dst, data, SIZE);
  write_file(empty, data, 0);
  ck_assert_msg(copy(backend, empty, dst, err, sizeof err) == 0, "%s: %s", backend, err);
  expect_same(dst, data, 0);

  char missing[160];
  snprintf(missing, sizeof missing, "%s/missing", dir);
  ck_assert_int_eq(copy(backend, missing, dst, err, sizeof err), 1);
  ck_assert_msg(strstr(err, "cannot open") && strstr(err, missing) &&
                strstr(err, "No such file or directory"), "%s: %s", backend, err);
  ck_assert_int_eq(copy(backend, src, dir, err, sizeof err), 1); /* a directory to write */
  ck_assert_msg(strstr(err, "cannot open") && strstr(err, "Is a directory"), "%s: %s", backend,
                err);
  unlink(src);
  unlink(dst);
  unlink(empty);
}

START_TEST(test_aloop_copy_copies_and_explains_failures_on_every_driver) {
  snprintf(dir, sizeof dir, "/tmp/aloop-copy-XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(dir));
  aloop_backend_info info[8];
  size_t n = aloop_list_backends(info, 8);
  for (size_t i = 0; i < n && i < 8; i++) {
    if (!info[i].available) {
      ck_assert_msg(!getenv("ALOOP_REQUIRE_ALL_DRIVERS"), "%s unavailable: %s", info[i].name,
                    info[i].reason);
      continue;
    }
    copies_and_refuses(info[i].name);
  }
  ck_assert_int_eq(rmdir(dir), 0);
}
END_TEST

int main(void) {
  Suite *suite = suite_create("copy");
  TCase *tc = tcase_create("aloop-copy");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_aloop_copy_copies_and_explains_failures_on_every_driver);
  suite_add_tcase(suite, tc);
  return run_suite(suite);
}
