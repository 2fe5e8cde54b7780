/* Servers and connections: a thousand clients at once, closing with wait_closed and
 * serve_forever, one failing connection among healthy ones, running out of fds while accepting,
 * shutdown with connections open, Unix sockets, and the errors of listening and connecting. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

/* The server's protocol: echo, count connections, fail on "boom" (what Python would raise). */
static int made, lost, lost_with_error;

static void on_made(aloop_transport *t, void *ctx) {
  (void)t, (void)ctx;
  made++;
}

static void echo_or_fail(aloop_transport *t, const void *data, size_t n, void *ctx) {
  (void)ctx;
  if (n >= 4 && memcmp(data, "boom", 4) == 0) {
    aloop_transport_fail(t, -EPROTO, "the client said boom");
    return;
  }
  aloop_transport_write(t, data, n);
}

static void on_lost(aloop_transport *t, int err, void *ctx) {
  (void)t, (void)ctx;
  lost++;
  if (err) lost_with_error++;
}

static const aloop_protocol echo = {.connection_made = on_made, .data_received = echo_or_fail,
                                    .connection_lost = on_lost};

static aloop_server *serve_with(const aloop_protocol *proto, const char *host,
                                const aloop_server_options *opts) {
  made = lost = lost_with_error = 0;
  aloop_future *f = aloop_create_server(L, proto, NULL, NULL, host, 0, opts);
  ck_assert_int_eq(aloop_run_until_complete(L, f), 0);
  aloop_server *s = aloop_future_data(f);
  ck_assert_ptr_nonnull(s);
  aloop_future_release(f);
  ck_assert_int_gt(aloop_server_port(s), 0);
  return s;
}

static aloop_server *serve(const aloop_protocol *proto, const char *host) {
  return serve_with(proto, host, NULL);
}

