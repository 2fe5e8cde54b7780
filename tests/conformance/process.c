/* Child processes: exit codes and signals, a protocol's order of events, 16 MiB through cat with
 * both pipes full at once, 200 children at once, exec failures in words, the host's SIGCHLD left
 * alone, stdio redirections, env, cwd, pass_fds and communicate. Every test runs twice: watching
 * children through pidfds (index 0), then through the SIGCHLD fallback (index 1,
 * ALOOP_PROCESS_WATCH=sigchld). Only /bin/true, /bin/false, /bin/cat and /bin/sh are used. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

static void watch_mode(int i) {
  if (i) setenv("ALOOP_PROCESS_WATCH", "sigchld", 1);
  else unsetenv("ALOOP_PROCESS_WATCH");
}

/* The process in a spawn's future, which is done at once. */
static aloop_process *spawned(aloop_future *f) {
  ck_assert_ptr_nonnull(f);
  ck_assert(aloop_future_done(f));
  ck_assert_msg(aloop_future_outcome(f) == 0, "spawn: %s", aloop_future_message(f));
  aloop_process *p = aloop_future_data(f);
  aloop_future_release(f);
  return p;
}

static int64_t wait_status(aloop_process *p) {
  return run_within(aloop_process_wait(p), 60 * SEC);
}

/* Let closed streams and transports finish on the loop (bounded). */
static void settle(void) {
  aloop_stats st;
  for (int i = 0; i < 500; i++) {
    aloop_get_stats(L, &st);
    if (!st.fds && !st.ready && !st.ops && !st.tasks && !st.signals) return;
    aloop_run_once(L, 10 * MS);
  }
}

/* ---- with a protocol: exit codes and the order of events -------------------------------------- */

struct events {
  char order[32]; /* m: made, o/e: bytes on 1/2, 0/1/2: pipe lost, x: exited, L: lost */
  size_t n;
  char out[64], err[64];
  size_t nout, nerr;
  int returncode_at_exit, lost;
  bool close_when_made;
  const char *input; /* written to the child's stdin pipe when made, then its end */
};

static void ev(struct events *e, char c) {
  if (e->n < sizeof e->order - 1) e->order[e->n++] = c;
}
static void ev_made(aloop_process *p, void *ctx) {
  struct events *e = ctx;
  ev(e, 'm');
  if (e->close_when_made) aloop_future_release(aloop_process_close(p));
  if (e->input) {
    aloop_transport *in = aloop_process_pipe_transport(p, 0);
    ck_assert_ptr_nonnull(in);
    ck_assert_int_eq(aloop_transport_write(in, e->input, strlen(e->input)), 0);
    ck_assert_int_eq(aloop_transport_write_eof(in), 0); /* a pipe's end: the child sees EOF */
  }
}
static void ev_data(aloop_process *p, int fd, const void *data, size_t n, void *ctx) {
  (void)p;
  struct events *e = ctx;
  char *buf = fd == 1 ? e->out : e->err;
  size_t *len = fd == 1 ? &e->nout : &e->nerr;
  ck_assert_uint_le(*len + n, sizeof e->out);
  memcpy(buf + *len, data, n);
  *len += n;
  if (!e->n || e->order[e->n - 1] != (fd == 1 ? 'o' : 'e')) ev(e, fd == 1 ? 'o' : 'e');
}
static void ev_pipe_lost(aloop_process *p, int fd, int err, void *ctx) {
  (void)p;
  ck_assert_int_eq(err, 0);
  ev(ctx, (char)('0' + fd));
}
static void ev_exited(aloop_process *p, void *ctx) {
  struct events *e = ctx;
  e->returncode_at_exit = aloop_process_returncode(p);
  ev(e, 'x');
}
static void ev_lost(aloop_process *p, void *ctx) {
  (void)p;
  struct events *e = ctx;
  e->lost++;
  ev(e, 'L');
  aloop_stop(L);
}
static const aloop_process_protocol events_proto = {
    .connection_made = ev_made, .pipe_data_received = ev_data, .pipe_connection_lost = ev_pipe_lost,
    .process_exited = ev_exited, .connection_lost = ev_lost};

