/* aloop-load: the benchmark's load client. It uses none of aloop (plain epoll), so every server is
 * measured by the same yardstick. N connections each send a message, wait for the whole echo,
 * check it byte for byte, and repeat; after a warm-up it counts for a fixed time and reports
 * requests/s, MiB/s, latency percentiles, errors, and the server's CPU time per request (read from
 * /proc: on 2 cores the client may saturate first, and the server's own cost stays meaningful).
 *
 * --tls speaks TLS 1.3 over the same loop (OpenSSL, non-blocking SSL objects on the sockets; the
 * server's certificate is not verified, and no session is ever resumed). --handshakes measures
 * connections instead of the echo: each connection connects, handshakes, echoes one message,
 * closes and starts again; the figure is handshakes/s and the server's CPU time per handshake. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "load_common.h"

enum { MAX_EVENTS = 256 };

/* Where a connection is. Without --handshakes it connects once and echoes until the end. */
enum state {
  CONNECTING,  /* --handshakes: a non-blocking connect in progress */
  HANDSHAKING, /* --tls: SSL_do_handshake until it is done */
  ECHOING,     /* a message out, its echo back */
  CLOSING,     /* --handshakes: our close sent, waiting for the server's end of stream */
};

struct conn {
  int fd;
  SSL *ssl;              /* with --tls; a new one per connection, so no session is resumed */
  enum state state;
  size_t sent, got;      /* of the current message */
  uint64_t started;      /* when its first byte went out (--handshakes: when the connect began) */
  bool want_out;         /* EPOLLOUT registered */
  bool dead;
};

struct options {
  struct load_options l;
  size_t size;
  bool tls, handshakes;
};

/* What the connections share for one run. */
struct run {
  const struct options *o;
  int ep;
  SSL_CTX *tls; /* NULL without --tls */
  struct sockaddr_storage addr;
  socklen_t addrlen;
  unsigned char *msg, *back;
  struct results r;
  bool counting, told; /* told: the first failure's reason was printed */
  uint64_t end;
  int alive;
};

static void usage(FILE *out) {
  fprintf(out,
          "usage: aloop-load --port P [--host H] [--connections N] [--size BYTES] [--tls]\n"
          "                  [--handshakes] [--duration S] [--warmup S] [--pid PID]... [--json]\n"
          "  N connections (default 10) each send a SIZE-byte message (default 1024), wait for\n"
          "  the whole echo, check it, repeat; counts for DURATION s (default 5) after WARMUP s\n"
          "  (default 1). --pid: the server's process(es), for its CPU time per request.\n"
          "  --tls: speak TLS 1.3 to the server. The server's certificate is NOT verified (any\n"
          "  certificate is taken: this is a benchmark, not a client to trust), and no session is\n"
          "  resumed: every handshake is a full one.\n"
          "  --handshakes: instead of echoing on, each connection connects, handshakes (with\n"
          "  --tls), echoes one SIZE-byte message, closes and connects again; reports\n"
          "  handshakes/s (connections/s without --tls) and server CPU time per handshake.\n");
}

static int parse(int argc, char **argv, struct options *o) {
  static const struct option longs[] = {LOAD_LONG_OPTIONS,       {"size", 1, 0, 's'},
                                        {"tls", 0, 0, 'T'},      {"handshakes", 0, 0, 'K'},
                                        {"help", 0, 0, 'H'},     {0, 0, 0, 0}};
  *o = (struct options){.l = load_defaults(), .size = 1024};
  int c;
  char *end;
  while ((c = getopt_long(argc, argv, "", longs, NULL)) != -1) {
    switch (c) {
    case 's':
      o->size = strtoul(optarg, &end, 10);
      if (*end || !o->size || o->size > (64u << 20)) goto bad;
      break;
    case 'T': o->tls = true; break;
    case 'K': o->handshakes = true; break;
    case 'H': usage(stdout); exit(0);
    default:
      if (load_option(&o->l, c, optarg) <= 0) goto bad;
    }
  }
  if (optind == argc && o->l.port) return 0;
bad:
  usage(stderr);
  return 2;
}

/* The client side of TLS: 1.3 only, nothing verified, no session cache (so nothing to resume). */
static SSL_CTX *tls_context(void) {
  SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
  if (!ctx) return NULL;
  SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
  SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  /* SSL_write returns what went out, as send() does, and may be retried from further on. */
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  return ctx;
}

/* Blocking, for the echo's connections made before the clock starts. */
static int connect_one(const struct sockaddr *addr, socklen_t len) {
  int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || connect(fd, addr, len) < 0) {
    if (fd >= 0) close(fd);
    return -1;
  }
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  return fd;
}

