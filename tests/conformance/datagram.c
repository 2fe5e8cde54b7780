/* Datagram endpoints and socket operations over loopback UDP (IPv4, and IPv6 where the kernel has
 * it) and Unix datagram sockets: empty and largest datagrams, 100,000 datagrams from 8 senders
 * with none lost, ICMP refusals reaching error_received, write-buffer flow control, and options
 * that contradict each other. Every wait is bounded; senders keep a window of datagrams in flight,
 * so no kernel buffer can overflow however fast or slow the machine is. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "harness.h"

/* Run L until cond(arg) holds, at most max_ns; returns whether it holds. */
static bool run_until(bool (*cond)(void *), void *arg, int64_t max_ns) {
  int64_t deadline = aloop_time(L) + max_ns;
  while (!cond(arg) && aloop_time(L) < deadline) aloop_run_once(L, 10 * MS);
  return cond(arg);
}

/* One endpoint under test: what it saw. */
struct peer {
  aloop_datagram_transport *t;
  bool echo;                /* send every datagram back to its sender */
  int made, lost, lost_err, errors, last_error, paused, resumed;
  size_t received, bytes;
  size_t last_len;
  unsigned char *last;      /* the last datagram's bytes (ALOOP_DATAGRAM_MAX) */
  aloop_sockaddr last_from;
  void (*on_datagram)(struct peer *p, const void *data, size_t n, const aloop_sockaddr *from);
  void *arg;
};

static void p_made(aloop_datagram_transport *t, void *ctx) {
  struct peer *p = ctx;
  p->t = t;
  p->made++;
}

static void p_received(aloop_datagram_transport *t, const void *data, size_t n,
                       const aloop_sockaddr *from, void *ctx) {
  struct peer *p = ctx;
  p->received++;
  p->bytes += n;
  p->last_len = n;
  if (p->last) memcpy(p->last, data, n);
  p->last_from = *from;
  if (p->echo) ck_assert_int_eq(aloop_datagram_sendto(t, data, n, from), 0);
  if (p->on_datagram) p->on_datagram(p, data, n, from);
}

static void p_error(aloop_datagram_transport *t, int err, void *ctx) {
  (void)t;
  struct peer *p = ctx;
  p->errors++;
  p->last_error = err;
}

static void p_lost(aloop_datagram_transport *t, int err, void *ctx) {
  (void)t;
  struct peer *p = ctx;
  p->lost++;
  p->lost_err = err;
  p->t = NULL;
}

static void p_pause(aloop_datagram_transport *t, void *ctx) {
  (void)t;
  ((struct peer *)ctx)->paused++;
}

static void p_resume(aloop_datagram_transport *t, void *ctx) {
  (void)t;
  ((struct peer *)ctx)->resumed++;
}

static const aloop_datagram_protocol peer_proto = {
    .connection_made = p_made, .datagram_received = p_received, .error_received = p_error,
    .connection_lost = p_lost, .pause_writing = p_pause, .resume_writing = p_resume};

static bool is_made(void *arg) { return ((struct peer *)arg)->made > 0; }
static bool is_lost(void *arg) { return ((struct peer *)arg)->lost > 0; }

/* An endpoint with opts, once its connection_made ran; the create outcome must be 0. */
static void open_peer(struct peer *p, const aloop_datagram_options *o) {
  aloop_future *f = aloop_create_datagram_endpoint(L, &peer_proto, p, o);
  ck_assert_ptr_nonnull(f);
  aloop_future *keep = aloop_future_ref(f);
  int64_t r = run_within(f, 30 * SEC);
  ck_assert_msg(r == 0, "create_datagram_endpoint: %s", aloop_future_message(keep));
  aloop_datagram_transport *t = aloop_future_data(keep);
  aloop_future_release(keep);
  ck_assert_ptr_nonnull(t);
  ck_assert(run_until(is_made, p, 10 * SEC));
  ck_assert_ptr_eq(p->t, t);
}