static struct sockaddr_in loopback(int port) {
  return (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
}

/* Close, wait for the last connection, free: what every test ends with. */
static void close_and_wait(aloop_server *s) {
  aloop_server_close(s);
  ck_assert_int_eq(run_within(aloop_server_wait_closed(s), 60 * SEC), 0);
  ck_assert_uint_eq(aloop_server_connections(s), 0);
  aloop_server_free(s);
}

START_TEST(test_a_server_echoes_for_a_thousand_clients_at_once) {
  aloop_server *s = serve(&echo, "127.0.0.1");
  struct sockaddr_in addr = loopback(aloop_server_port(s));
  run_until_child_exits(L, spawn_echo_clients(&addr, 1000, 3, 100), 120 * SEC);
  ck_assert_int_eq(made, 1000);
  /* The clients have gone: every connection sees its end of stream and is lost. */
  close_and_wait(s);
  ck_assert_int_eq(lost, 1000);
  ck_assert_int_eq(lost_with_error, 0);
}
END_TEST

/* A client talks, checks the echo, and says whether the server still served it. */
static int ask(int fd, const char *msg) {
  size_t n = strlen(msg);
  if (write(fd, msg, n) != (ssize_t)n) return -1;
  char back[64] = "";
  size_t got = 0;
  while (got < n) {
    ssize_t k = read(fd, back + got, n - got);
    if (k <= 0) return -1;
    got += (size_t)k;
  }
  return memcmp(back, msg, n) == 0 ? 0 : -1;
}

struct exchange {
  int fd;
  const char *msg;
  int result;
};

static int64_t ask_in_executor(void *arg) {
  struct exchange *e = arg;
  e->result = ask(e->fd, e->msg);
  return 0;
}

/* ---- closing ------------------------------------------------------------------------------------- */

static int connect_blocking(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = loopback(port);
  ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
  return fd;
}

static void run_until_made(int n) {
  for (int i = 0; i < 10000 && made < n; i++) aloop_run_once(L, 10 * MS);
  ck_assert_int_eq(made, n);
}

START_TEST(test_wait_closed_waits_for_the_last_connection_after_close) {
  aloop_server *s = serve(&echo, "127.0.0.1");
  int port = aloop_server_port(s), fd = connect_blocking(port);
  run_until_made(1);
  aloop_future *forever = aloop_server_serve_forever(s), *closed = aloop_server_wait_closed(s);
  aloop_server_close(s);
  ck_assert(!aloop_server_is_serving(s));
  ck_assert_int_eq(aloop_run_until_complete(L, forever), 0); /* closed: serve_forever returns */
  for (int i = 0; i < 5; i++) aloop_run_once(L, 10 * MS);
  ck_assert(!aloop_future_done(closed));                    /* one connection still open */
  struct exchange e = {fd, "ping", -1};                     /* and it is still served */
  aloop_future *f = aloop_run_in_executor(L, ask_in_executor, &e);
  ck_assert_int_eq(aloop_run_until_complete(L, f), 0);
  aloop_future_release(f);
  ck_assert_int_eq(e.result, 0);
  close(fd);
  ck_assert_int_eq(aloop_run_until_complete(L, closed), 0); /* the client left */
  ck_assert_int_eq(lost, 1);
  aloop_future_release(forever), aloop_future_release(closed);
  aloop_server_free(s);
  /* Nobody listens any more. */
  int probe = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = loopback(port);
  ck_assert_int_eq(connect(probe, (struct sockaddr *)&a, sizeof a), -1);
  ck_assert_int_eq(errno, ECONNREFUSED);
  close(probe);
}
END_TEST

/* A closed server stops listening at once, not when the loop next runs: a completion driver's
 * cancelled accept holds the socket until its completion is reaped, and a connect in between
 * would be taken by a listener nobody serves. */
START_TEST(test_a_closed_server_refuses_connections_before_the_loop_runs_again) {
  aloop_server *s = serve(&echo, "127.0.0.1");
  int port = aloop_server_port(s);
  for (int i = 0; i < 3; i++) aloop_run_once(L, 0); /* the accept is waiting (in the kernel) */
  aloop_server_close(s);
  int probe = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = loopback(port);
  int rc = connect(probe, (struct sockaddr *)&a, sizeof a);
  int err = errno;
  close(probe);
  ck_assert_msg(rc == -1 && err == ECONNREFUSED,
                "a connect right after aloop_server_close: %s", rc == 0 ? "accepted" : strerror(err));
  close_and_wait(s);
  ck_assert_int_eq(made, 0);
}
END_TEST

START_TEST(test_cancelling_serve_forever_closes_the_server) {
  aloop_server *s = serve(&echo, "127.0.0.1");
  aloop_future *forever = aloop_server_serve_forever(s);
  aloop_run_once(L, 0);
  ck_assert(!aloop_future_done(forever));
  ck_assert_int_eq(aloop_future_cancel(forever), 0);
  ck_assert_int_eq(aloop_run_until_complete(L, forever), -ECANCELED);
  ck_assert(!aloop_server_is_serving(s));
  aloop_future_release(forever);
  close_and_wait(s);
}
END_TEST

/* Shutdown with a connection that will not finish by itself: the grace period runs out, the
 * connections are aborted, and wait_closed completes. */
START_TEST(test_shutdown_aborts_what_is_still_open_after_a_grace_period) {
  aloop_server *s = serve(&echo, "127.0.0.1");
  int fd = connect_blocking(aloop_server_port(s));
  run_until_made(1);
  aloop_server_close(s);
  ck_assert_int_eq(run_within(aloop_server_wait_closed(s), 50 * MS), -ETIMEDOUT);
  ck_assert_uint_eq(aloop_server_connections(s), 1);
  aloop_server_abort_clients(s);
  close_and_wait(s);
  ck_assert_int_eq(lost, 1);
  char c;
  ck_assert_int_le(read(fd, &c, 1), 0); /* the client sees the end */
  close(fd);
}
END_TEST

START_TEST(test_freeing_a_server_with_a_connection_open_aborts_it_and_wait_closed_completes) {
  aloop_server *s = serve(&echo, "127.0.0.1");
  int fd = connect_blocking(aloop_server_port(s));
  run_until_made(1);
  aloop_future *closed = aloop_server_wait_closed(s);
  aloop_server_free(s); /* the memory goes once the connection is gone */
  ck_assert_int_eq(run_within(closed, 60 * SEC), 0);
  ck_assert_int_eq(lost, 1);
  close(fd);
}
END_TEST

/* ---- faults ---------------------------------------------------------------------------------------- */

START_TEST(test_a_failing_connection_is_reported_with_its_peer_and_the_others_carry_on) {
  aloop_server *s = serve(&echo, "127.0.0.1");
  int port = aloop_server_port(s);
  int healthy[3], bad = connect_blocking(port);
  for (int i = 0; i < 3; i++) healthy[i] = connect_blocking(port);
  run_until_made(4);
  reports_expected = 1;
  ck_assert_int_eq(write(bad, "boom", 4), 4);
  char c;
  for (int i = 0; i < 1000 && lost < 1; i++) aloop_run_once(L, 10 * MS);
  ck_assert_int_eq(lost_with_error, 1);
  ck_assert_int_eq(reports.count, 1);
  ck_assert_int_eq(reports.code, -EPROTO);
  ck_assert_msg(strstr(reports.message, "127.0.0.1:") && strstr(reports.message, "boom"),
                "report: %s", reports.message);
  ck_assert_int_le(read(bad, &c, 1), 0);
  for (int i = 0; i < 3; i++) { /* the others are served as before */
    struct exchange e = {healthy[i], "still here", -1};
    aloop_future *f = aloop_run_in_executor(L, ask_in_executor, &e);
    ck_assert_int_eq(aloop_run_until_complete(L, f), 0);
    aloop_future_release(f);
    ck_assert_int_eq(e.result, 0);
    close(healthy[i]);
  }
  close(bad);
  close_and_wait(s);
  ck_assert_int_eq(lost, 4);
}
END_TEST

/* Out of fds while clients keep coming: the server reports it once, pauses accepting, and serves
 * every waiting client once fds are free again; none is dropped. The fd table is really full (a
 * lower limit alone would not do: io_uring reads the limit when the accept is armed). */
START_TEST(test_running_out_of_fds_pauses_accepting_and_loses_no_client) {
  struct rlimit saved, tight;
  ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &saved), 0);
  int next = dup(0);
  close(next);
  tight = saved;
  tight.rlim_cur = (rlim_t)next + 64; /* room for the server; then we fill the rest */
  ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &tight), 0);
  aloop_server *s = serve(&echo, "127.0.0.1");
  struct sockaddr_in addr = loopback(aloop_server_port(s));
  pid_t pid = spawn_echo_clients(&addr, 20, 2, 1000); /* they wait in the backlog meanwhile */
  int filler[64], nfill = 0;
  while (nfill < 64 && (filler[nfill] = dup(0)) >= 0) nfill++;
  ck_assert_int_eq(errno, EMFILE);
  reports_expected = 1;
  for (int i = 0; i < 1000 && reports.count == 0; i++) aloop_run_once(L, 10 * MS);
  ck_assert_int_eq(reports.count, 1);
  ck_assert_int_eq(reports.code, -EMFILE);
  ck_assert_int_eq(made, 0);
  while (nfill) close(filler[--nfill]);
  ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &saved), 0);
  run_until_child_exits(L, pid, 120 * SEC); /* after the pause, everyone is served */
  ck_assert_int_eq(made, 20);
  close_and_wait(s);
}
END_TEST