static int run_shell(const char *cmd, const aloop_process_options *o, struct events *e) {
  memset(e, 0, sizeof *e);
  spawned(aloop_subprocess_shell(L, cmd, o, &events_proto, e));
  ck_assert_int_eq(run_at_most(L, 60 * SEC), 1);
  ck_assert_int_eq(e->lost, 1);
  return e->returncode_at_exit;
}

START_TEST(test_exit_codes_of_true_false_and_exit_3) {
  watch_mode(_i);
  struct events e;
  const char *const t[] = {"/bin/true", NULL}, *const f[] = {"false", NULL};
  spawned(aloop_subprocess_exec(L, t, NULL, &events_proto, &e));
  memset(&e, 0, sizeof e);
  ck_assert_int_eq(run_at_most(L, 60 * SEC), 1);
  ck_assert_int_eq(e.returncode_at_exit, 0);
  ck_assert_str_eq(e.order, "mxL");
  memset(&e, 0, sizeof e);
  spawned(aloop_subprocess_exec(L, f, NULL, &events_proto, &e));
  ck_assert_int_eq(run_at_most(L, 60 * SEC), 1);
  ck_assert_int_eq(e.returncode_at_exit, 1);
  ck_assert_int_eq(run_shell("exit 3", NULL, &e), 3);
  settle();
}
END_TEST

START_TEST(test_a_protocol_hears_both_pipes_then_exit_and_lost_comes_last) {
  watch_mode(_i);
  aloop_process_options o = {.size = sizeof o,
                             .io = {[1] = {ALOOP_PROCESS_PIPE}, [2] = {ALOOP_PROCESS_PIPE}}};
  struct events e;
  ck_assert_int_eq(run_shell("echo hello; echo oops >&2; exit 5", &o, &e), 5);
  ck_assert_uint_eq(e.nout, 6);
  ck_assert(memcmp(e.out, "hello\n", 6) == 0);
  ck_assert_uint_eq(e.nerr, 5);
  ck_assert(memcmp(e.err, "oops\n", 5) == 0);
  ck_assert_int_eq(e.order[0], 'm');
  ck_assert_int_eq(e.order[e.n - 1], 'L');
  ck_assert_ptr_nonnull(strchr(e.order, '1'));
  ck_assert_ptr_nonnull(strchr(e.order, '2'));
  ck_assert_ptr_nonnull(strchr(e.order, 'x'));
  /* Bytes of a pipe come before its end. */
  ck_assert(strchr(e.order, 'o') < strchr(e.order, '1'));
  ck_assert(strchr(e.order, 'e') < strchr(e.order, '2'));
  settle();
}
END_TEST

START_TEST(test_a_protocol_writes_the_childs_stdin_through_its_pipe_transport) {
  watch_mode(_i);
  aloop_process_options o = {.size = sizeof o,
                             .io = {[0] = {ALOOP_PROCESS_PIPE}, [1] = {ALOOP_PROCESS_PIPE}}};
  struct events e;
  memset(&e, 0, sizeof e);
  e.input = "to cat and back\n";
  const char *const cat[] = {"cat", NULL};
  spawned(aloop_subprocess_exec(L, cat, &o, &events_proto, &e));
  ck_assert_int_eq(run_at_most(L, 60 * SEC), 1);
  ck_assert_int_eq(e.returncode_at_exit, 0);
  ck_assert_uint_eq(e.nout, strlen(e.input));
  ck_assert(memcmp(e.out, e.input, e.nout) == 0);
  ck_assert_ptr_nonnull(strchr(e.order, '0')); /* stdin's transport lost once written and ended */
  ck_assert_int_eq(e.order[e.n - 1], 'L');
  settle();
}
END_TEST

START_TEST(test_closing_a_running_process_kills_it_and_still_reaps_it) {
  watch_mode(_i);
  aloop_process_options o = {.size = sizeof o, .io = {[0] = {ALOOP_PROCESS_PIPE}}};
  struct events e;
  memset(&e, 0, sizeof e);
  e.close_when_made = true;
  const char *const cat[] = {"cat", NULL};
  spawned(aloop_subprocess_exec(L, cat, &o, &events_proto, &e));
  ck_assert_int_eq(run_at_most(L, 60 * SEC), 1);
  ck_assert_int_eq(e.returncode_at_exit, -SIGKILL);
  ck_assert_int_eq(e.lost, 1);
  ck_assert_int_eq(e.order[e.n - 1], 'L');
  settle();
}
END_TEST

