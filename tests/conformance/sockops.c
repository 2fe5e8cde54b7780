/* Socket operations as futures and from tasks: loopback TCP and socketpairs, 1 byte to 16 MiB,
 * partial writes, end of stream, resets, refused connects, cancellation while suspended, and a
 * thousand echoing tasks. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

static unsigned char *pattern(size_t n, unsigned seed) {
  unsigned char *p = malloc(n ? n : 1);
  for (size_t i = 0; i < n; i++) p[i] = (unsigned char)(rand_r(&seed) >> 7);
  return p;
}

/* A task that receives exactly `len` bytes into buf. */
struct receive {
  int fd;
  unsigned char *buf;
  size_t len;
};

static int64_t receive_all(void *arg) {
  struct receive *r = arg;
  size_t got = 0;
  while (got < r->len) {
    int64_t n = aloop_await(aloop_sock_recv_into(L, r->fd, r->buf + got, r->len - got));
    if (n <= 0) return n == 0 ? aloop_task_error(-EPIPE, "end of stream after %zu bytes", got) : n;
    got += (size_t)n;
  }
  return (int64_t)got;
}

static void transfer_over_socketpair(size_t size) {
  int sv[2];
  make_socketpair(sv);
  unsigned char *out = pattern(size, (unsigned)size), *in = calloc(1, size ? size : 1);
  struct receive r = {sv[1], in, size};
  aloop_future *rx = aloop_task_spawn(L, receive_all, &r, NULL);
  aloop_future *tx = aloop_sock_sendall(L, sv[0], out, size);
  ck_assert_int_eq(aloop_run_until_complete(L, tx), (int64_t)size);
  ck_assert_int_eq(aloop_run_until_complete(L, rx), (int64_t)size);
  ck_assert(memcmp(in, out, size) == 0);
  aloop_future_release(tx), aloop_future_release(rx);
  free(in), free(out), close(sv[0]), close(sv[1]);
}

START_TEST(test_sendall_and_recv_move_every_byte_from_1_byte_to_16_mib) {
  static const size_t sizes[] = {1, 100, 65536, 1000003, 16u << 20};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) transfer_over_socketpair(sizes[i]);
}
END_TEST

START_TEST(test_accept_connect_and_echo_over_loopback_tcp) {
  struct sockaddr_in addr;
  int lfd = tcp_listener(&addr), cfd = tcp_socket();
  aloop_future *acc = aloop_sock_accept(L, lfd);
  aloop_future *con = aloop_sock_connect(L, cfd, (struct sockaddr *)&addr, sizeof addr);
  ck_assert_int_eq(aloop_run_until_complete(L, con), 0);
  int sfd = (int)aloop_run_until_complete(L, acc);
  ck_assert_int_ge(sfd, 0);
  aloop_sockaddr *peer = aloop_future_data(acc);
  ck_assert_ptr_nonnull(peer);
  ck_assert_int_eq(((struct sockaddr_in *)&peer->addr)->sin_family, AF_INET);
  ck_assert_uint_eq(ntohl(((struct sockaddr_in *)&peer->addr)->sin_addr.s_addr), INADDR_LOOPBACK);

  aloop_future *s = aloop_sock_sendall(L, cfd, "hello", 5);
  aloop_future *rv = aloop_sock_recv(L, sfd, 64);
  ck_assert_int_eq(aloop_run_until_complete(L, rv), 5);
  ck_assert(memcmp(aloop_future_data(rv), "hello", 5) == 0);
  ck_assert_int_eq(aloop_run_until_complete(L, s), 5);
  aloop_future_release(s), aloop_future_release(rv);

  close(cfd); /* the peer's end of stream: recv gives 0 */
  rv = aloop_sock_recv(L, sfd, 64);
  ck_assert_int_eq(aloop_run_until_complete(L, rv), 0);
  aloop_future_release(rv), aloop_future_release(acc), aloop_future_release(con);
  close(sfd), close(lfd);
}
END_TEST

START_TEST(test_connecting_to_a_closed_port_is_refused) {
  struct sockaddr_in addr;
  int lfd = tcp_listener(&addr);
  close(lfd); /* nobody listens there now */
  int cfd = tcp_socket();
  aloop_future *con = aloop_sock_connect(L, cfd, (struct sockaddr *)&addr, sizeof addr);
  ck_assert_int_eq(aloop_run_until_complete(L, con), -ECONNREFUSED);
  aloop_future_release(con);
  close(cfd);
}
END_TEST

