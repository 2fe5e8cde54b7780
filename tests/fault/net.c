/* Scenarios over sockets: socket operations, a transport echo over a connected pair, a server
 * with a few clients, and streams (start_server + open_connection). Loopback and ephemeral ports
 * only; every wait is bounded by the runner. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "scenarios.h"

static void close_fd(aloop_loop *loop, int *fd) {
  if (*fd >= 0) aloop_close(loop, *fd);
  *fd = -1;
}

/* A non-blocking listener on 127.0.0.1 at an ephemeral port; -1 (a violation) if not. */
static int listener(struct sockaddr_in *addr) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  socklen_t len = sizeof *addr;
  *addr = (struct sockaddr_in){.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (fd < 0 || bind(fd, (struct sockaddr *)addr, sizeof *addr) < 0 || listen(fd, 16) < 0 ||
      getsockname(fd, (struct sockaddr *)addr, &len) < 0) {
    fault_violation("cannot listen on 127.0.0.1: %s", strerror(errno));
    if (fd >= 0) close(fd);
    return -1;
  }
  return fd;
}

/* ---- socket ops: sendall, recv_into, recv, accept, connect ---------------------------------------- */

enum { SOCKOPS_BYTES = 64 * 1024 };
static unsigned char sockops_out[SOCKOPS_BYTES], sockops_in[SOCKOPS_BYTES];

/* Finish a future that may still be pending (cancelled first); an accepted fd it gave is closed. */
static void settle(aloop_loop *loop, aloop_future *f, bool gives_fd) {
  if (!f) return;
  aloop_future_cancel(f);
  int64_t rc = fault_await(loop, f, "a cancelled socket operation");
  if (gives_fd && rc >= 0) close((int)rc);
}

static bool sockops_pair(aloop_loop *loop, int sp[2]) {
  int64_t rc = fault_await(loop, aloop_sock_sendall(loop, sp[0], "hello", 5), "sock_sendall");
  if (rc != 5) return fault_saw("sock_sendall", rc), false;
  char buf[8];
  rc = fault_await(loop, aloop_sock_recv_into(loop, sp[1], buf, 3), "sock_recv_into");
  if (rc != 3) return fault_saw("sock_recv_into", rc), false;
  aloop_future *f = aloop_sock_recv(loop, sp[1], sizeof buf);
  rc = fault_await_keep(loop, f, "sock_recv");
  bool ok = rc == 2 && !memcmp(buf, "hel", 3) && aloop_future_data(f) &&
            !memcmp(aloop_future_data(f), "lo", 2);
  if (rc >= 0 && !ok) fault_violation("sock_recv gave %lld bytes, not \"lo\"", (long long)rc);
  fault_saw("sock_recv", rc);
  aloop_future_release(f);
  return ok;
}

static bool sockops_tcp(aloop_loop *loop, int *l, int *c, int *a) {
  struct sockaddr_in addr;
  if ((*l = listener(&addr)) < 0) return false;
  *c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  aloop_future *fa = aloop_sock_accept(loop, *l);
  aloop_future *fc = fault_got("sock_accept", fa)
                         ? aloop_sock_connect(loop, *c, (struct sockaddr *)&addr, sizeof addr)
                         : NULL;
  if (!fault_got("sock_connect", fc)) {
    settle(loop, fa, true);
    return false;
  }
  int64_t rc = fault_await(loop, fc, "sock_connect");
  fault_saw("sock_connect", rc);
  if (rc < 0) {
    settle(loop, fa, true);
    return false;
  }
  rc = fault_await(loop, fa, "sock_accept");
  fault_saw("sock_accept", rc);
  if (rc < 0) return false;
  *a = (int)rc;
  for (size_t i = 0; i < SOCKOPS_BYTES; i++) sockops_out[i] = (unsigned char)(i * 7);
  aloop_future *fs = aloop_sock_sendall(loop, *a, sockops_out, SOCKOPS_BYTES);
  if (!fault_got("sock_sendall", fs)) return false;
  size_t got = 0;
  while (got < SOCKOPS_BYTES) {
    rc = fault_await(loop, aloop_sock_recv_into(loop, *c, sockops_in + got, SOCKOPS_BYTES - got),
                     "sock_recv_into");
    if (rc <= 0) break;
    got += (size_t)rc;
  }
  if (rc == 0) fault_violation("end of stream after %zu bytes", got);
  fault_saw("sock_recv_into", rc);
  if (got < SOCKOPS_BYTES) {
    settle(loop, fs, false); /* the sender may wait for room that never comes now */
    return false;
  }
  rc = fault_await(loop, fs, "sock_sendall");
  fault_saw("sock_sendall", rc);
  if (memcmp(sockops_in, sockops_out, SOCKOPS_BYTES))
    fault_violation("the bytes received are not the bytes sent");
  return rc == SOCKOPS_BYTES;
}

