#include "harness.h"

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

aloop_loop *L;
struct reports reports;
int reports_expected;

static void record_report(aloop_loop *loop, const aloop_error_info *info, void *arg) {
  (void)loop;
  (void)arg;
  reports.count++;
  reports.code = info->code;
  reports.fd = info->fd;
  snprintf(reports.source, sizeof reports.source, "%s", info->source);
  snprintf(reports.message, sizeof reports.message, "%s", info->message);
}

static aloop_loop *new_loop(bool embedded) {
  char why[256] = "";
  aloop_options opts = {.size = sizeof opts, .backend = test_driver, .error = why,
                        .error_size = sizeof why, .embedded = embedded};
  aloop_loop *loop = aloop_new(&opts);
  ck_assert_msg(loop != NULL, "aloop_new(%s): %s", test_driver, why);
  aloop_set_error_handler(loop, record_report, NULL);
  return loop;
}

aloop_loop *new_test_loop(void) { return new_loop(false); }

aloop_loop *new_embedded_test_loop(void) { return new_loop(true); }

static void setup(void) {
  memset(&reports, 0, sizeof reports);
  reports_expected = 0;
  L = new_test_loop();
}

static void teardown(void) {
  aloop_stats st;
  aloop_get_stats(L, &st);
  ck_assert_msg(reports.count == reports_expected, "%d error reports, expected %d; last: %s: %s (%s)",
                reports.count, reports_expected, reports.source, reports.message,
                aloop_strerror(reports.code));
  ck_assert_msg(st.ready == 0, "%zu callbacks left in the ready queue", st.ready);
  ck_assert_msg(st.timers == 0, "%zu timers left scheduled", st.timers);
  ck_assert_msg(st.fds == 0, "%zu fds left watched", st.fds);
  ck_assert_msg(st.signals == 0, "%zu signal handlers left installed", st.signals);
  ck_assert_msg(st.tasks == 0, "%zu tasks left unfinished", st.tasks);
  ck_assert_msg(st.ops == 0, "%zu socket operations left in flight", st.ops);
  ck_assert_msg(st.futures == 0, "%zu futures left unreleased", st.futures);
  ck_assert_int_eq(aloop_free(L), 0);
  L = NULL;
}

TCase *conformance_tcase(const char *name) {
  TCase *tc = tcase_create(name);
  tcase_add_checked_fixture(tc, setup, teardown);
  /* Generous: a sanitizer build on a busy 2-core machine; no test depends on speed. */
  tcase_set_timeout(tc, 120);
  return tc;
}

static void on_deadline(aloop_loop *loop, void *arg) {
  *(int *)arg = 1;
  aloop_stop(loop);
}

int run_at_most(aloop_loop *loop, int64_t max_ns) {
  int timed_out = 0;
  aloop_handle deadline;
  ck_assert_int_eq(aloop_call_later(loop, max_ns, on_deadline, &timed_out, &deadline), 0);
  ck_assert_int_eq(aloop_run(loop), 0);
  if (!timed_out) ck_assert_int_eq(aloop_cancel(loop, deadline), 0);
  return !timed_out;
}

static void nonblocking(int fd) {
  ck_assert_int_eq(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK), 0);
}

void make_pipe(int fds[2]) {
  ck_assert_int_eq(pipe2(fds, O_CLOEXEC), 0);
  nonblocking(fds[0]);
  nonblocking(fds[1]);
}

int tcp_listener(struct sockaddr_in *addr) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  ck_assert_int_ge(fd, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0); /* port 0: an ephemeral one */
  ck_assert_int_eq(listen(fd, 1024), 0);
  socklen_t len = sizeof *addr;
  ck_assert_int_eq(getsockname(fd, (struct sockaddr *)addr, &len), 0);
  return fd;
}

int tcp_socket(void) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  ck_assert_int_ge(fd, 0);
  return fd;
}