/* Create with opts and expect it to fail with err. */
static void open_fails(const aloop_datagram_options *o, int err) {
  struct peer p = {0};
  aloop_future *f = aloop_create_datagram_endpoint(L, &peer_proto, &p, o);
  ck_assert_ptr_nonnull(f);
  ck_assert_int_eq(run_within(f, 30 * SEC), err);
  ck_assert_int_eq(p.made, 0);
}

static void close_peer(struct peer *p) {
  if (p->t) aloop_datagram_close(p->t);
  ck_assert(run_until(is_lost, p, 10 * SEC));
  ck_assert_int_eq(p->lost, 1);
  ck_assert_int_eq(p->lost_err, 0);
  free(p->last);
  p->last = NULL;
}

static int port_of(const aloop_sockaddr *a) {
  if (a->addr.ss_family == AF_INET6) return ntohs(((const struct sockaddr_in6 *)&a->addr)->sin6_port);
  return ntohs(((const struct sockaddr_in *)&a->addr)->sin_port);
}

static int local_port(struct peer *p) {
  aloop_sockaddr a;
  ck_assert_int_eq(aloop_datagram_sockname(p->t, &a), 0);
  return port_of(&a);
}

static bool same_address(const aloop_sockaddr *a, const aloop_sockaddr *b) {
  return a->len == b->len && memcmp(&a->addr, &b->addr, a->len) == 0;
}

static unsigned char pattern_at(size_t i) { return (unsigned char)(i * 13 % 251); }

struct count_goal {
  struct peer *p;
  size_t n;
};
static bool has_received(void *arg) {
  struct count_goal *g = arg;
  return g->p->received >= g->n;
}
static void wait_received(struct peer *p, size_t n) {
  struct count_goal g = {p, n};
  ck_assert_msg(run_until(has_received, &g, 30 * SEC), "%zu datagrams of %zu arrived", p->received,
                n);
}

/* ---- sizes ------------------------------------------------------------------------------------- */

/* A server echoing and a client connected to it, on host. */
static void echo_pair(const char *host, struct peer *server, struct peer *client) {
  *server = (struct peer){.echo = true, .last = malloc(ALOOP_DATAGRAM_MAX)};
  *client = (struct peer){.last = malloc(ALOOP_DATAGRAM_MAX)};
  aloop_datagram_options so = {.size = sizeof so, .local_host = host};
  open_peer(server, &so);
  aloop_datagram_options co = {.size = sizeof co, .remote_host = host,
                               .remote_port = local_port(server)};
  open_peer(client, &co);
}

START_TEST(test_empty_and_largest_ipv4_datagrams_arrive_whole_with_their_sender) {
  struct peer server, client;
  echo_pair("127.0.0.1", &server, &client);
  enum { LARGEST = 65507 }; /* 65,535 - IPv4 header - UDP header */
  unsigned char *big = malloc(LARGEST);
  for (size_t i = 0; i < LARGEST; i++) big[i] = pattern_at(i);

  ck_assert_int_eq(aloop_datagram_sendto(client.t, "", 0, NULL), 0);
  wait_received(&server, 1);
  ck_assert_uint_eq(server.last_len, 0);
  aloop_sockaddr client_addr;
  ck_assert_int_eq(aloop_datagram_sockname(client.t, &client_addr), 0);
  ck_assert(same_address(&server.last_from, &client_addr));
  wait_received(&client, 1); /* the echo: an empty datagram, not an end of anything */
  ck_assert_uint_eq(client.last_len, 0);

  ck_assert_int_eq(aloop_datagram_sendto(client.t, big, LARGEST, NULL), 0);
  wait_received(&server, 2);
  ck_assert_uint_eq(server.last_len, LARGEST);
  ck_assert(memcmp(server.last, big, LARGEST) == 0);
  wait_received(&client, 2);
  ck_assert_uint_eq(client.last_len, LARGEST);
  ck_assert(memcmp(client.last, big, LARGEST) == 0);
  aloop_sockaddr server_addr;
  ck_assert_int_eq(aloop_datagram_peername(client.t, &server_addr), 0);
  ck_assert(same_address(&client.last_from, &server_addr));

  /* One byte more than IPv4 can carry: the send fails, the protocol hears why, nothing closes. */
  unsigned char *too_big = calloc(1, LARGEST + 1);
  ck_assert_int_eq(aloop_datagram_sendto(client.t, too_big, LARGEST + 1, NULL), 0);
  ck_assert_int_eq(client.errors, 1);
  ck_assert_int_eq(client.last_error, -EMSGSIZE);
  ck_assert(!aloop_datagram_is_closing(client.t));
  ck_assert_int_eq(aloop_datagram_sendto(client.t, "x", 1, NULL), 0);
  wait_received(&client, 3);
  ck_assert_int_eq(server.errors, 0);
  free(too_big);
  free(big);
  close_peer(&client);
  close_peer(&server);
}
END_TEST