/* A connection whose fd is above what the driver can watch (select: FD_SETSIZE) is reported and
 * closed, and the server goes on serving; drivers without such a limit serve it like any other. */
START_TEST(test_a_connection_on_an_fd_the_driver_cannot_watch_is_refused_in_words) {
  aloop_backend_info info[8];
  int max_fd = 0;
  for (size_t i = 0, n = aloop_list_backends(info, 8); i < n && i < 8; i++)
    if (!strcmp(info[i].name, test_driver)) max_fd = info[i].max_fd;
  aloop_server *s = serve(&echo, "127.0.0.1");
  int port = aloop_server_port(s);
  enum { HIGH = 1100 };
  static int filler[HIGH];
  int nfill = 0, fd;
  while ((fd = dup(0)) >= 0 && fd < HIGH) filler[nfill++] = fd; /* the next accept gets >= HIGH */
  ck_assert_int_ge(fd, 0);
  close(fd);
  int high_client = connect_blocking(port); /* this process' fds are all high now: both ends */
  if (max_fd) reports_expected = 1;
  struct exchange e = {high_client, "high", -1};
  aloop_future *f = aloop_run_in_executor(L, ask_in_executor, &e);
  ck_assert_int_eq(aloop_run_until_complete(L, f), 0);
  aloop_future_release(f);
  if (max_fd) { /* refused at accept, once in words, and accepting pauses a moment */
    ck_assert_int_eq(e.result, -1);
    ck_assert_int_eq(reports.count, 1);
    ck_assert_int_eq(reports.code, -ALOOP_EFDLIMIT);
    ck_assert_msg(strstr(reports.message, "pausing accepts"), "report: %s", reports.message);
  } else {
    ck_assert_int_eq(e.result, 0);
  }
  close(high_client);
  while (nfill) close(filler[--nfill]);
  int low_client = connect_blocking(port); /* and the server goes on */
  e = (struct exchange){low_client, "low", -1};
  f = aloop_run_in_executor(L, ask_in_executor, &e);
  ck_assert_int_eq(aloop_run_until_complete(L, f), 0);
  aloop_future_release(f);
  ck_assert_int_eq(e.result, 0);
  close(low_client);
  close_and_wait(s);
}
END_TEST