START_TEST(test_a_reset_connection_fails_recv_with_econnreset) {
  int lfd, cfd, sfd = tcp_connected(&lfd, &cfd);
  struct linger lg = {1, 0}; /* close with RST */
  setsockopt(cfd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  aloop_future *rv = aloop_sock_recv(L, sfd, 64);
  close(cfd);
  ck_assert_int_eq(aloop_run_until_complete(L, rv), -ECONNRESET);
  aloop_future_release(rv);
  close(sfd), close(lfd);
}
END_TEST

static int64_t recv_forever(void *arg) {
  char buf[16];
  return aloop_await(aloop_sock_recv_into(L, (int)(intptr_t)arg, buf, sizeof buf));
}

static int64_t accept_forever(void *arg) {
  return aloop_await(aloop_sock_accept(L, (int)(intptr_t)arg));
}

static unsigned char *big;
static int64_t send_too_much(void *arg) {
  return aloop_await(aloop_sock_sendall(L, (int)(intptr_t)arg, big, 64u << 20));
}

static void cancel_it_later(aloop_loop *loop, void *arg) {
  (void)loop;
  ck_assert_int_eq(aloop_future_cancel(arg), 0);
}

/* A task suspended in an operation is cancelled; the operation is cancelled in the driver and the
 * task ends cancelled, nothing left in flight (teardown checks) and the fd still usable. */
static void cancel_while_suspended(aloop_task_fn fn, int fd) {
  aloop_future *t = aloop_task_spawn(L, fn, (void *)(intptr_t)fd, NULL);
  aloop_call_later(L, 20 * MS, cancel_it_later, t, NULL);
  ck_assert_int_eq(aloop_run_until_complete(L, t), -ECANCELED);
  aloop_stats st;
  aloop_get_stats(L, &st);
  ck_assert_uint_eq(st.ops, 0);
  aloop_future_release(t);
}

START_TEST(test_cancelling_a_task_suspended_in_recv_accept_or_sendall) {
  int sv[2];
  make_socketpair(sv);
  cancel_while_suspended(recv_forever, sv[0]);
  /* The fd is still fine afterwards, and no byte was eaten by the cancelled recv. */
  ck_assert_int_eq(write(sv[1], "z", 1), 1);
  aloop_future *rv = aloop_sock_recv(L, sv[0], 4);
  ck_assert_int_eq(aloop_run_until_complete(L, rv), 1);
  aloop_future_release(rv);

  struct sockaddr_in addr;
  int lfd = tcp_listener(&addr);
  cancel_while_suspended(accept_forever, lfd);

  big = pattern(64u << 20, 3); /* far more than the socket buffers hold: sendall must wait */
  cancel_while_suspended(send_too_much, sv[0]);
  free(big);
  close(lfd), close(sv[0]), close(sv[1]);
}
END_TEST

/* aloop_close in the middle of an iteration, and the same fd number back at once for a new socket:
 * the parked recv is cancelled, and the new socket is watched, not the closed one. */
static int old_pair[2], new_pair[2];
static aloop_future *old_recv, *new_recv;
static char one_byte;

static void close_and_reuse(aloop_loop *loop, void *arg) {
  (void)arg;
  ck_assert_int_eq(aloop_close(loop, old_pair[0]), 0); /* the peer stays open: no EOF races it */
  make_socketpair(new_pair);
  if (new_pair[0] != old_pair[0]) {
    ck_assert_int_eq(dup2(new_pair[0], old_pair[0]), old_pair[0]);
    close(new_pair[0]);
    new_pair[0] = old_pair[0];
  }
  new_recv = aloop_sock_recv_into(loop, new_pair[0], &one_byte, 1);
  ck_assert_int_eq(write(new_pair[1], "n", 1), 1);
}

START_TEST(test_aloop_close_cancels_parked_operations_and_forgets_the_fd) {
  make_socketpair(old_pair);
  old_recv = aloop_sock_recv_into(L, old_pair[0], &one_byte, 1);
  aloop_run_once(L, 0); /* parked, and the driver watches the old socket */
  aloop_call_soon(L, close_and_reuse, NULL, NULL);
  /* io_uring answers a cancel on a later iteration: wait for it (a bounded wait, below). */
  aloop_future *old_done = aloop_wait_for(L, aloop_future_ref(old_recv), 10 * SEC);
  ck_assert_int_eq(aloop_run_until_complete(L, old_done), -ECANCELED);
  ck_assert(aloop_future_cancelled(old_recv));
  aloop_future_release(old_done), aloop_future_release(old_recv);
  close(old_pair[1]);
  aloop_future *bounded = aloop_wait_for(L, aloop_future_ref(new_recv), 10 * SEC);
  ck_assert_int_eq(aloop_run_until_complete(L, bounded), 1);
  ck_assert_int_eq(one_byte, 'n');
  aloop_future_release(bounded), aloop_future_release(new_recv), aloop_future_release(new_recv);
  aloop_future_release(old_recv);
  close(new_pair[0]), close(new_pair[1]);
}
END_TEST

/* Out of fds while accepting: the accept fails with EMFILE, the connection waits in the backlog,
 * and once fds are available again the next accept takes it (io_uring re-arms its multishot). */
START_TEST(test_accept_reports_emfile_and_works_again_once_fds_are_free) {
  struct sockaddr_in addr;
  int lfd = tcp_listener(&addr);
  int cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ck_assert_int_eq(connect(cfd, (struct sockaddr *)&addr, sizeof addr), 0); /* into the backlog */
  aloop_run_once(L, 0); /* let the driver settle anything it opens itself */
  struct rlimit saved, tight;
  ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &saved), 0);
  int next = dup(0);
  close(next);
  tight = saved;
  tight.rlim_cur = (rlim_t)next; /* no new fd can be made */
  ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &tight), 0);
  aloop_future *acc = aloop_sock_accept(L, lfd);
  int64_t r = aloop_run_until_complete(L, acc);
  ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &saved), 0);
  ck_assert_int_eq(r, -EMFILE);
  aloop_future_release(acc);
  acc = aloop_sock_accept(L, lfd);
  int64_t sfd = aloop_run_until_complete(L, acc);
  ck_assert_int_ge(sfd, 0);
  aloop_future_release(acc);
  close((int)sfd), close(cfd), close(lfd);
}
END_TEST

