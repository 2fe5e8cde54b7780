/* aloop_close and fd numbers that come back at once: what the loop did on the closed fd (a
 * receive, a listening socket's accepting) must never reach the next file with the same number,
 * even if the loop never ran an iteration in between. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

/* Put the open file `fd` on the number `want` (free), so that a test does not depend on which
 * number the kernel happens to hand out. */
static int onto(int fd, int want) {
  if (fd == want) return fd;
  ck_assert_int_eq(dup3(fd, want, O_CLOEXEC), want);
  close(fd);
  return want;
}

static int port_of(int fd, int (*name)(int, struct sockaddr *, socklen_t *)) {
  struct sockaddr_in a;
  socklen_t len = sizeof a;
  ck_assert_int_eq(name(fd, (struct sockaddr *)&a, &len), 0);
  return ntohs(a.sin_port);
}

START_TEST(test_a_receive_on_an_fd_closed_before_the_first_iteration_never_reads_its_successor) {
  int a[2], b[2];
  make_socketpair(a);
  char old_buf[16] = "", new_buf[16] = "";
  aloop_future *old_recv = aloop_sock_recv_into(L, a[0], old_buf, sizeof old_buf);
  ck_assert_ptr_nonnull(old_recv);
  int old_fd = a[0];
  ck_assert_int_eq(aloop_close(L, old_fd), 0); /* the loop has not run once yet */
  close(a[1]);
  make_socketpair(b);
  b[0] = onto(b[0], old_fd);
  ck_assert_int_eq(write(b[1], "new", 3), 3);
  aloop_future *new_recv = aloop_sock_recv_into(L, b[0], new_buf, sizeof new_buf);
  ck_assert_int_eq(run_within(new_recv, 10 * SEC), 3);
  ck_assert(memcmp(new_buf, "new", 3) == 0);
  ck_assert_int_eq(run_within(old_recv, 10 * SEC), -ECANCELED);
  ck_assert_str_eq(old_buf, "");
  close(b[0]), close(b[1]);
}
END_TEST

enum { OLD_CLIENTS = 8 };

/* A client of the closed listener: refused, reset, or at end of stream, within `ms`; never
 * served. Returns 1 if it saw the end. */
static int sees_the_end(int fd, int ms) {
  struct pollfd p = {.fd = fd, .events = POLLIN};
  if (poll(&p, 1, ms) != 1) return 0;
  char c;
  ssize_t n = recv(fd, &c, 1, MSG_DONTWAIT);
  return n == 0 || (n < 0 && (errno == ECONNRESET || errno == ECONNREFUSED || errno == EPIPE));
}

/* A protocol that closes the listening socket when its first bytes arrive: the close happens in
 * the middle of the loop's handling of what the kernel reported, with the listener's own news
 * (connections it accepted) possibly still behind it in the same batch. */
struct closer {
  int lfd;
  bool closed, lost;
};

static void close_listener(aloop_transport *t, const void *data, size_t n, void *ctx) {
  (void)t, (void)data, (void)n;
  struct closer *c = ctx;
  if (c->closed) return;
  c->closed = true;
  ck_assert_int_eq(aloop_close(L, c->lfd), 0);
}

static void closer_lost(aloop_transport *t, int err, void *ctx) {
  (void)t, (void)err;
  ((struct closer *)ctx)->lost = true;
}

START_TEST(test_connections_to_a_closed_listener_never_reach_the_next_one_on_its_fd_number) {
  struct sockaddr_in addr1, addr2;
  int lfd = tcp_listener(&addr1);
  aloop_future *pending = aloop_sock_accept(L, lfd); /* accepting is under way when it closes */
  int sv[2];
  make_socketpair(sv);
  struct closer c = {.lfd = lfd};
  static const aloop_protocol closer = {.data_received = close_listener,
                                        .connection_lost = closer_lost};
  aloop_transport *t = aloop_transport_new(L, sv[1], &closer, &c);
  for (int i = 0; i < 3; i++) aloop_run_once(L, 0);
  /* The bytes first, then the clients: the listener's completions follow the transport's. */
  ck_assert_int_eq(write(sv[0], "x", 1), 1);
  int clients[OLD_CLIENTS];
  for (int i = 0; i < OLD_CLIENTS; i++) {
    clients[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_eq(connect(clients[i], (struct sockaddr *)&addr1, sizeof addr1), 0);
  }
  for (int i = 0; i < 1000 && !c.closed; i++) aloop_run_once(L, 10 * MS);
  ck_assert(c.closed);
  /* The old listener's own accept may have taken a client before the close: that is its own. */
  int64_t own = run_within(pending, 10 * SEC);
  ck_assert_msg(own >= 0 || own == -ECANCELED, "accept on the closed listener: %s",
                aloop_strerror((int)own));
  if (own >= 0) close((int)own);
  int lfd2 = onto(tcp_listener(&addr2), lfd);
  int fresh = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ck_assert_int_eq(connect(fresh, (struct sockaddr *)&addr2, sizeof addr2), 0);
  int64_t got = run_within(aloop_sock_accept(L, lfd2), 10 * SEC);
  ck_assert_int_ge(got, 0);
  ck_assert_int_eq(port_of((int)got, getsockname), ntohs(addr2.sin_port));
  ck_assert_int_eq(port_of(fresh, getsockname), port_of((int)got, getpeername));
  /* Every old client hears the end (reset by the closed listener, or closed by the loop). */
  for (int i = 0; i < OLD_CLIENTS; i++) {
    int seen = 0;
    for (int tries = 0; tries < 100 && !seen; tries++) {
      aloop_run_once(L, 10 * MS);
      seen = sees_the_end(clients[i], 90);
    }
    ck_assert_msg(seen, "old client %d was neither reset nor closed", i);
    close(clients[i]);
  }
  aloop_transport_close(t);
  for (int i = 0; i < 1000 && !c.lost; i++) aloop_run_once(L, 10 * MS);
  ck_assert(c.lost);
  close((int)got), close(fresh), close(lfd2), close(sv[0]);
}
END_TEST

TCase *conformance_fd_reuse(void) {
  TCase *tc = conformance_tcase("fd_reuse");
  tcase_add_test(tc, test_a_receive_on_an_fd_closed_before_the_first_iteration_never_reads_its_successor);
  tcase_add_test(tc, test_connections_to_a_closed_listener_never_reach_the_next_one_on_its_fd_number);
  return tc;
}