void scenario_sockops(void) {
  aloop_loop *loop = fault_loop();
  if (!loop) return;
  int sp[2] = {-1, -1}, l = -1, c = -1, a = -1;
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sp) < 0)
    fault_violation("socketpair: %s", strerror(errno));
  else if (sockops_pair(loop, sp))
    fault_current->complete = sockops_tcp(loop, &l, &c, &a);
  close_fd(loop, &sp[0]);
  close_fd(loop, &sp[1]);
  close_fd(loop, &l);
  close_fd(loop, &c);
  close_fd(loop, &a);
  fault_free_loop(loop);
}

/* ---- a transport echo over a socketpair ------------------------------------------------------------ */

enum { TRANSPORT_BYTES = 300 * 1024 }; /* more than a socket buffer: the write queue is used */
static unsigned char transport_payload[TRANSPORT_BYTES];

struct end {
  aloop_transport *t;
  size_t got;
  bool made, lost;
  int err;
};
static struct end ends[2];
static int ends_created, ends_lost;
static bool ends_done;

static void end_made(aloop_transport *t, void *ctx) {
  struct end *e = ctx;
  e->made = true;
  if (e == &ends[1]) fault_after("transport write", aloop_transport_write(t, transport_payload, TRANSPORT_BYTES));
}

static void echo_received(aloop_transport *t, const void *data, size_t n, void *ctx) {
  (void)ctx;
  fault_after("transport write (echo)", aloop_transport_write(t, data, n));
}

static void client_received(aloop_transport *t, const void *data, size_t n, void *ctx) {
  struct end *e = ctx;
  if (n > TRANSPORT_BYTES - e->got || memcmp(data, transport_payload + e->got, n)) {
    fault_violation("the echo differs from what was sent (at byte %zu)", e->got);
    aloop_transport_abort(t);
    return;
  }
  if ((e->got += n) == TRANSPORT_BYTES) aloop_transport_close(t);
}

static void end_lost(aloop_transport *t, int err, void *ctx) {
  (void)t;
  struct end *e = ctx;
  if (e->lost) fault_violation("connection_lost twice");
  e->lost = true;
  e->err = err;
  fault_after("connection_lost", err);
  if (++ends_lost == ends_created) ends_done = true;
}

static const aloop_protocol echo_protocol = {
    .connection_made = end_made, .data_received = echo_received, .connection_lost = end_lost};
static const aloop_protocol client_protocol = {
    .connection_made = end_made, .data_received = client_received, .connection_lost = end_lost};

void scenario_transport(void) {
  memset(ends, 0, sizeof ends);
  ends_created = ends_lost = 0;
  ends_done = false;
  for (size_t i = 0; i < TRANSPORT_BYTES; i++) transport_payload[i] = (unsigned char)(i * 13 + 1);
  aloop_loop *loop = fault_loop();
  if (!loop) return;
  int sp[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sp) < 0) {
    fault_violation("socketpair: %s", strerror(errno));
    fault_free_loop(loop);
    return;
  }
  const aloop_protocol *protos[2] = {&echo_protocol, &client_protocol};
  for (int i = 0; i < 2; i++) {
    ends[i].t = aloop_transport_new(loop, sp[i], protos[i], &ends[i]); /* owns sp[i], even on failure */
    if (fault_got("aloop_transport_new", ends[i].t)) ends_created++;
  }
  if (ends_created) fault_run_until(loop, &ends_done, "the echo's connections");
  for (int i = 0; i < 2; i++)
    if (ends[i].t && !ends[i].made && !ends[i].lost) fault_violation("transport %d never made", i);
  fault_current->complete = ends_created == 2 && ends[1].got == TRANSPORT_BYTES &&
                            ends[0].lost && ends[1].lost && !ends[0].err && !ends[1].err;
  fault_free_loop(loop);
}

