/* aloop-run: run a command and stream its output (stdout and stderr together) line by line as it
 * comes, each line prefixed with its number; one task over the child's stdout stream.
 *   aloop-run [--backend NAME] [--shell] COMMAND [ARG]...
 * --shell runs COMMAND with /bin/sh -c. Exits with the command's exit status (128 + N if signal N
 * killed it, as a shell does), or 127 if it could not run (with the reason). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "common/cli.h"

/* Longer lines are printed in pieces of this size, each numbered: a line has no limit. */
enum { LINE_CAP = 4096 };

struct run {
  aloop_loop *loop;
  const char *const *argv;
  bool shell;
  int exit_status;
};

/* Print every line of the child's output with its number; 0 at the end, or a read error. */
static int64_t number_lines(aloop_stream *out) {
  char line[LINE_CAP];
  int64_t n;
  uint64_t number = 0;
  bool fresh = true; /* the next bytes start a line */
  for (;;) {
    n = aloop_await(aloop_stream_readline(out, line, sizeof line));
    if (n == -ALOOP_ELIMIT) /* longer than the cap: take what fits, the rest follows */
      n = aloop_await(aloop_stream_read(out, line, sizeof line));
    if (n <= 0) return n;
    if (fresh) printf("%6" PRIu64 "  ", ++number);
    fwrite(line, 1, (size_t)n, stdout);
    fresh = line[n - 1] == '\n';
    if (fresh) fflush(stdout);
  }
}

static int64_t run(void *arg) {
  struct run *r = arg;
  aloop_process_options o = {.size = sizeof o,
                             .io = {[1] = {ALOOP_PROCESS_PIPE}, [2] = {ALOOP_PROCESS_STDOUT}}};
  aloop_future *f = r->shell ? aloop_process_shell(r->loop, r->argv[0], &o)
                             : aloop_process_spawn(r->loop, r->argv, &o);
  int64_t err = aloop_await_keep(f);
  if (err < 0) {
    err = aloop_task_error(err, "%s", aloop_future_message(f));
    aloop_future_release(f);
    return err;
  }
  aloop_process *p = aloop_future_data(f);
  aloop_future_release(f);
  err = number_lines(aloop_process_stdout(p));
  int64_t status = aloop_await(aloop_process_wait(p));
  aloop_await(aloop_process_close(p)); /* the child has exited: nothing to kill; pipes closed */
  if (err < 0) return aloop_task_error(err, "reading the output of '%s'", r->argv[0]);
  if (status < 0) return status;
  r->exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return 0;
}

int main(int argc, char **argv) {
  const char *prog = "aloop-run", *backend;
  int rc = cli_take_backend(&argc, argv, prog, &backend);
  if (rc != CLI_CONTINUE) return rc;
  struct run r = {.shell = argc > 1 && !strcmp(argv[1], "--shell")};
  int first = r.shell ? 2 : 1;
  if (argc <= first || !strcmp(argv[first], "--help")) {
    fprintf(stderr, "usage: %s [--backend NAME] [--shell] COMMAND [ARG]...\n", prog);
    return argc > first ? CLI_EXIT_OK : CLI_EXIT_USAGE;
  }
  r.argv = (const char *const *)&argv[first];
  if (!(r.loop = cli_new_loop(prog, backend))) return errno == ALOOP_EBACKEND ? CLI_EXIT_USAGE : 1;
  aloop_future *task = aloop_task_spawn(r.loop, run, &r, NULL);
  int64_t outcome = aloop_run_until_complete(r.loop, task);
  if (outcome < 0) fprintf(stderr, "%s: %s\n", prog, aloop_future_message(task));
  aloop_future_release(task);
  aloop_free(r.loop);
  return outcome < 0 ? 127 : r.exit_status;
}