/* ---- many datagrams, many senders -------------------------------------------------------------- */

enum { SENDERS = 8, TOTAL = 100000, PER_SENDER = TOTAL / SENDERS, PAYLOAD = 64 };

struct flood {
  struct peer server, senders[SENDERS];
  unsigned char seen[SENDERS][PER_SENDER];   /* at the server */
  unsigned char echoed[SENDERS][PER_SENDER]; /* back at each sender */
  size_t sent[SENDERS], echoes;
  bool duplicate;
  size_t window;
};
static struct flood *flood;

static void send_next(int s) {
  unsigned char msg[PAYLOAD] = {0};
  uint32_t head[2] = {(uint32_t)s, (uint32_t)flood->sent[s]};
  memcpy(msg, head, sizeof head);
  flood->sent[s]++;
  ck_assert_int_eq(aloop_datagram_sendto(flood->senders[s].t, msg, sizeof msg, NULL), 0);
}

static bool read_head(const void *data, size_t n, uint32_t head[2]) {
  if (n != PAYLOAD) return false;
  memcpy(head, data, sizeof(uint32_t) * 2);
  return head[0] < SENDERS && head[1] < PER_SENDER;
}

static void server_saw(struct peer *p, const void *data, size_t n, const aloop_sockaddr *from) {
  (void)p, (void)from;
  uint32_t h[2];
  ck_assert(read_head(data, n, h));
  if (flood->seen[h[0]][h[1]]++) flood->duplicate = true;
}

/* An echo came back: one more may go, so at most `window` are ever in flight per sender. */
static void sender_saw(struct peer *p, const void *data, size_t n, const aloop_sockaddr *from) {
  (void)from;
  uint32_t h[2];
  ck_assert(read_head(data, n, h));
  int s = (int)(p - flood->senders);
  ck_assert_int_eq(h[0], s);
  if (flood->echoed[s][h[1]]++) flood->duplicate = true;
  flood->echoes++;
  if (flood->sent[s] < PER_SENDER) send_next(s);
}

static bool all_echoed(void *arg) {
  (void)arg;
  return flood->echoes == TOTAL;
}

/* A large receive buffer, and the window that keeps what is in flight well inside it. */
static size_t big_receive_buffer(int fd) {
  int want = 4 << 20, got = 0;
  socklen_t len = sizeof got;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &want, sizeof want);
  ck_assert_int_eq(getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &got, &len), 0);
  return (size_t)got;
}

START_TEST(test_100000_datagrams_from_8_senders_arrive_and_echo_without_loss) {
  flood = calloc(1, sizeof *flood);
  flood->server = (struct peer){.echo = true, .on_datagram = server_saw};
  aloop_datagram_options so = {.size = sizeof so, .local_host = "127.0.0.1"};
  open_peer(&flood->server, &so);
  size_t rcvbuf = big_receive_buffer(aloop_datagram_fd(flood->server.t));
  for (int s = 0; s < SENDERS; s++) {
    flood->senders[s] = (struct peer){.on_datagram = sender_saw};
    aloop_datagram_options co = {.size = sizeof co, .remote_host = "127.0.0.1",
                                 .remote_port = local_port(&flood->server)};
    open_peer(&flood->senders[s], &co);
    size_t b = big_receive_buffer(aloop_datagram_fd(flood->senders[s].t));
    if (b < rcvbuf) rcvbuf = b;
  }
  /* A small datagram costs the receive buffer its skb's truesize, well under 2 KiB: with every
   * sender's window full at once, the buffers stay at most half full. */
  flood->window = rcvbuf / 2 / (SENDERS * 2048);
  if (flood->window > 32) flood->window = 32;
  ck_assert_uint_ge(flood->window, 1);
  for (int s = 0; s < SENDERS; s++)
    for (size_t i = 0; i < flood->window; i++) send_next(s);
  ck_assert_msg(run_until(all_echoed, NULL, 100 * SEC), "%zu of %d echoes came back",
                flood->echoes, TOTAL);
  ck_assert(!flood->duplicate);
  ck_assert_uint_eq(flood->server.received, TOTAL);
  for (int s = 0; s < SENDERS; s++) {
    for (size_t i = 0; i < PER_SENDER; i++)
      ck_assert(flood->seen[s][i] == 1 && flood->echoed[s][i] == 1);
    ck_assert_int_eq(flood->senders[s].errors, 0);
    close_peer(&flood->senders[s]);
  }
  ck_assert_int_eq(flood->server.errors, 0);
  close_peer(&flood->server);
  free(flood);
}
END_TEST