/* ---- a server: create_server, three clients (two transports, one socket op), close --------------- */

enum { SERVER_CLIENTS = 3 };
static int server_ctx_live;
static struct end clients[SERVER_CLIENTS];
static int clients_created, clients_lost;
static bool clients_started, clients_done; /* every client that could be was created */

static void *server_factory(void *arg) {
  (void)arg;
  int *ctx = malloc(sizeof *ctx); /* freed in connection_lost: a leak says it was lost */
  if (ctx) server_ctx_live++;
  else fault_current->enomem = true; /* refused: the server closes that connection (documented) */
  return ctx;
}

static void server_conn_lost(aloop_transport *t, int err, void *ctx) {
  (void)t;
  fault_after("server connection_lost", err);
  server_ctx_live--;
  free(ctx);
}

static const aloop_protocol server_protocol = {.data_received = echo_received,
                                               .connection_lost = server_conn_lost};

static void ping_made(aloop_transport *t, void *ctx) {
  ((struct end *)ctx)->made = true;
  fault_after("client write", aloop_transport_write(t, "ping", 4));
}

static void ping_received(aloop_transport *t, const void *data, size_t n, void *ctx) {
  struct end *e = ctx;
  if (n > 4 - e->got || memcmp(data, "ping" + e->got, n)) fault_violation("a wrong echo");
  if ((e->got += n) >= 4) aloop_transport_close(t);
}

static void ping_lost(aloop_transport *t, int err, void *ctx) {
  (void)t;
  struct end *e = ctx;
  e->lost = true;
  e->err = err;
  fault_after("client connection_lost", err);
  clients_lost++;
  clients_done = clients_started && clients_lost == clients_created;
}

static const aloop_protocol ping_protocol = {
    .connection_made = ping_made, .data_received = ping_received, .connection_lost = ping_lost};

/* The third client: plain socket operations. True if its echo came back. */
static bool raw_client(aloop_loop *loop, int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  char buf[4];
  int64_t rc = fault_await(loop, aloop_sock_connect(loop, fd, (struct sockaddr *)&addr, sizeof addr),
                           "sock_connect");
  if (rc == 0) rc = fault_await(loop, aloop_sock_sendall(loop, fd, "ping", 4), "sock_sendall");
  size_t got = 0;
  while (rc >= 0 && got < 4) {
    rc = fault_await(loop, aloop_sock_recv_into(loop, fd, buf + got, 4 - got), "sock_recv_into");
    if (rc == 0) break; /* the server dropped it (reported) */
    if (rc > 0) got += (size_t)rc;
  }
  fault_after("the raw client", rc);
  aloop_close(loop, fd);
  return got == 4 && !memcmp(buf, "ping", 4);
}

void scenario_server(void) {
  memset(clients, 0, sizeof clients);
  server_ctx_live = clients_created = clients_lost = 0;
  clients_started = clients_done = false;
  aloop_loop *loop = fault_loop();
  if (!loop) return;
  aloop_future *f = aloop_create_server(loop, &server_protocol, server_factory, NULL, "127.0.0.1", 0,
                                        NULL);
  int64_t rc = fault_await_keep(loop, f, "create_server");
  aloop_server *server = rc == 0 ? aloop_future_data(f) : NULL;
  if (rc < 0 && rc != -ENOMEM) fault_violation("create_server: %s", aloop_future_message(f));
  fault_saw("create_server", rc);
  aloop_future_release(f);
  if (!server) {
    fault_free_loop(loop);
    return;
  }
  int port = aloop_server_port(server);
  int connected = 0;
  for (int i = 0; i < SERVER_CLIENTS - 1; i++) {
    rc = fault_await(loop, aloop_create_connection(loop, &ping_protocol, &clients[i], "127.0.0.1", port),
                     "create_connection");
    fault_saw("create_connection", rc);
    if (rc == 0) clients_created++;
  }
  clients_started = true;
  clients_done = clients_lost == clients_created;
  fault_run_until(loop, &clients_done, "the clients");
  for (int i = 0; i < SERVER_CLIENTS - 1; i++) connected += clients[i].got == 4 && !clients[i].err;
  connected += raw_client(loop, port);
  aloop_server_close(server);
  rc = fault_await(loop, aloop_server_wait_closed(server), "wait_closed");
  fault_saw("wait_closed", rc);
  aloop_server_free(server);
  fault_free_loop(loop);
  if (server_ctx_live) fault_violation("%d connection contexts never reached connection_lost", server_ctx_live);
  fault_current->complete = connected == SERVER_CLIENTS && rc == 0;
}