/* ---- fairness and limits ------------------------------------------------------------------------- */

/* A backlog full of clients is taken a bounded batch per iteration, so the connections already
 * accepted (and their tasks) get their turn between batches; every client is still served. */
START_TEST(test_accepting_takes_a_bounded_batch_per_iteration_and_takes_everyone) {
  enum { N = 100 };
  aloop_server *s = serve(&echo, "127.0.0.1");
  int port = aloop_server_port(s), clients[N];
  for (int i = 0; i < N; i++) clients[i] = connect_blocking(port); /* all wait in the backlog */
  size_t before = 0;
  int iterations = 0;
  while (before < N && iterations < 100000) {
    aloop_run_once(L, 10 * MS);
    size_t now = aloop_server_connections(s);
    ck_assert_msg(now - before <= ALOOP_ACCEPT_BATCH, "%zu accepted in one iteration",
                  now - before);
    before = now;
    iterations++;
  }
  ck_assert_uint_eq(before, N);
  run_until_made(N);
  for (int i = 0; i < N; i++) close(clients[i]);
  close_and_wait(s);
  ck_assert_int_eq(lost, N);
}
END_TEST

static void run_iterations(int n) {
  for (int i = 0; i < n; i++) aloop_run_once(L, 5 * MS);
}

/* At max_connections the server stops accepting; the backlog holds the others, and each
 * connection lost lets one more in. */
START_TEST(test_max_connections_holds_the_rest_in_the_backlog_until_one_is_lost) {
  enum { MAX = 3, N = 6 };
  aloop_server_options opts = {.size = sizeof opts, .max_connections = MAX};
  aloop_server *s = serve_with(&echo, "127.0.0.1", &opts);
  int port = aloop_server_port(s), clients[N];
  for (int i = 0; i < N; i++) clients[i] = connect_blocking(port);
  run_until_made(MAX);
  run_iterations(50); /* time for a fourth, which must not come */
  ck_assert_int_eq(made, MAX);
  ck_assert_uint_eq(aloop_server_connections(s), MAX);
  for (int i = 0; i < N - MAX; i++) {
    close(clients[i]); /* its connection ends: exactly one more comes in */
    run_until_made(MAX + 1 + i);
    run_iterations(20);
    ck_assert_int_eq(made, MAX + 1 + i);
    ck_assert_uint_le(aloop_server_connections(s), MAX);
  }
  struct exchange e = {clients[N - 1], "served", -1}; /* the last one in is served normally */
  aloop_future *f = aloop_run_in_executor(L, ask_in_executor, &e);
  ck_assert_int_eq(aloop_run_until_complete(L, f), 0);
  aloop_future_release(f);
  ck_assert_int_eq(e.result, 0);
  for (int i = N - MAX; i < N; i++) close(clients[i]);
  close_and_wait(s);
  ck_assert_int_eq(lost, N);
}
END_TEST

/* ---- addresses ----------------------------------------------------------------------------------- */

static int client_got;
static void client_received(aloop_transport *t, const void *data, size_t n, void *ctx) {
  (void)data, (void)ctx;
  client_got += (int)n;
  if (client_got == 5) aloop_transport_close(t);
}
static void client_lost(aloop_transport *t, int err, void *ctx) {
  (void)t;
  ck_assert_int_eq(err, 0);
  aloop_future_set_result(ctx, 0);
}
static const aloop_protocol client = {.data_received = client_received,
                                      .connection_lost = client_lost};