/* ---- errors -------------------------------------------------------------------------------------- */

/* An ephemeral UDP port on 127.0.0.1 that nobody listens on now. */
static int closed_port(void) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof a;
  ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
  ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
  close(fd);
  return ntohs(a.sin_port);
}

static void ping_until_refused(aloop_loop *loop, void *arg) {
  struct peer *p = arg;
  if (p->errors) return;
  ck_assert_int_eq(aloop_datagram_sendto(p->t, "ping", 4, NULL), 0);
  ck_assert_int_eq(aloop_call_later(loop, 50 * MS, ping_until_refused, p, NULL), 0);
}

static bool has_error(void *arg) { return ((struct peer *)arg)->errors > 0; }

struct plain_recv {
  int fd;
  char buf[16];
  ssize_t n;
};
static bool plain_received(void *arg) {
  struct plain_recv *r = arg;
  if (r->n <= 0) r->n = recv(r->fd, r->buf, sizeof r->buf, MSG_DONTWAIT);
  return r->n > 0;
}

START_TEST(test_an_icmp_refusal_reaches_error_received_and_the_transport_stays_open) {
  int port = closed_port();
  struct peer p = {0};
  aloop_datagram_options o = {.size = sizeof o, .remote_host = "127.0.0.1", .remote_port = port};
  open_peer(&p, &o);
  ping_until_refused(L, &p);
  ck_assert_msg(run_until(has_error, &p, 10 * SEC), "no error_received");
  ck_assert_int_eq(p.last_error, -ECONNREFUSED);
  ck_assert(!aloop_datagram_is_closing(p.t));
  ck_assert_int_eq(p.lost, 0);
  run_until(is_lost, &p, 100 * MS); /* the last ping timer runs out */

  /* Someone listens there now: the same transport reaches them. */
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0) {
    ck_assert_int_eq(aloop_datagram_sendto(p.t, "again", 5, NULL), 0);
    struct plain_recv r = {.fd = fd};
    ck_assert(run_until(plain_received, &r, 10 * SEC));
    ck_assert_int_eq(r.n, 5);
    ck_assert(memcmp(r.buf, "again", 5) == 0);
  } else {
    fprintf(stderr, "datagram: port %d was taken meanwhile; the resend was not checked\n", port);
  }
  close(fd);
  close_peer(&p);
}
END_TEST