/* ---- a thousand echoing tasks --------------------------------------------------------------- */

enum { CLIENTS = 1000, ROUNDS = 3, MSG = 100 };
static int echo_finished, echo_expected;
static aloop_future *all_finished;

static int64_t echo(void *arg) {
  int fd = (int)(intptr_t)arg;
  char buf[256];
  int64_t n, total = 0;
  while ((n = aloop_await(aloop_sock_recv_into(L, fd, buf, sizeof buf))) > 0) {
    total += n;
    if ((n = aloop_await(aloop_sock_sendall(L, fd, buf, (size_t)n))) < 0) break;
  }
  close(fd);
  if (++echo_finished == echo_expected) aloop_future_set_result(all_finished, 0);
  return n < 0 ? n : total;
}

static int64_t accept_clients(void *arg) {
  int lfd = (int)(intptr_t)arg;
  for (int i = 0; i < echo_expected; i++) {
    int64_t fd = aloop_await(aloop_sock_accept(L, lfd));
    if (fd < 0) return fd;
    aloop_future_release(aloop_task_spawn(L, echo, (void *)(intptr_t)fd, NULL));
  }
  return echo_expected;
}

START_TEST(test_a_thousand_concurrent_tasks_echo_every_byte) {
  struct sockaddr_in addr;
  int lfd = tcp_listener(&addr);
  pid_t pid = spawn_echo_clients(&addr, CLIENTS, ROUNDS, MSG);
  echo_finished = 0;
  echo_expected = CLIENTS;
  all_finished = aloop_future_new(L, "all clients");
  aloop_future *acceptor = aloop_task_spawn(L, accept_clients, (void *)(intptr_t)lfd, NULL);
  aloop_future *bounded = aloop_wait_for(L, all_finished, 120 * SEC);
  ck_assert_int_eq(aloop_run_until_complete(L, bounded), 0);
  ck_assert_int_eq(aloop_run_until_complete(L, acceptor), CLIENTS);
  int status;
  ck_assert_int_eq(waitpid(pid, &status, 0), pid);
  ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "client process: status %d", status);
  ck_assert_int_eq(echo_finished, CLIENTS);
  aloop_future_release(bounded), aloop_future_release(all_finished), aloop_future_release(acceptor);
  close(lfd);
}
END_TEST