static void interest(int ep, struct conn *c, bool out) {
  if (c->want_out == out) return;
  struct epoll_event ev = {.events = EPOLLIN | (out ? EPOLLOUT : 0), .data.ptr = c};
  epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
  c->want_out = out;
}

/* The first failure says why on stderr (the rest only count): a TLS setup that cannot work
 * should not look like a slow server. */
static void tell_why(struct run *R, const char *what) {
  if (R->told) return;
  R->told = true;
  unsigned long e = ERR_peek_error();
  char ssl[256] = "";
  if (e) ERR_error_string_n(e, ssl, sizeof ssl);
  fprintf(stderr, "aloop-load: %s: %s\n", what, e ? ssl : errno ? strerror(errno) : "closed");
}

static void fail(struct run *R, struct conn *c, const char *what) {
  tell_why(R, what);
  epoll_ctl(R->ep, EPOLL_CTL_DEL, c->fd, NULL);
  SSL_free(c->ssl);
  c->ssl = NULL;
  close(c->fd);
  c->dead = true;
  R->alive--;
  if (R->counting) R->r.errors++;
}

/* An SSL call's outcome as send()/recv() would give it: bytes, 0 at the end of stream, or -1
 * with errno (EAGAIN: try again when *out says which readiness). */
static ssize_t ssl_outcome(struct conn *c, int ok, size_t n, bool *out) {
  if (ok) return (ssize_t)n;
  switch (SSL_get_error(c->ssl, 0)) {
  case SSL_ERROR_WANT_WRITE: *out = true; errno = EAGAIN; return -1;
  case SSL_ERROR_WANT_READ: errno = EAGAIN; return -1;
  case SSL_ERROR_ZERO_RETURN: return 0;
  case SSL_ERROR_SYSCALL:
    if (!ERR_peek_error() && !errno) return 0; /* the socket's end without close_notify */
    return -1;
  default: errno = EPROTO; return -1;
  }
}

static ssize_t conn_send(struct conn *c, const unsigned char *p, size_t n, bool *out) {
  if (c->ssl) {
    size_t w = 0;
    ERR_clear_error();
    errno = 0;
    int ok = SSL_write_ex(c->ssl, p, n, &w); /* before w is read: argument order is free */
    return ssl_outcome(c, ok, w, out);
  }
  ssize_t k;
  while ((k = send(c->fd, p, n, MSG_NOSIGNAL)) < 0 && errno == EINTR) {}
  if (k < 0 && errno == EAGAIN) *out = true;
  return k;
}

static ssize_t conn_recv(struct conn *c, unsigned char *p, size_t n, bool *out) {
  if (c->ssl) {
    size_t got = 0;
    ERR_clear_error();
    errno = 0;
    int ok = SSL_read_ex(c->ssl, p, n, &got);
    return ssl_outcome(c, ok, got, out);
  }
  ssize_t k;
  while ((k = recv(c->fd, p, n, 0)) < 0 && errno == EINTR) {}
  return k;
}

/* Push what the socket takes of the current message. */
static bool pump_out(struct run *R, struct conn *c) {
  bool out = false;
  size_t size = R->o->size;
  while (c->sent < size) {
    ssize_t n = conn_send(c, R->msg + c->sent, size - c->sent, &out);
    if (n < 0 && errno == EAGAIN) break;
    if (n <= 0) return false;
    c->sent += (size_t)n;
  }
  interest(R->ep, c, c->sent < size && out);
  return true;
}

/* The connection is up (and through its handshake): the first message goes out. */
static bool start_echo(struct run *R, struct conn *c) {
  c->state = ECHOING;
  c->sent = c->got = 0;
  if (!R->o->handshakes) c->started = now_ns();
  return pump_out(R, c);
}

/* One step of the TLS handshake with what the socket has. */
static bool handshake_step(struct run *R, struct conn *c) {
  ERR_clear_error();
  errno = 0;
  int r = SSL_do_handshake(c->ssl);
  if (r == 1) return start_echo(R, c);
  switch (SSL_get_error(c->ssl, r)) {
  case SSL_ERROR_WANT_READ: interest(R->ep, c, false); return true;
  case SSL_ERROR_WANT_WRITE: interest(R->ep, c, true); return true;
  default: return false;
  }
}