START_TEST(test_options_that_contradict_each_other_fail_and_a_given_socket_is_closed) {
  int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  aloop_datagram_options o = {.size = sizeof o, .use_sock = true, .sock = sock,
                              .local_host = "127.0.0.1"};
  open_fails(&o, -EINVAL);
  ck_assert_int_eq(fcntl(sock, F_GETFD), -1); /* closed, as promised */
  o = (aloop_datagram_options){.size = sizeof o, .local_path = "/tmp/x", .remote_host = "h"};
  open_fails(&o, -EINVAL);
  o = (aloop_datagram_options){.size = sizeof o, .remote_port = 9};
  open_fails(&o, -EINVAL);
  o = (aloop_datagram_options){.size = sizeof o};
  open_fails(&o, -EINVAL);
  int stream = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  o = (aloop_datagram_options){.size = sizeof o, .use_sock = true, .sock = stream};
  open_fails(&o, -EINVAL);

  /* sendto's own errors: no address on an unconnected socket, another one on a connected one. */
  struct peer a = {0}, b = {0};
  o = (aloop_datagram_options){.size = sizeof o, .local_host = "127.0.0.1"};
  open_peer(&a, &o);
  o = (aloop_datagram_options){.size = sizeof o, .remote_host = "127.0.0.1",
                               .remote_port = local_port(&a)};
  open_peer(&b, &o);
  aloop_sockaddr elsewhere;
  ck_assert_int_eq(aloop_datagram_sockname(a.t, &elsewhere), 0);
  ck_assert_int_eq(aloop_datagram_sendto(a.t, "x", 1, NULL), -EDESTADDRREQ);
  ck_assert_int_eq(aloop_datagram_peername(a.t, &elsewhere), -ENOTCONN);
  /* An address the socket cannot send to is that datagram's error, not the transport's end. */
  aloop_sockaddr v6 = {.len = sizeof(struct sockaddr_in6)};
  struct sockaddr_in6 six = {.sin6_family = AF_INET6, .sin6_port = htons(9),
                             .sin6_addr = IN6ADDR_LOOPBACK_INIT};
  memcpy(&v6.addr, &six, sizeof six);
  ck_assert_int_eq(aloop_datagram_sendto(a.t, "x", 1, &v6), 0);
  ck_assert_int_eq(a.errors, 1);
  ck_assert(a.last_error == -EAFNOSUPPORT || a.last_error == -EINVAL);
  ck_assert(!aloop_datagram_is_closing(a.t));
  ck_assert_int_eq(aloop_datagram_sockname(b.t, &elsewhere), 0);
  ck_assert_int_eq(aloop_datagram_sendto(b.t, "x", 1, &elsewhere), -EISCONN);
  aloop_datagram_close(b.t);
  ck_assert_int_eq(aloop_datagram_sendto(b.t, "x", 1, NULL), -EPIPE);
  close_peer(&b);
  close_peer(&a);
}
END_TEST

/* ---- Unix datagrams and IPv6 ------------------------------------------------------------------- */

START_TEST(test_unix_datagrams_between_bound_paths_and_over_a_socketpair) {
  char dir[] = "/tmp/aloop-dgram-XXXXXX", spath[64], cpath[64];
  ck_assert_ptr_nonnull(mkdtemp(dir));
  snprintf(spath, sizeof spath, "%s/s", dir);
  snprintf(cpath, sizeof cpath, "%s/c", dir);
  struct peer server = {.echo = true, .last = malloc(ALOOP_DATAGRAM_MAX)};
  struct peer client = {.last = malloc(ALOOP_DATAGRAM_MAX)};
  aloop_datagram_options so = {.size = sizeof so, .local_path = spath};
  open_peer(&server, &so);
  aloop_datagram_options co = {.size = sizeof co, .local_path = cpath, .remote_path = spath};
  open_peer(&client, &co);
  ck_assert_int_eq(aloop_datagram_sendto(client.t, "hello", 5, NULL), 0);
  wait_received(&client, 1);
  ck_assert_uint_eq(client.last_len, 5);
  ck_assert(memcmp(client.last, "hello", 5) == 0);
  char words[128];
  ck_assert_str_eq(aloop_sockaddr_str(&server.last_from, words, sizeof words) + 5, cpath);
  ck_assert_str_eq(aloop_sockaddr_str(&client.last_from, words, sizeof words) + 5, spath);
  close_peer(&client);
  close_peer(&server);
  unlink(spath), unlink(cpath), rmdir(dir);

  /* A socketpair given as sockets: an empty datagram, a small one, and one longer than any
   * datagram delivered whole, which is dropped with -EMSGSIZE to error_received. */
  int sv[2];
  ck_assert_int_eq(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv), 0);
  int sndbuf = 1 << 20;
  setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
  struct peer a = {0}, b = {.last = malloc(ALOOP_DATAGRAM_MAX)};
  aloop_datagram_options ao = {.size = sizeof ao, .use_sock = true, .sock = sv[0]};
  aloop_datagram_options bo = {.size = sizeof bo, .use_sock = true, .sock = sv[1]};
  open_peer(&a, &ao);
  open_peer(&b, &bo);
  ck_assert_int_eq(aloop_datagram_fd(a.t), sv[0]);
  ck_assert_int_eq(aloop_datagram_sendto(a.t, "", 0, NULL), 0);
  ck_assert_int_eq(aloop_datagram_sendto(a.t, "unix", 4, NULL), 0);
  size_t huge = ALOOP_DATAGRAM_MAX + 1000;
  unsigned char *h = calloc(1, huge);
  ck_assert_int_eq(aloop_datagram_sendto(a.t, h, huge, NULL), 0);
  ck_assert_int_eq(aloop_datagram_sendto(a.t, "end", 3, NULL), 0);
  wait_received(&b, 3);
  ck_assert_uint_eq(b.bytes, 7);
  ck_assert_uint_eq(b.last_len, 3);
  ck_assert_int_eq(b.last_from.addr.ss_family, AF_UNIX);
  ck_assert_int_eq(b.errors, 1);
  ck_assert_int_eq(b.last_error, -EMSGSIZE);
  ck_assert_int_eq(a.errors, 0);
  free(h);
  close_peer(&a);
  close_peer(&b);
}
END_TEST