int tcp_connected(int *lfd, int *cfd) {
  struct sockaddr_in addr;
  *lfd = tcp_listener(&addr);
  *cfd = tcp_socket();
  aloop_future *acc = aloop_sock_accept(L, *lfd);
  aloop_future *con = aloop_sock_connect(L, *cfd, (struct sockaddr *)&addr, sizeof addr);
  int sfd = (int)aloop_run_until_complete(L, acc);
  ck_assert_int_ge(sfd, 0);
  ck_assert_int_eq(aloop_run_until_complete(L, con), 0);
  aloop_future_release(acc);
  aloop_future_release(con);
  return sfd;
}

void make_socketpair(int fds[2]) {
  ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds), 0);
}

/* The child's side of spawn_echo_clients: plain blocking sockets, nothing of the loop's. */
static int echo_clients(const struct sockaddr_in *addr, int n, int rounds, size_t msg) {
  int *fds = calloc((size_t)n, sizeof *fds);
  char *out = malloc(msg), *back = malloc(msg);
  struct timeval patience = {.tv_sec = 60}; /* a server that never answers fails, not hangs */
  for (int i = 0; i < n; i++) {
    fds[i] = socket(AF_INET, SOCK_STREAM, 0);
    if (fds[i] < 0 || setsockopt(fds[i], SOL_SOCKET, SO_RCVTIMEO, &patience, sizeof patience) < 0 ||
        connect(fds[i], (const struct sockaddr *)addr, sizeof *addr) < 0)
      return 1;
  }
  for (int round = 0; round < rounds; round++) {
    for (int i = 0; i < n; i++) {
      memset(out, 'a' + (i + round) % 26, msg);
      if (write(fds[i], out, msg) != (ssize_t)msg) return 2;
    }
    for (int i = 0; i < n; i++) {
      memset(out, 'a' + (i + round) % 26, msg);
      for (size_t got = 0; got < msg;) {
        ssize_t k = read(fds[i], back + got, msg - got);
        if (k <= 0) return 3;
        got += (size_t)k;
      }
      if (memcmp(out, back, msg)) return 4;
    }
  }
  for (int i = 0; i < n; i++) close(fds[i]);
  return 0;
}

pid_t spawn_echo_clients(const struct sockaddr_in *addr, int n, int rounds, size_t msg) {
  fflush(NULL);
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) _exit(echo_clients(addr, n, rounds, msg));
  return pid;
}

struct child_watch {
  pid_t pid;
  int status;
  bool exited;
};

static void poll_child(aloop_loop *loop, void *arg) {
  struct child_watch *w = arg;
  if (waitpid(w->pid, &w->status, WNOHANG) == w->pid) {
    w->exited = true;
    aloop_stop(loop);
    return;
  }
  ck_assert_int_eq(aloop_call_later(loop, 2 * MS, poll_child, w, NULL), 0);
}

void run_until_child_exits(aloop_loop *loop, pid_t pid, int64_t max_ns) {
  struct child_watch w = {.pid = pid};
  ck_assert_int_eq(aloop_call_soon(loop, poll_child, &w, NULL), 0);
  int64_t deadline = aloop_time(loop) + max_ns;
  while (!w.exited && aloop_time(loop) < deadline) run_at_most(loop, deadline - aloop_time(loop));
  if (!w.exited) {
    kill(pid, SIGKILL);
    waitpid(pid, &w.status, 0);
    ck_abort_msg("client process did not finish in time");
  }
  ck_assert_msg(WIFEXITED(w.status) && WEXITSTATUS(w.status) == 0,
                "client process failed: status %d", w.status);
}

int64_t run_within(aloop_future *f, int64_t max_ns) {
  aloop_future *bounded = aloop_wait_for(L, f, max_ns);
  aloop_future_release(f);
  int64_t outcome = aloop_run_until_complete(L, bounded);
  aloop_future_release(bounded);
  return outcome;
}