static void round_trip(aloop_future *connecting, aloop_future *done) {
  client_got = 0;
  ck_assert_int_eq(aloop_run_until_complete(L, connecting), 0);
  aloop_transport *t = aloop_future_data(connecting);
  ck_assert_int_eq(aloop_transport_write(t, "hello", 5), 0);
  ck_assert_int_eq(run_within(done, 60 * SEC), 0);
  ck_assert_int_eq(client_got, 5);
  aloop_future_release(connecting);
}

START_TEST(test_create_connection_talks_to_a_server_over_tcp_and_unix_sockets) {
  aloop_server *s = serve(&echo, "127.0.0.1");
  aloop_future *done = aloop_future_new(L, "client");
  round_trip(aloop_create_connection(L, &client, done, "127.0.0.1", aloop_server_port(s)), done);
  close_and_wait(s);

  char path[64];
  snprintf(path, sizeof path, "/tmp/aloop-test-%d.sock", (int)getpid());
  aloop_future *f = aloop_create_unix_server(L, &echo, NULL, NULL, path, NULL);
  ck_assert_int_eq(aloop_run_until_complete(L, f), 0);
  s = aloop_future_data(f);
  aloop_future_release(f);
  done = aloop_future_new(L, "client");
  round_trip(aloop_create_unix_connection(L, &client, done, path), done);
  close_and_wait(s);
  ck_assert_int_eq(access(path, F_OK), -1); /* the socket file goes with the server */
}
END_TEST

START_TEST(test_a_server_on_ipv6_loopback) {
  aloop_server *s = serve(&echo, "::1");
  aloop_future *done = aloop_future_new(L, "client");
  round_trip(aloop_create_connection(L, &client, done, "::1", aloop_server_port(s)), done);
  close_and_wait(s);
}
END_TEST

START_TEST(test_listening_on_a_port_in_use_and_connecting_to_a_closed_one_are_errors_in_words) {
  aloop_server *s = serve(&echo, "127.0.0.1");
  int port = aloop_server_port(s);
  aloop_server_options no_reuse = {.size = sizeof no_reuse, .reuse_address = -1};
  aloop_future *f = aloop_create_server(L, &echo, NULL, NULL, "127.0.0.1", port, &no_reuse);
  ck_assert_int_eq(aloop_run_until_complete(L, f), -EADDRINUSE);
  ck_assert_msg(strstr(aloop_future_message(f), "127.0.0.1"), "%s", aloop_future_message(f));
  aloop_future_release(f);
  close_and_wait(s);
  f = aloop_create_connection(L, &client, NULL, "127.0.0.1", port);
  ck_assert_int_eq(aloop_run_until_complete(L, f), -ECONNREFUSED);
  ck_assert_msg(strstr(aloop_future_message(f), "connect to 127.0.0.1"), "%s",
                aloop_future_message(f));
  aloop_future_release(f);
}
END_TEST

TCase *conformance_server(void) {
  TCase *tc = conformance_tcase("server");
  tcase_add_test(tc, test_a_server_echoes_for_a_thousand_clients_at_once);
  tcase_add_test(tc, test_wait_closed_waits_for_the_last_connection_after_close);
  tcase_add_test(tc, test_a_closed_server_refuses_connections_before_the_loop_runs_again);
  tcase_add_test(tc, test_cancelling_serve_forever_closes_the_server);
  tcase_add_test(tc, test_shutdown_aborts_what_is_still_open_after_a_grace_period);
  tcase_add_test(tc, test_freeing_a_server_with_a_connection_open_aborts_it_and_wait_closed_completes);
  tcase_add_test(tc, test_a_failing_connection_is_reported_with_its_peer_and_the_others_carry_on);
  tcase_add_test(tc, test_running_out_of_fds_pauses_accepting_and_loses_no_client);
  tcase_add_test(tc, test_a_connection_on_an_fd_the_driver_cannot_watch_is_refused_in_words);
  tcase_add_test(tc, test_accepting_takes_a_bounded_batch_per_iteration_and_takes_everyone);
  tcase_add_test(tc, test_max_connections_holds_the_rest_in_the_backlog_until_one_is_lost);
  tcase_add_test(tc, test_create_connection_talks_to_a_server_over_tcp_and_unix_sockets);
  tcase_add_test(tc, test_a_server_on_ipv6_loopback);
  tcase_add_test(tc, test_listening_on_a_port_in_use_and_connecting_to_a_closed_one_are_errors_in_words);
  return tc;
}