/* ---- signals ---------------------------------------------------------------------------------- */

START_TEST(test_killed_by_a_signal_the_returncode_is_minus_the_signal) {
  watch_mode(_i);
  aloop_process_options o = {.size = sizeof o, .io = {[0] = {ALOOP_PROCESS_PIPE}}};
  const char *const cat[] = {"/bin/cat", NULL};
  aloop_process *p = spawned(aloop_process_spawn(L, cat, &o));
  ck_assert_int_eq(aloop_process_returncode(p), ALOOP_PROCESS_RUNNING);
  ck_assert_int_gt(aloop_process_pid(p), 0);
  ck_assert_int_eq(aloop_process_kill(p), 0);
  int64_t status = wait_status(p);
  ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  ck_assert_int_eq(aloop_process_returncode(p), -9);
  ck_assert_int_eq(aloop_process_kill(p), -ESRCH); /* reaped: nothing is sent */
  aloop_future_release(aloop_process_close(p));

  p = spawned(aloop_process_spawn(L, cat, &o));
  ck_assert_int_eq(aloop_process_terminate(p), 0);
  status = wait_status(p);
  ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM);
  ck_assert_int_eq(aloop_process_returncode(p), -15);
  aloop_future_release(aloop_process_close(p));

  /* Closed while running: killed, reaped, and the close future says how it ended. */
  p = spawned(aloop_process_spawn(L, cat, &o));
  aloop_future *w = aloop_process_wait(p);
  status = run_within(aloop_process_close(p), 60 * SEC);
  ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  ck_assert_int_eq(run_within(w, 60 * SEC), status);
  settle();
}
END_TEST

/* ---- 16 MiB through cat ----------------------------------------------------------------------- */

enum { CAT_TOTAL = 16 << 20, CAT_PIECE = 64 << 10 };

static unsigned char at(size_t i) { return (unsigned char)(i * 131 % 251); }

static uint64_t checksum(uint64_t sum, const unsigned char *b, size_t n) {
  for (size_t i = 0; i < n; i++) sum = sum * 1099511628211u ^ b[i];
  return sum;
}

static uint64_t sent_sum, received_sum;

static int64_t feed_cat(void *arg) {
  aloop_stream *in = arg;
  static unsigned char piece[CAT_PIECE];
  sent_sum = 14695981039346656037u;
  for (size_t off = 0; off < CAT_TOTAL; off += CAT_PIECE) {
    for (size_t i = 0; i < CAT_PIECE; i++) piece[i] = at(off + i);
    sent_sum = checksum(sent_sum, piece, CAT_PIECE);
    if (aloop_stream_write(in, piece, CAT_PIECE) < 0) return -EPIPE;
    int64_t err = aloop_await(aloop_stream_drain(in));
    if (err < 0) return err;
  }
  return aloop_stream_write_eof(in);
}

static int64_t drain_cat(void *arg) {
  aloop_stream *out = arg;
  static unsigned char buf[CAT_PIECE];
  int64_t n, total = 0;
  received_sum = 14695981039346656037u;
  while ((n = aloop_await(aloop_stream_read(out, buf, sizeof buf))) > 0) {
    received_sum = checksum(received_sum, buf, (size_t)n);
    total += n;
  }
  return n < 0 ? n : total;
}

