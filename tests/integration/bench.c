/* The benchmark runner as `make bench` uses it: its plan (--dry-run) names every server and says
 * which are skipped and why, and a tiny real run writes the table, the CSV and the JSON with no
 * errors. Nothing here measures speed. */
#include "../run_suite.h"
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#define RUNNER ALOOP_SRCDIR "/bench/run"
#define CF_RUNNER ALOOP_SRCDIR "/bench/charfinder"

/* Run a shell command; its stdout (up to cap bytes) into out; returns its exit status. */
static int capture(const char *cmd, char *out, size_t cap) {
  FILE *p = popen(cmd, "r");
  ck_assert_ptr_nonnull(p);
  size_t n = fread(out, 1, cap - 1, p);
  out[n] = 0;
  int status = pclose(p);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

START_TEST(test_the_dry_run_lists_every_server_and_runs_nothing) {
  static char out[16384];
  ck_assert_int_eq(capture(RUNNER " --dry-run --build . --out ./bench-dry", out, sizeof out), 0);
  static const char *const names[] = {
      "aloop io_uring protocol", "aloop libev streams", "aloop select sock", "uvloop protocol",
      "asyncio streams", "python aloop io_uring sock", "python aloop libev protocol",
      "python aloop select streams", "node net", "libuv", "raw epoll",
      "raw io_uring"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    ck_assert_msg(strstr(out, names[i]), "the plan lacks %s:\n%s", names[i], out);
  ck_assert_msg(strstr(out, "28 servers x 6 cases x 3 repeats"), "plan: %s", out);
  struct stat st;
  ck_assert_int_ne(stat("./bench-dry", &st), 0); /* nothing was run or written */
  ck_assert_int_eq(capture(RUNNER " --quick --dry-run --build .", out, sizeof out), 0);
  ck_assert_msg(strstr(out, "x 1 cases x 3 repeats"), "quick plan: %s", out);
  ck_assert_int_eq(capture(RUNNER " --sizes nope --dry-run --build . 2>/dev/null", out, sizeof out), 2);
}
END_TEST

START_TEST(test_a_short_real_run_writes_the_table_csv_and_json) {
  static char out[16384];
  ck_assert_int_eq(system("rm -rf bench-test"), 0); /* a failed run before may have left some */
  int rc = capture(RUNNER " --build . --out ./bench-test --only 'aloop select protocol,raw epoll'"
                          " --sizes 100 --concurrency 2 --repeats 1 --duration 0.3 --warmup 0",
                   out, sizeof out);
  ck_assert_msg(rc == 0, "runner failed (%d):\n%s", rc, out);
  ck_assert_msg(strstr(out, "| aloop select protocol |") && strstr(out, "| raw epoll |"),
                "table: %s", out);
  ck_assert_msg(strstr(out, "[2/2]"), "progress: %s", out);
  ck_assert_msg(!strstr(out, "FAILED"), "a run failed: %s", out);
  ck_assert_int_eq(capture("ls bench-test/*.csv bench-test/*.json bench-test/*.md | wc -l", out,
                           sizeof out), 0);
  ck_assert_int_eq(atoi(out), 3);
  ck_assert_int_eq(capture("grep -c '\"errors\": 0' bench-test/*.json", out, sizeof out), 0);
  ck_assert_int_ge(atoi(out), 2);
  ck_assert_int_eq(system("rm -rf bench-test"), 0);
}
END_TEST

/* The TLS run: the load client speaks TLS, and its handshake case completes full handshakes. */
START_TEST(test_a_short_tls_run_echoes_and_handshakes_without_errors) {
  static char out[16384];
  ck_assert_int_eq(system("rm -rf bench-tls-test"), 0);
  int rc = capture(RUNNER " --tls --build . --out ./bench-tls-test --only 'aloop select protocol'"
                          " --concurrency 2 --repeats 1 --duration 0.3 --warmup 0",
                   out, sizeof out);
  ck_assert_msg(rc == 0, "runner failed (%d):\n%s", rc, out);
  ck_assert_msg(strstr(out, "| aloop select protocol |"), "table: %s", out);
  ck_assert_msg(!strstr(out, "FAILED"), "a run failed: %s", out);
  ck_assert_int_eq(capture("grep -c '\"handshakes_per_s\"' bench-tls-test/*.json", out, sizeof out),
                   0);
  ck_assert_int_ge(atoi(out), 1);
  ck_assert_int_eq(capture("grep -c '\"errors\": 0' bench-tls-test/*.json", out, sizeof out), 0);
  ck_assert_int_ge(atoi(out), 2);
  ck_assert_int_eq(system("rm -rf bench-tls-test"), 0);
}
END_TEST

START_TEST(test_the_charfinder_plan_names_every_server_and_case) {
  static char out[16384];
  ck_assert_int_eq(capture(CF_RUNNER " --dry-run --build . --out ./cf-dry", out, sizeof out), 0);
  static const char *const names[] = {"aloop io_uring", "aloop libev", "aloop select", "aiohttp",
                                      "http-small", "http-large", "tcp-line"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    ck_assert_msg(strstr(out, names[i]), "the plan lacks %s:\n%s", names[i], out);
  struct stat st;
  ck_assert_int_ne(stat("./cf-dry", &st), 0);
  ck_assert_int_eq(capture(CF_RUNNER " --only nosuch --dry-run --build . 2>/dev/null", out,
                           sizeof out), 2);
}
END_TEST

/* The line-protocol client against the TCP server, and the start-up measurement: no wrk needed. */
START_TEST(test_a_short_charfinder_run_has_no_errors) {
  static char out[16384];
  ck_assert_int_eq(system("rm -rf cf-test"), 0);
  int rc = capture(CF_RUNNER " --build . --out ./cf-test --only 'aloop select' --cases tcp-line"
                             " --connections 2 --repeats 1 --duration 0.5 --warmup 0",
                   out, sizeof out);
  ck_assert_msg(rc == 0, "runner failed (%d):\n%s", rc, out);
  ck_assert_msg(strstr(out, "| aloop select |") && strstr(out, "start-up"), "table: %s", out);
  ck_assert_int_eq(capture("grep -c '\"errors\": 0' cf-test/*.json", out, sizeof out), 0);
  ck_assert_int_ge(atoi(out), 1);
  ck_assert_int_eq(system("rm -rf cf-test"), 0);
}
END_TEST

/* The file copy benchmark: a small real run, every case copies and checks, none fails. */
START_TEST(test_a_small_file_copy_run_checks_every_case) {
  static char out[8192];
  int rc = capture("./bench/aloop-file-copy --size 4 --chunk 64 --depth 8 --repeats 1 2>&1", out,
                   sizeof out);
  ck_assert_msg(rc == 0, "aloop-file-copy failed (%d):\n%s", rc, out);
  static const char *const rows[] = {"| aloop io_uring (kernel requests) |",
                                     "| aloop select (executor) |", "| cp |",
                                     "| thread pool (pread/pwrite) |"};
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
    ck_assert_msg(strstr(out, rows[i]), "the table lacks %s:\n%s", rows[i], out);
  ck_assert_msg(!strstr(out, "FAILED"), "a copy failed:\n%s", out);
  ck_assert_int_eq(capture("./bench/aloop-file-copy --depth 0 2>/dev/null", out, sizeof out), 2);
}
END_TEST

/* The sendfile benchmark: a small real run, every transfer checksummed by its client. */
START_TEST(test_a_small_sendfile_run_checks_every_transfer) {
  static char out[8192];
  int rc = capture("./bench/aloop-sendfile-bench --size 2 --repeats 1 2>&1", out, sizeof out);
  ck_assert_msg(rc == 0, "aloop-sendfile-bench failed (%d):\n%s", rc, out);
  static const char *const rows[] = {"| aloop io_uring (splice pair) |", "| aloop select (sendfile(2)) |",
                                     "| aloop libev (copy) |", "| sendfile(2) loop, no event loop |"};
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
    ck_assert_msg(strstr(out, rows[i]), "the table lacks %s:\n%s", rows[i], out);
  /* A driver this kernel refuses leaves its rows empty ("-"), unless every driver must run. */
  ck_assert_msg(!getenv("ALOOP_REQUIRE_ALL_DRIVERS") || !strstr(out, "| - |"),
                "a case did not run:\n%s", out);
  ck_assert_int_eq(capture("./bench/aloop-sendfile-bench --repeats 0 2>/dev/null", out, sizeof out), 2);
}
END_TEST

int main(void) {
  Suite *suite = suite_create("bench");
  TCase *tc = tcase_create("runner");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_the_dry_run_lists_every_server_and_runs_nothing);
  tcase_add_test(tc, test_a_short_real_run_writes_the_table_csv_and_json);
  tcase_add_test(tc, test_a_short_tls_run_echoes_and_handshakes_without_errors);
  tcase_add_test(tc, test_the_charfinder_plan_names_every_server_and_case);
  tcase_add_test(tc, test_a_short_charfinder_run_has_no_errors);
  tcase_add_test(tc, test_a_small_file_copy_run_checks_every_case);
  tcase_add_test(tc, test_a_small_sendfile_run_checks_every_transfer);
  suite_add_tcase(suite, tc);
  return run_suite(suite);
}