/* aloop_datagram_transport_new: a socket the caller made becomes a transport at once (no
 * future); a stream socket is refused with EINVAL and closed. */
START_TEST(test_a_transport_made_at_once_over_a_given_socket) {
  int sv[2];
  ck_assert_int_eq(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv), 0);
  struct peer a = {0}, b = {.last = malloc(ALOOP_DATAGRAM_MAX)};
  aloop_datagram_transport *ta = aloop_datagram_transport_new(L, sv[0], &peer_proto, &a);
  aloop_datagram_transport *tb = aloop_datagram_transport_new(L, sv[1], &peer_proto, &b);
  ck_assert_ptr_nonnull(ta);
  ck_assert_ptr_nonnull(tb);
  ck_assert_int_eq(fcntl(sv[0], F_GETFL) & O_NONBLOCK, O_NONBLOCK);
  ck_assert_int_eq(aloop_datagram_sendto(ta, "now", 3, NULL), 0); /* before connection_made too */
  ck_assert(run_until(is_made, &a, 10 * SEC) && run_until(is_made, &b, 10 * SEC));
  ck_assert_ptr_eq(a.t, ta);
  wait_received(&b, 1);
  ck_assert_uint_eq(b.last_len, 3);
  ck_assert(memcmp(b.last, "now", 3) == 0);
  close_peer(&a);
  close_peer(&b);

  int stream = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ck_assert_int_ge(stream, 0);
  errno = 0;
  ck_assert_ptr_null(aloop_datagram_transport_new(L, stream, &peer_proto, &a));
  ck_assert_int_eq(errno, EINVAL);
  ck_assert_int_eq(fcntl(stream, F_GETFD), -1); /* closed */
}
END_TEST

START_TEST(test_ipv6_loopback_datagrams_where_the_kernel_has_ipv6) {
  int fd = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
  if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0) {
    fprintf(stderr, "datagram: NOT RUN: no IPv6 loopback here (%s)\n", strerror(errno));
    if (fd >= 0) close(fd);
    return;
  }
  close(fd);
  struct peer server, client;
  echo_pair("::1", &server, &client);
  ck_assert_int_eq(aloop_datagram_sendto(client.t, "six", 3, NULL), 0);
  wait_received(&client, 1);
  ck_assert_uint_eq(client.last_len, 3);
  ck_assert(memcmp(client.last, "six", 3) == 0);
  ck_assert_int_eq(server.last_from.addr.ss_family, AF_INET6);
  char words[ALOOP_SOCKADDR_STRLEN];
  ck_assert_ptr_nonnull(strstr(aloop_sockaddr_str(&server.last_from, words, sizeof words), "[::1]"));
  close_peer(&client);
  close_peer(&server);
}
END_TEST

