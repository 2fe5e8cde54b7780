/* aloop-run as a user runs it, on each compiled driver: a command's stdout and stderr numbered
 * line by line, a last line without its newline, the command's exit status (and 128 + N after
 * signal N) as its own, and a command that cannot run refused with the reason and 127. */
#include "../run_suite.h"
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "aloop.h"

#define RUN "examples/aloop-run"

struct result {
  char out[4096], err[1024];
  int status;
};

static void slurp(FILE *f, char *buf, size_t cap) {
  rewind(f);
  size_t n = fread(buf, 1, cap - 1, f);
  buf[n] = '\0';
  fclose(f);
}

/* Run aloop-run with `args` (after --backend), its stdout and stderr in temporary files. */
static struct result run(const char *backend, const char *const *args) {
  const char *argv[16] = {RUN, "--backend", backend};
  size_t n = 3;
  for (; *args && n < 15; args++) argv[n++] = *args;
  argv[n] = NULL;
  FILE *out = tmpfile(), *err = tmpfile();
  ck_assert(out && err);
  fflush(NULL);
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    dup2(fileno(out), 1);
    dup2(fileno(err), 2);
    execv(RUN, (char *const *)argv);
    _exit(126);
  }
  struct result r;
  ck_assert_int_eq(waitpid(pid, &r.status, 0), pid);
  slurp(out, r.out, sizeof r.out);
  slurp(err, r.err, sizeof r.err);
  return r;
}

static int exit_code(const struct result *r) {
  ck_assert(WIFEXITED(r->status));
  return WEXITSTATUS(r->status);
}

static void numbers_lines_and_passes_the_status(const char *backend) {
  const char *const cmd[] = {"--shell", "echo one; echo two >&2; printf last; exit 3", NULL};
  struct result r = run(backend, cmd);
  ck_assert_int_eq(exit_code(&r), 3);
  ck_assert_str_eq(r.out, "     1  one\n     2  two\n     3  last");
  ck_assert_str_eq(r.err, "");

  const char *const killed[] = {"/bin/sh", "-c", "kill -TERM $$", NULL};
  r = run(backend, killed);
  ck_assert_int_eq(exit_code(&r), 128 + 15);

  const char *const missing[] = {"aloop-no-such-command", NULL};
  r = run(backend, missing);
  ck_assert_int_eq(exit_code(&r), 127);
  ck_assert_msg(strstr(r.err, "cannot run 'aloop-no-such-command'"), "stderr: %s", r.err);
}

START_TEST(test_aloop_run_numbers_lines_and_passes_the_status_on_every_driver) {
  aloop_backend_info info[8];
  size_t n = aloop_list_backends(info, 8);
  for (size_t i = 0; i < n && i < 8; i++) {
    if (!info[i].available) {
      ck_assert_msg(!getenv("ALOOP_REQUIRE_ALL_DRIVERS"), "%s unavailable: %s", info[i].name,
                    info[i].reason);
      fprintf(stderr, "%s unavailable here, not run: %s\n", info[i].name, info[i].reason);
      continue;
    }
    numbers_lines_and_passes_the_status(info[i].name);
  }
}
END_TEST

int main(void) {
  Suite *suite = suite_create("run");
  TCase *tc = tcase_create("run");
  tcase_set_timeout(tc, 300);
  tcase_add_test(tc, test_aloop_run_numbers_lines_and_passes_the_status_on_every_driver);
  suite_add_tcase(suite, tc);
  return run_suite(suite);
}