/* The TCP connection is there: TLS starts, or the echo does. */
static bool connected(struct run *R, struct conn *c) {
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &(int){1}, sizeof(int));
  if (!R->tls) return start_echo(R, c);
  if (!(c->ssl = SSL_new(R->tls)) || !SSL_set_fd(c->ssl, c->fd)) return false;
  SSL_set_connect_state(c->ssl);
  c->state = HANDSHAKING;
  return handshake_step(R, c);
}

/* --handshakes: a new connection, not waited for (the loop hears when it is made). */
static bool dial(struct run *R, struct conn *c) {
  c->started = now_ns();
  ERR_clear_error(); /* what tell_why reads is this connection's */
  c->fd = socket(R->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (c->fd < 0) return false;
  c->state = CONNECTING;
  c->want_out = true;
  struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
  epoll_ctl(R->ep, EPOLL_CTL_ADD, c->fd, &ev);
  if (connect(c->fd, (const struct sockaddr *)&R->addr, R->addrlen) == 0) return connected(R, c);
  return errno == EINPROGRESS;
}

/* A non-blocking connect has an answer when the socket turns writable (or fails). */
static bool connect_done(struct run *R, struct conn *c, uint32_t events) {
  if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return true;
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err) {
    errno = err;
    return false;
  }
  return connected(R, c);
}

/* --handshakes, the echo checked: with TLS close_notify goes out and the server is left to close
 * first, so that TIME_WAIT stays on its side (the client's ports stay free for the next
 * connects); plain TCP has only its own end of stream to say so. */
static void start_close(struct run *R, struct conn *c) {
  if (c->ssl) {
    ERR_clear_error();
    SSL_shutdown(c->ssl); /* close_notify; the server's answer is read (and dropped) below */
    ERR_clear_error();
  } else {
    shutdown(c->fd, SHUT_WR);
  }
  c->state = CLOSING;
  interest(R->ep, c, false);
}

/* Whatever comes after our close is dropped until the server's end of stream; then again. A
 * server that keeps talking gets 64 reads per wakeup (epoll is level-triggered: it comes back). */
static bool closing(struct run *R, struct conn *c) {
  unsigned char sink[4096];
  for (int i = 0;; i++) {
    if (i == 64) return true;
    ssize_t n = recv(c->fd, sink, sizeof sink, 0);
    if (n > 0 || (n < 0 && errno == EINTR)) continue;
    if (n < 0 && errno == EAGAIN) return true;
    break; /* end of stream, or a reset: the connection is over either way */
  }
  SSL_free(c->ssl);
  c->ssl = NULL;
  close(c->fd); /* epoll forgets it with its last descriptor */
  return dial(R, c);
}

/* The echo's bytes as they come, each checked; a whole echo starts the next message (or, with
 * --handshakes, the close). */
static bool pump_in(struct run *R, struct conn *c) {
  size_t size = R->o->size;
  for (;;) {
    bool out = false;
    ssize_t got = conn_recv(c, R->back, size - c->got, &out);
    if (got < 0 && errno == EAGAIN) {
      if (out) interest(R->ep, c, true);
      return true;
    }
    if (got <= 0 || c->got + (size_t)got > c->sent ||
        memcmp(R->back, R->msg + c->got, (size_t)got) != 0) /* reset, early end, wrong bytes */
      return false;
    c->got += (size_t)got;
    if (c->got < size) continue;
    uint64_t done = now_ns();
    if (R->counting && done <= R->end) record(&R->r, done - c->started);
    if (R->o->handshakes) {
      start_close(R, c);
      return closing(R, c);
    }
    c->sent = c->got = 0;
    c->started = done;
    if (!pump_out(R, c)) return false;
  }
}

/* One readiness event for c; false: the connection failed (what: why, for tell_why). */
static bool on_event(struct run *R, struct conn *c, uint32_t events, const char **what) {
  switch (c->state) {
  case CONNECTING: *what = "connect"; return connect_done(R, c, events);
  case HANDSHAKING: *what = "TLS handshake"; return handshake_step(R, c);
  case CLOSING: *what = "reconnect"; return closing(R, c); /* only the next dial can fail */
  case ECHOING: break;
  }
  *what = "echo";
  if ((events & EPOLLOUT) && !pump_out(R, c)) return false;
  /* OpenSSL may have read records on a write, or need the socket writable to read on. */
  if (c->ssl || (events & (EPOLLIN | EPOLLERR | EPOLLHUP))) return pump_in(R, c);
  return true;
}