/* ---- bursts of connections to an accepting task ------------------------------------------- */

/* Rounds of BURST connections made at once, each echoing one message and closing, while the
 * server's task accepts one connection at a time (between two accepts it starts the echo, so
 * connections arrive while nobody waits for one). Every connection must be served: io_uring once
 * left one in the kernel's backlog for good when a multishot accept was cancelled and re-armed
 * (within 16 to 72 such rounds on cooperative and plain rings). */
enum { BURST = 8, BURST_ROUNDS = 200 };

static int burst_client(const struct sockaddr_in *addr) {
  struct timeval patience = {.tv_sec = 20}; /* a connection left unserved fails, not hangs */
  for (int round = 0; round < BURST_ROUNDS; round++) {
    int fds[BURST];
    for (int i = 0; i < BURST; i++) {
      fds[i] = socket(AF_INET, SOCK_STREAM, 0);
      if (fds[i] < 0 || setsockopt(fds[i], SOL_SOCKET, SO_RCVTIMEO, &patience, sizeof patience) < 0 ||
          connect(fds[i], (const struct sockaddr *)addr, sizeof *addr) < 0)
        return 1;
    }
    for (int i = 0; i < BURST; i++)
      if (write(fds[i], &round, sizeof round) != sizeof round) return 2;
    for (int i = 0; i < BURST; i++) {
      int back;
      if (read(fds[i], &back, sizeof back) != sizeof back) return 10 + round % 100;
      if (back != round) return 3;
      close(fds[i]);
    }
  }
  return 0;
}

START_TEST(test_rounds_of_simultaneous_connections_are_all_accepted_by_a_task) {
  struct sockaddr_in addr;
  int lfd = tcp_listener(&addr);
  fflush(NULL);
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) _exit(burst_client(&addr));
  echo_finished = 0;
  echo_expected = BURST * BURST_ROUNDS;
  all_finished = aloop_future_new(L, "all connections");
  aloop_future *acceptor = aloop_task_spawn(L, accept_clients, (void *)(intptr_t)lfd, NULL);
  aloop_future *bounded = aloop_wait_for(L, all_finished, 60 * SEC); /* within the test's 120 s */
  int64_t outcome = aloop_run_until_complete(L, bounded);
  int status;
  if (outcome != 0) kill(pid, SIGKILL);
  ck_assert_int_eq(waitpid(pid, &status, 0), pid);
  ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                "client: %s %d (exit 10 + n: a connection unserved in round n mod 100)",
                WIFEXITED(status) ? "exit" : "status", WIFEXITED(status) ? WEXITSTATUS(status) : status);
  ck_assert_msg(outcome == 0, "%d of %d connections served in time", echo_finished, echo_expected);
  ck_assert_int_eq(aloop_run_until_complete(L, acceptor), echo_expected);
  aloop_future_release(bounded), aloop_future_release(all_finished), aloop_future_release(acceptor);
  close(lfd);
}
END_TEST

TCase *conformance_sockops(void) {
  TCase *tc = conformance_tcase("sockops");
  tcase_add_test(tc, test_sendall_and_recv_move_every_byte_from_1_byte_to_16_mib);
  tcase_add_test(tc, test_accept_connect_and_echo_over_loopback_tcp);
  tcase_add_test(tc, test_connecting_to_a_closed_port_is_refused);
  tcase_add_test(tc, test_a_reset_connection_fails_recv_with_econnreset);
  tcase_add_test(tc, test_cancelling_a_task_suspended_in_recv_accept_or_sendall);
  tcase_add_test(tc, test_aloop_close_cancels_parked_operations_and_forgets_the_fd);
  tcase_add_test(tc, test_accept_reports_emfile_and_works_again_once_fds_are_free);
  tcase_add_test(tc, test_a_thousand_concurrent_tasks_echo_every_byte);
  tcase_add_test(tc, test_rounds_of_simultaneous_connections_are_all_accepted_by_a_task);
  return tc;
}