START_TEST(test_16_mib_round_trip_through_cat_with_both_pipes_full) {
  watch_mode(_i);
  aloop_process_options o = {.size = sizeof o,
                             .io = {[0] = {ALOOP_PROCESS_PIPE}, [1] = {ALOOP_PROCESS_PIPE}}};
  const char *const cat[] = {"cat", NULL};
  aloop_process *p = spawned(aloop_process_spawn(L, cat, &o));
  ck_assert_ptr_nonnull(aloop_process_stdin(p));
  ck_assert_ptr_nonnull(aloop_process_stdout(p));
  ck_assert_ptr_null(aloop_process_stderr(p));
  aloop_future *w = aloop_task_spawn(L, feed_cat, aloop_process_stdin(p), NULL);
  aloop_future *r = aloop_task_spawn(L, drain_cat, aloop_process_stdout(p), NULL);
  ck_assert_int_eq(run_within(w, 120 * SEC), 0);
  ck_assert_int_eq(run_within(r, 120 * SEC), CAT_TOTAL);
  ck_assert(sent_sum == received_sum);
  ck_assert_int_eq(wait_status(p), 0);
  ck_assert_int_eq(run_within(aloop_process_close(p), 60 * SEC), 0); /* streams closed too */
  settle();
}
END_TEST

/* ---- many at once ----------------------------------------------------------------------------- */

enum { MANY = 200 };

START_TEST(test_200_children_at_once_are_all_reaped_with_their_codes) {
  watch_mode(_i);
  static aloop_process *p[MANY];
  static aloop_future *w[MANY];
  for (int i = 0; i < MANY; i++) {
    char cmd[32];
    snprintf(cmd, sizeof cmd, "exit %d", i % 7 == 0 ? 0 : i % 100);
    p[i] = spawned(aloop_process_shell(L, cmd, NULL));
    w[i] = aloop_process_wait(p[i]);
    ck_assert_ptr_nonnull(w[i]);
  }
  aloop_future *all = aloop_gather(L, w, MANY);
  ck_assert_int_eq(run_within(all, 120 * SEC), MANY);
  for (int i = 0; i < MANY; i++) {
    int want = i % 7 == 0 ? 0 : i % 100;
    ck_assert_int_eq(aloop_future_outcome(w[i]), want << 8);
    ck_assert_int_eq(aloop_process_returncode(p[i]), want);
    aloop_future_release(w[i]);
    aloop_future_release(aloop_process_close(p[i]));
  }
  ck_assert_int_eq(waitpid(-1, NULL, WNOHANG), -1); /* no zombie, no child left */
  ck_assert_int_eq(errno, ECHILD);
  settle();
}
END_TEST

/* ---- exec failures ---------------------------------------------------------------------------- */

static void check_refused(aloop_future *f, int code, const char *words) {
  ck_assert_ptr_nonnull(f);
  ck_assert(aloop_future_done(f));
  ck_assert_int_eq(aloop_future_outcome(f), code);
  ck_assert_msg(strstr(aloop_future_message(f), words) != NULL, "message: %s",
                aloop_future_message(f));
  aloop_future_release(f);
  ck_assert_int_eq(waitpid(-1, NULL, WNOHANG), -1); /* no child was left behind */
}

START_TEST(test_a_program_that_cannot_run_is_an_error_in_words_and_no_child) {
  watch_mode(_i);
  const char *const missing[] = {"aloop-no-such-program", NULL};
  check_refused(aloop_process_spawn(L, missing, NULL), -ENOENT, "'aloop-no-such-program'");
  check_refused(aloop_subprocess_exec(L, missing, NULL, NULL, NULL), -ENOENT,
                strerror(ENOENT));
  const char *const dir[] = {"/", NULL};
  check_refused(aloop_process_spawn(L, dir, NULL), -EACCES, "cannot run '/'");
  aloop_process_options o = {.size = sizeof o, .cwd = "/aloop-no-such-dir"};
  const char *const t[] = {"true", NULL};
  check_refused(aloop_process_spawn(L, t, &o), -ENOENT, "'/aloop-no-such-dir'");
  o.io[0].mode = ALOOP_PROCESS_STDOUT;
  check_refused(aloop_process_spawn(L, t, &o), -EINVAL, "'true'");
}
END_TEST

/* ---- the host's SIGCHLD ----------------------------------------------------------------------- */

static volatile sig_atomic_t host_sigchld;
static void on_host_sigchld(int signum) {
  (void)signum;
  host_sigchld++;
}