/* Every connection on its way: the echo's made now (blocking), --handshakes' dialled. */
static bool open_all(struct run *R, struct conn *conns) {
  const struct options *o = R->o;
  for (int i = 0; i < o->l.connections; i++) {
    struct conn *c = &conns[i];
    if (o->handshakes) {
      if (!dial(R, c)) fail(R, c, "connect");
      continue;
    }
    if ((c->fd = connect_one((const struct sockaddr *)&R->addr, R->addrlen)) < 0) {
      fprintf(stderr, "aloop-load: connect to %s:%d: %s\n", o->l.host, o->l.port, strerror(errno));
      return false;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    epoll_ctl(R->ep, EPOLL_CTL_ADD, c->fd, &ev);
    if (!connected(R, c)) fail(R, c, R->tls ? "TLS handshake" : "echo");
  }
  return true;
}

/* The figures: the common ones, and with --handshakes the same counts named for what they are. */
static void report(const struct run *R, const struct summary *s) {
  const struct options *o = R->o;
  bool json = o->l.json;
  if (json) printf("{\"tls\": %s, \"handshakes_mode\": %s, ", o->tls ? "true" : "false",
                   o->handshakes ? "true" : "false");
  print_summary(s, &R->r, json);
  if (o->handshakes && json)
    printf(", \"handshakes_per_s\": %.1f, \"handshakes\": %llu, "
           "\"server_cpu_us_per_handshake\": %.3f",
           s->rps, (unsigned long long)R->r.requests, s->cpu_us);
  else if (o->handshakes)
    printf("\n%.0f %s/s, server CPU %.2f us per %s", s->rps, o->tls ? "handshakes" : "connections",
           s->cpu_us, o->tls ? "handshake" : "connection");
  printf(json ? "}\n" : "\n");
}

int main(int argc, char **argv) {
  struct options o;
  if (parse(argc, argv, &o)) return 2;
  signal(SIGPIPE, SIG_IGN); /* OpenSSL's socket writes do not pass MSG_NOSIGNAL */
  char service[16];
  snprintf(service, sizeof service, "%d", o.l.port);
  struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai;
  int gai = getaddrinfo(o.l.host, service, &hints, &ai);
  if (gai) {
    fprintf(stderr, "aloop-load: %s: %s\n", o.l.host, gai_strerror(gai));
    return 1;
  }
  struct run R = {.o = &o, .ep = epoll_create1(EPOLL_CLOEXEC), .alive = o.l.connections,
                  .addrlen = ai->ai_addrlen};
  memcpy(&R.addr, ai->ai_addr, ai->ai_addrlen);
  freeaddrinfo(ai);
  if (o.tls && !(R.tls = tls_context())) {
    fprintf(stderr, "aloop-load: no TLS context: %s\n", ERR_error_string(ERR_get_error(), NULL));
    return 1;
  }
  R.msg = malloc(o.size), R.back = malloc(o.size);
  for (size_t i = 0; i < o.size; i++) R.msg[i] = (unsigned char)(i * 131 + 7);
  struct conn *conns = calloc((size_t)o.l.connections, sizeof *conns);

  if (!open_all(&R, conns)) return 1;
  uint64_t t0 = now_ns(), start = t0 + (uint64_t)(o.l.warmup * 1e9), cpu0 = 0;
  R.end = start + (uint64_t)(o.l.duration * 1e9);
  struct epoll_event events[MAX_EVENTS];
  for (uint64_t t = now_ns(); t < R.end && R.alive > 0; t = now_ns()) {
    if (!R.counting && t >= start) {
      R.counting = true;
      cpu0 = server_cpu_ns(o.l.pids, o.l.npids);
      R.r.requests = 0;
      R.r.nlat = 0;
    }
    int n = epoll_wait(R.ep, events, MAX_EVENTS, 100);
    for (int k = 0; k < n; k++) {
      struct conn *c = events[k].data.ptr;
      const char *what = "echo";
      if (!c->dead && !on_event(&R, c, events[k].events, &what)) fail(&R, c, what);
    }
  }
  double secs = (double)(now_ns() - (R.counting ? start : t0)) / 1e9;
  uint64_t cpu = R.counting && o.l.npids ? server_cpu_ns(o.l.pids, o.l.npids) - cpu0 : 0;
  struct summary sum = summarize(&R.r, secs, o.size, cpu, o.l.npids > 0);
  report(&R, &sum);
  for (int i = 0; i < o.l.connections; i++)
    if (!conns[i].dead) SSL_free(conns[i].ssl), close(conns[i].fd);
  close(R.ep);
  SSL_CTX_free(R.tls);
  free(conns), free(R.msg), free(R.back), free(R.r.lat);
  return R.r.errors || R.alive < o.l.connections || !R.r.requests ? 1 : 0; /* nothing counted: failed */
}