/* ---- flow control --------------------------------------------------------------------------------- */

struct drain {
  int fd;
  size_t got, expected;
  bool in_order;
};

static void drain_peer(aloop_loop *loop, int fd, void *arg) {
  (void)loop;
  struct drain *d = arg;
  uint32_t msg[256];
  ssize_t n;
  while ((n = recv(fd, msg, sizeof msg, MSG_DONTWAIT)) > 0) {
    if (msg[0] != d->got) d->in_order = false;
    d->got++;
  }
}

static bool drained(void *arg) {
  struct drain *d = arg;
  return d->got == d->expected;
}

START_TEST(test_a_peer_that_stops_reading_pauses_writing_and_reading_resumes_it) {
  int sv[2];
  ck_assert_int_eq(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
  struct peer p = {0};
  aloop_datagram_options o = {.size = sizeof o, .use_sock = true, .sock = sv[0]};
  open_peer(&p, &o);
  ck_assert_int_eq(aloop_datagram_set_write_buffer_limits(p.t, 8192, 2048), 0);
  uint32_t msg[256] = {0}; /* 1 KiB datagrams, numbered */
  size_t sent = 0;
  for (; sent < 100000 && !p.paused; sent++) {
    msg[0] = (uint32_t)sent;
    ck_assert_int_eq(aloop_datagram_sendto(p.t, msg, sizeof msg, NULL), 0);
  }
  ck_assert_msg(p.paused == 1, "no pause after %zu datagrams", sent);
  ck_assert_uint_gt(aloop_datagram_get_write_buffer_size(p.t), 8192);
  ck_assert_int_eq(p.resumed, 0);
  struct drain d = {.fd = sv[1], .expected = sent, .in_order = true};
  ck_assert_int_eq(aloop_add_reader(L, sv[1], drain_peer, &d), 0);
  ck_assert_msg(run_until(drained, &d, 30 * SEC), "%zu of %zu datagrams arrived", d.got, sent);
  ck_assert_int_eq(aloop_remove_reader(L, sv[1]), 1);
  ck_assert(d.in_order);
  ck_assert_int_eq(p.resumed, 1);
  ck_assert_uint_eq(aloop_datagram_get_write_buffer_size(p.t), 0);
  ck_assert_int_eq(p.errors, 0);
  close_peer(&p);
  close(sv[1]);
}
END_TEST

/* Closing with datagrams queued sends them first. */
START_TEST(test_close_sends_the_queued_datagrams_first) {
  int sv[2];
  ck_assert_int_eq(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
  struct peer p = {0};
  aloop_datagram_options o = {.size = sizeof o, .use_sock = true, .sock = sv[0]};
  open_peer(&p, &o);
  uint32_t msg[256] = {0};
  size_t sent = 0;
  for (; sent < 100000 && !aloop_datagram_get_write_buffer_size(p.t); sent++) {
    msg[0] = (uint32_t)sent;
    ck_assert_int_eq(aloop_datagram_sendto(p.t, msg, sizeof msg, NULL), 0);
  }
  for (size_t i = 0; i < 10; i++, sent++) { /* ten more behind the first queued one */
    msg[0] = (uint32_t)sent;
    ck_assert_int_eq(aloop_datagram_sendto(p.t, msg, sizeof msg, NULL), 0);
  }
  aloop_datagram_close(p.t);
  struct drain d = {.fd = sv[1], .expected = sent, .in_order = true};
  ck_assert_int_eq(aloop_add_reader(L, sv[1], drain_peer, &d), 0);
  ck_assert(run_until(drained, &d, 30 * SEC));
  ck_assert(run_until(is_lost, &p, 10 * SEC));
  ck_assert_int_eq(aloop_remove_reader(L, sv[1]), 1);
  ck_assert(d.in_order);
  ck_assert_int_eq(p.lost_err, 0);
  close(sv[1]);
}
END_TEST

/* ---- socket operations ------------------------------------------------------------------------- */

static int udp_socket(aloop_sockaddr *addr) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
  addr->len = sizeof addr->addr;
  ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&addr->addr, &addr->len), 0);
  return fd;
}