START_TEST(test_the_hosts_own_sigchld_handler_is_still_called) {
  watch_mode(_i);
  if (_i) return; /* the fallback takes SIGCHLD while it watches, as documented */
  struct sigaction sa, old;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_host_sigchld;
  sa.sa_flags = SA_RESTART;
  ck_assert_int_eq(sigaction(SIGCHLD, &sa, &old), 0);
  host_sigchld = 0;
  const char *const t[] = {"true", NULL};
  aloop_process *p = spawned(aloop_process_spawn(L, t, NULL));
  ck_assert_int_eq(wait_status(p), 0);
  for (int i = 0; i < 500 && !host_sigchld; i++) aloop_run_once(L, 10 * MS);
  ck_assert_int_ge(host_sigchld, 1);
  aloop_future_release(aloop_process_close(p));
  struct sigaction now;
  ck_assert_int_eq(sigaction(SIGCHLD, &old, &now), 0);
  ck_assert_ptr_eq((void *)now.sa_handler, (void *)on_host_sigchld); /* never replaced */
  settle();
}
END_TEST

/* ---- stdio, env, cwd, fds --------------------------------------------------------------------- */

static int64_t communicate(aloop_process *p, const void *in, size_t n, aloop_process_output *out,
                           aloop_process_output *err) {
  return run_within(aloop_process_communicate(p, in, n, out, err), 60 * SEC);
}

START_TEST(test_stderr_can_go_where_stdout_goes) {
  watch_mode(_i);
  aloop_process_options o = {.size = sizeof o,
                             .io = {[1] = {ALOOP_PROCESS_PIPE}, [2] = {ALOOP_PROCESS_STDOUT}}};
  aloop_process *p = spawned(aloop_process_shell(L, "echo out; echo err >&2", &o));
  ck_assert_ptr_null(aloop_process_stderr(p));
  aloop_process_output out;
  ck_assert_int_eq(communicate(p, NULL, 0, &out, NULL), 0);
  ck_assert_str_eq(out.data, "out\nerr\n");
  free(out.data);
  aloop_future_release(aloop_process_close(p));
  settle();
}
END_TEST

START_TEST(test_devnull_gives_an_empty_input_and_swallows_output) {
  watch_mode(_i);
  aloop_process_options o = {.size = sizeof o,
                             .io = {[0] = {ALOOP_PROCESS_DEVNULL}, [1] = {ALOOP_PROCESS_PIPE},
                                    [2] = {ALOOP_PROCESS_DEVNULL}}};
  aloop_process *p = spawned(aloop_process_shell(L, "cat; echo gone >&2", &o));
  aloop_process_output out;
  ck_assert_int_eq(communicate(p, NULL, 0, &out, NULL), 0);
  ck_assert_uint_eq(out.len, 0);
  ck_assert_str_eq(out.data, "");
  free(out.data);
  aloop_future_release(aloop_process_close(p));
  settle();
}
END_TEST

START_TEST(test_env_and_cwd_take_effect) {
  watch_mode(_i);
  const char *const env[] = {"ALOOP_FOO=bar baz", "PATH=/usr/bin:/bin", NULL};
  aloop_process_options o = {.size = sizeof o, .io = {[1] = {ALOOP_PROCESS_PIPE}}, .env = env,
                             .cwd = "/"};
  const char *cmd = "echo \"$ALOOP_FOO\"; pwd; echo ${HOME:-none}";
  aloop_process *p = spawned(aloop_process_shell(L, cmd, &o));
  aloop_process_output out;
  ck_assert_int_eq(communicate(p, NULL, 0, &out, NULL), 0);
  ck_assert_str_eq(out.data, "bar baz\n/\nnone\n");
  free(out.data);
  aloop_future_release(aloop_process_close(p));
  settle();
}
END_TEST