/* ---- streams: start_server + open_connection, readline / write / drain ---------------------------- */

enum { STREAM_CLIENTS = 2, STREAM_ROUNDS = 2 };
static aloop_loop *stream_loop;
static int stream_port;

static int64_t echo_lines(aloop_stream *s, void *arg) {
  (void)arg;
  char line[256];
  int64_t n;
  while ((n = aloop_await(aloop_stream_readline(s, line, sizeof line))) > 0) {
    int rc = aloop_stream_write(s, line, (size_t)n);
    if (rc < 0) return rc;
    if ((n = aloop_await(aloop_stream_drain(s))) < 0) break;
  }
  return n;
}

static int64_t stream_client(void *arg) {
  int id = (int)(intptr_t)arg;
  aloop_future *f = aloop_open_connection(stream_loop, "127.0.0.1", stream_port, 0);
  int64_t rc = aloop_await_keep(f);
  aloop_stream *s = rc == 0 ? aloop_future_take_data(f) : NULL;
  if (rc < 0 && f && rc != -ENOMEM) rc = aloop_task_error(rc, "%s", aloop_future_message(f));
  aloop_future_release(f);
  if (!s) return rc < 0 ? rc : -EPROTO;
  for (int round = 0; round < STREAM_ROUNDS && rc >= 0; round++) {
    char msg[64], line[64];
    int len = snprintf(msg, sizeof msg, "client %d, round %d\n", id, round);
    if ((rc = aloop_stream_write(s, msg, (size_t)len)) < 0) break;
    if ((rc = aloop_await(aloop_stream_drain(s))) < 0) break;
    rc = aloop_await(aloop_stream_readline(s, line, sizeof line));
    if (rc == 0) rc = -ECONNRESET; /* the server's side ended early (its failure is reported) */
    if (rc >= 0 && (rc != len || memcmp(line, msg, (size_t)len)))
      rc = aloop_task_error(-EPROTO, "round %d: %lld bytes back, not the line sent", round,
                            (long long)rc);
  }
  int64_t closed = aloop_await(aloop_stream_close(s)); /* NULL (-ENOMEM): closed all the same */
  if (rc == -ALOOP_EINCOMPLETE || rc == -ECONNRESET) rc = -ECONNRESET; /* the server's side failed */
  return rc < 0 ? rc : closed < 0 ? closed : 0;
}

void scenario_streams(void) {
  aloop_loop *loop = stream_loop = fault_loop();
  if (!loop) return;
  aloop_future *f = aloop_start_server(loop, echo_lines, NULL, "127.0.0.1", 0, NULL);
  int64_t rc = fault_await_keep(loop, f, "start_server");
  aloop_server *server = rc == 0 ? aloop_future_data(f) : NULL;
  if (rc < 0 && rc != -ENOMEM) fault_violation("start_server: %s", aloop_future_message(f));
  fault_saw("start_server", rc);
  aloop_future_release(f);
  if (!server) {
    fault_free_loop(loop);
    return;
  }
  stream_port = aloop_server_port(server);
  aloop_future *tasks[STREAM_CLIENTS];
  for (int i = 0; i < STREAM_CLIENTS; i++) {
    tasks[i] = aloop_task_spawn(loop, stream_client, (void *)(intptr_t)i, NULL);
    fault_got("aloop_task_spawn", tasks[i]);
  }
  int ok = 0;
  for (int i = 0; i < STREAM_CLIENTS; i++) {
    if (!tasks[i]) continue;
    rc = fault_await_keep(loop, tasks[i], "a stream client");
    if (rc == -EPROTO) fault_violation("client %d: %s", i, aloop_future_message(tasks[i]));
    else fault_after("a stream client", rc);
    ok += rc == 0;
    aloop_future_release(tasks[i]);
  }
  aloop_server_close(server);
  rc = fault_await(loop, aloop_server_wait_closed(server), "wait_closed");
  fault_saw("wait_closed", rc);
  aloop_server_free(server);
  fault_free_loop(loop);
  fault_current->complete = ok == STREAM_CLIENTS && rc == 0;
}