START_TEST(test_sock_recvfrom_and_sendto_move_datagrams_with_their_addresses) {
  aloop_sockaddr a_addr, b_addr, from;
  int a = udp_socket(&a_addr), b = udp_socket(&b_addr);
  char buf[16];
  aloop_future *rv = aloop_sock_recvfrom(L, b, buf, sizeof buf, &from); /* waits: nothing yet */
  aloop_run_once(L, 0);
  ck_assert(!aloop_future_done(rv));
  aloop_future *sd = aloop_sock_sendto(L, a, "abc", 3, &b_addr);
  ck_assert_int_eq(run_within(sd, 10 * SEC), 3);
  ck_assert_int_eq(run_within(rv, 10 * SEC), 3);
  ck_assert(memcmp(buf, "abc", 3) == 0);
  ck_assert(same_address(&from, &a_addr));

  /* An empty datagram is 0, and there is no end of stream after it. */
  ck_assert_int_eq(run_within(aloop_sock_sendto(L, a, "", 0, &b_addr), 10 * SEC), 0);
  ck_assert_int_eq(run_within(aloop_sock_recvfrom(L, b, buf, sizeof buf, NULL), 10 * SEC), 0);
  /* A datagram longer than the buffer is cut to it, and the next one is whole. */
  ck_assert_int_eq(run_within(aloop_sock_sendto(L, a, "0123456789", 10, &b_addr), 10 * SEC), 10);
  ck_assert_int_eq(run_within(aloop_sock_sendto(L, a, "xy", 2, &b_addr), 10 * SEC), 2);
  ck_assert_int_eq(run_within(aloop_sock_recvfrom(L, b, buf, 4, &from), 10 * SEC), 4);
  ck_assert(memcmp(buf, "0123", 4) == 0);
  ck_assert_int_eq(run_within(aloop_sock_recvfrom(L, b, buf, sizeof buf, &from), 10 * SEC), 2);

  /* Connected: sendto without an address. */
  ck_assert_int_eq(connect(a, (struct sockaddr *)&b_addr.addr, b_addr.len), 0);
  ck_assert_int_eq(run_within(aloop_sock_sendto(L, a, "c", 1, NULL), 10 * SEC), 1);
  ck_assert_int_eq(run_within(aloop_sock_recvfrom(L, b, buf, sizeof buf, &from), 10 * SEC), 1);
  ck_assert(same_address(&from, &a_addr));

  /* A waiting recvfrom is cancelled, and nothing is left in flight. */
  rv = aloop_sock_recvfrom(L, b, buf, sizeof buf, &from);
  aloop_run_once(L, 0);
  ck_assert_int_eq(aloop_future_cancel(rv), 0);
  ck_assert_int_eq(run_within(rv, 10 * SEC), -ECANCELED);
  aloop_stats st;
  aloop_get_stats(L, &st);
  ck_assert_uint_eq(st.ops, 0);
  aloop_close(L, a);
  aloop_close(L, b);
}
END_TEST

TCase *conformance_datagram(void) {
  TCase *tc = conformance_tcase("datagram");
  tcase_add_test(tc, test_empty_and_largest_ipv4_datagrams_arrive_whole_with_their_sender);
  tcase_add_test(tc, test_100000_datagrams_from_8_senders_arrive_and_echo_without_loss);
  tcase_add_test(tc, test_an_icmp_refusal_reaches_error_received_and_the_transport_stays_open);
  tcase_add_test(tc, test_options_that_contradict_each_other_fail_and_a_given_socket_is_closed);
  tcase_add_test(tc, test_unix_datagrams_between_bound_paths_and_over_a_socketpair);
  tcase_add_test(tc, test_a_transport_made_at_once_over_a_given_socket);
  tcase_add_test(tc, test_ipv6_loopback_datagrams_where_the_kernel_has_ipv6);
  tcase_add_test(tc, test_a_peer_that_stops_reading_pauses_writing_and_reading_resumes_it);
  tcase_add_test(tc, test_close_sends_the_queued_datagrams_first);
  tcase_add_test(tc, test_sock_recvfrom_and_sendto_move_datagrams_with_their_addresses);
  return tc;
}