START_TEST(test_the_child_gets_its_stdio_and_pass_fds_only) {
  watch_mode(_i);
  int kept[2], leaked[2];
  ck_assert_int_eq(pipe2(kept, O_CLOEXEC), 0);
  ck_assert_int_eq(pipe(leaked), 0); /* not close-on-exec: the child must not get it anyway */
  char cmd[256];
  snprintf(cmd, sizeof cmd,
           "test -e /proc/$$/fd/%d && echo kept; test -e /proc/$$/fd/%d || echo closed", kept[1],
           leaked[1]);
  aloop_process_options o = {.size = sizeof o, .io = {[1] = {ALOOP_PROCESS_PIPE}},
                             .pass_fds = &kept[1], .npass_fds = 1};
  aloop_process *p = spawned(aloop_process_shell(L, cmd, &o));
  aloop_process_output out;
  ck_assert_int_eq(communicate(p, NULL, 0, &out, NULL), 0);
  ck_assert_str_eq(out.data, "kept\nclosed\n");
  free(out.data);
  aloop_future_release(aloop_process_close(p));
  for (int i = 0; i < 2; i++) {
    close(kept[i]);
    close(leaked[i]);
  }
  settle();
}
END_TEST

START_TEST(test_an_fd_given_as_stdout_receives_the_output) {
  watch_mode(_i);
  int fds[2];
  ck_assert_int_eq(pipe2(fds, O_CLOEXEC), 0);
  aloop_process_options o = {.size = sizeof o, .io = {[1] = {ALOOP_PROCESS_FD, fds[1]}}};
  aloop_process *p = spawned(aloop_process_shell(L, "echo via-fd", &o));
  ck_assert_int_eq(wait_status(p), 0);
  aloop_future_release(aloop_process_close(p));
  close(fds[1]);
  char buf[32] = "";
  ck_assert_int_eq(read(fds[0], buf, sizeof buf - 1), 7);
  ck_assert_str_eq(buf, "via-fd\n");
  close(fds[0]);
  settle();
}
END_TEST

/* ---- communicate ------------------------------------------------------------------------------ */

enum { COMM_IN = 1 << 20 };

START_TEST(test_communicate_writes_input_and_collects_both_outputs) {
  watch_mode(_i);
  aloop_process_options o = {.size = sizeof o,
                             .io = {[0] = {ALOOP_PROCESS_PIPE}, [1] = {ALOOP_PROCESS_PIPE},
                                    [2] = {ALOOP_PROCESS_PIPE}}};
  aloop_process *p = spawned(aloop_process_shell(L, "cat; echo done >&2; exit 4", &o));
  char *in = malloc(COMM_IN);
  ck_assert_ptr_nonnull(in);
  for (size_t i = 0; i < COMM_IN; i++) in[i] = (char)at(i);
  aloop_process_output out, err;
  int64_t status = communicate(p, in, COMM_IN, &out, &err);
  ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 4);
  ck_assert_int_eq(aloop_process_returncode(p), 4);
  ck_assert_uint_eq(out.len, COMM_IN);
  ck_assert(memcmp(out.data, in, COMM_IN) == 0);
  ck_assert_str_eq(err.data, "done\n");
  free(in);
  free(out.data);
  free(err.data);
  aloop_future_release(aloop_process_close(p));
  settle();
}
END_TEST

START_TEST(test_communicate_with_a_child_that_does_not_read_its_input) {
  watch_mode(_i);
  aloop_process_options o = {.size = sizeof o,
                             .io = {[0] = {ALOOP_PROCESS_PIPE}, [1] = {ALOOP_PROCESS_PIPE}}};
  aloop_process *p = spawned(aloop_process_shell(L, "echo ignored", &o));
  static char in[COMM_IN];
  aloop_process_output out;
  ck_assert_int_eq(communicate(p, in, sizeof in, &out, NULL), 0);
  ck_assert_str_eq(out.data, "ignored\n");
  free(out.data);
  aloop_future_release(aloop_process_close(p));
  settle();
}
END_TEST

/* ---- children started elsewhere ---------------------------------------------------------------- */

static pid_t fork_child(int how) { /* how: an exit code, or -1: wait to be killed */
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    if (how < 0) pause();
    _exit(how < 0 ? 0 : how);
  }
  return pid;
}

static int pidfd_of(pid_t pid) {
  int fd = (int)syscall(SYS_pidfd_open, pid, 0);
  ck_assert_msg(fd >= 0, "pidfd_open: %s", strerror(errno));
  return fd;
}

/* aloop_pidfd_wait: an exit code and a signal come back as wait statuses and the child is reaped
 * (waitpid finds nothing left); a process that is not our child is -ECHILD; a cancelled wait
 * ends with -ECANCELED and leaves the child to its parent. */
START_TEST(test_pidfd_wait_reaps_a_child_started_elsewhere) {
  pid_t pid = fork_child(7);
  int pidfd = pidfd_of(pid);
  int64_t status = run_within(aloop_pidfd_wait(L, pidfd), 30 * SEC);
  ck_assert_msg(status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 7, "status %lld",
                (long long)status);
  ck_assert_int_eq(waitpid(pid, NULL, WNOHANG), -1); /* reaped already */
  ck_assert_int_eq(errno, ECHILD);
  aloop_close(L, pidfd); /* the loop worked on it */

  pid = fork_child(-1);
  pidfd = pidfd_of(pid);
  aloop_future *f = aloop_pidfd_wait(L, pidfd);
  ck_assert_ptr_nonnull(f);
  aloop_run_once(L, 0);
  ck_assert(!aloop_future_done(f));
  kill(pid, SIGKILL);
  status = run_within(f, 30 * SEC);
  ck_assert_msg(status >= 0 && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "status %lld",
                (long long)status);
  aloop_close(L, pidfd); /* the loop worked on it */

  pidfd = pidfd_of(getppid()); /* not a child of ours */
  ck_assert_int_eq(run_within(aloop_pidfd_wait(L, pidfd), 30 * SEC), -ECHILD);
  aloop_close(L, pidfd); /* the loop worked on it */

  pid = fork_child(-1);
  pidfd = pidfd_of(pid);
  f = aloop_pidfd_wait(L, pidfd);
  aloop_run_once(L, 0);
  ck_assert_int_eq(aloop_future_cancel(f), 0);
  ck_assert_int_eq(run_within(f, 30 * SEC), -ECANCELED);
  kill(pid, SIGKILL);
  int raw;
  ck_assert_int_eq(waitpid(pid, &raw, 0), pid); /* still ours to reap */
  aloop_close(L, pidfd); /* the loop worked on it */
}
END_TEST

TCase *conformance_process(void) {
  TCase *tc = conformance_tcase("process");
  /* Index 0: pidfds; 1: the SIGCHLD fallback. */
  tcase_add_loop_test(tc, test_exit_codes_of_true_false_and_exit_3, 0, 2);
  tcase_add_loop_test(tc, test_a_protocol_hears_both_pipes_then_exit_and_lost_comes_last, 0, 2);
  tcase_add_loop_test(tc, test_a_protocol_writes_the_childs_stdin_through_its_pipe_transport, 0, 2);
  tcase_add_loop_test(tc, test_closing_a_running_process_kills_it_and_still_reaps_it, 0, 2);
  tcase_add_loop_test(tc, test_killed_by_a_signal_the_returncode_is_minus_the_signal, 0, 2);
  tcase_add_loop_test(tc, test_16_mib_round_trip_through_cat_with_both_pipes_full, 0, 2);
  tcase_add_loop_test(tc, test_200_children_at_once_are_all_reaped_with_their_codes, 0, 2);
  tcase_add_loop_test(tc, test_a_program_that_cannot_run_is_an_error_in_words_and_no_child, 0, 2);
  tcase_add_loop_test(tc, test_the_hosts_own_sigchld_handler_is_still_called, 0, 2);
  tcase_add_loop_test(tc, test_stderr_can_go_where_stdout_goes, 0, 2);
  tcase_add_loop_test(tc, test_devnull_gives_an_empty_input_and_swallows_output, 0, 2);
  tcase_add_loop_test(tc, test_env_and_cwd_take_effect, 0, 2);
  tcase_add_loop_test(tc, test_the_child_gets_its_stdio_and_pass_fds_only, 0, 2);
  tcase_add_loop_test(tc, test_an_fd_given_as_stdout_receives_the_output, 0, 2);
  tcase_add_loop_test(tc, test_communicate_writes_input_and_collects_both_outputs, 0, 2);
  tcase_add_loop_test(tc, test_communicate_with_a_child_that_does_not_read_its_input, 0, 2);
  tcase_add_test(tc, test_pidfd_wait_reaps_a_child_started_elsewhere);
  return tc;
}
