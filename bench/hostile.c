/* aloop-hostile: clients that misbehave, run together against one server, to see whether it keeps
 * serving the one client that behaves. It uses none of aloop (plain epoll, non-blocking sockets),
 * so the server under test cannot share a bug with its attacker. It must never be pointed at
 * anything but a server of our own on loopback, and never runs longer than --seconds.
 *
 * Modes (any together, each a word on the command line, its figure after '='):
 *   storm[=RATE]      connect and reset (SO_LINGER 0, then close) RATE times a second
 *   slow[=N]          N clients each sending a request one byte per --trickle-ms
 *   nonreader[=N]     N clients sending requests without end and never reading
 *   garbage[=RATE]    RATE connections a second of malformed input: binary, invalid UTF-8,
 *                     oversized lines, huge URLs and headers, bad versions, half a request then
 *                     a close or a reset
 *   probe[=MS]        one well-behaved client, a request every MS ms (10): latency p50/p99/max,
 *                     failures and timeouts
 *   check             one well-behaved request; the exit status says whether it was answered
 * The protocol (--proto) decides what a request is: echo (64 bytes echoed), line (charfinder's
 * TCP line protocol) or http (charfinder's HTTP server).
 *
 * The probe runs in a process of its own when other modes run, so that their load on this
 * program's loop does not count as the server's latency.
 *
 * One line per mode at the end. The exit status is 0 unless the tool itself failed (2: usage,
 * 1: setup), --max-p99-ms was given and the probe's p99 is above it, or `check` got no answer. */
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "load_common.h"

enum {
  MAX_EVENTS = 512,
  TICK_MS = 1,                 /* the longest epoll wait: storm's rate is kept per millisecond */
  RECV_ROUNDS = 16,            /* recv calls per event at most: one flood cannot starve the rest */
  SCRATCH = 64 * 1024,         /* what one recv reads (and throws away, except the probe's) */
  FILLER = 1 << 20,            /* the largest garbage body: 1 MiB */
  CONNECT_TIMEOUT_MS = 3000,   /* a connect not done by then counts as timed out */
  GARBAGE_WAIT_MS = 2000,      /* how long garbage waits for the server to answer or close */
  RECONNECT_MS = 100,          /* slow and nonreader clients come back this long after a close */
  PROBE_ECHO_BYTES = 64,
  PROBE_BUF = 64 * 1024,       /* a probe answer larger than this is a failure */
  NONREADER_CHUNK = 64 * 1024, /* what a nonreader offers the socket per send */
};
#define NS_PER_MS 1000000ull

enum proto { PROTO_ECHO, PROTO_LINE, PROTO_HTTP };
static const char *const proto_names[] = {"echo", "line", "http"};

enum kind { K_STORM, K_SLOW, K_NONREADER, K_GARBAGE, K_PROBE, K_CHECK, NKINDS };
static const char *const kind_names[] = {"storm", "slow", "nonreader", "garbage", "probe", "check"};

/* How a garbage connection ends once its bytes are out (or at its cut point). */
enum ending { END_READ, END_SHUT, END_CLOSE, END_RESET };

struct piece {
  const char *p;
  size_t n;
};

struct conn {
  int fd;
  enum kind kind;
  bool connecting, waiting, dead;
  uint32_t events;           /* registered with epoll */
  uint64_t opened, deadline; /* deadline: connect, garbage's wait, or the probe's request */
  uint64_t next_at;          /* slow: the next byte */
  size_t pos;                /* slow: in the request; nonreader: in the chunk; garbage: sent */
  int slot;                  /* slow and nonreader: which client */
  /* garbage: up to three pieces (own text, a shared filler, own text), cut after `cut` bytes */
  struct piece out[3];
  char text[2][192];
  size_t total, cut;
  enum ending ending;
  int gkind;
  /* probe: the answer so far */
  char *resp;
  size_t got;
  uint64_t sent_at;
  struct conn *prev, *next; /* every live connection, for timeouts and the final close */
};

struct counts {
  uint64_t started, connected, done, refused, timeouts, errors, server_closed;
  uint64_t bytes_out, bytes_in, requests, reset_by_us, unanswered;
  uint64_t lifetime_ns_sum, lifetime_ns_max; /* slow: how long the server kept them */
};

struct options {
  const char *host;
  int port;
  enum proto proto;
  double seconds;
  bool on[NKINDS];
  double storm_rate, garbage_rate;
  int slow_n, nonreader_n, probe_ms;
  int storm_inflight, garbage_inflight, trickle_ms;
  double probe_timeout, max_p99_ms;
  bool probe_fresh;
  uint64_t seed;
};

/* ---- state ----------------------------------------------------------------------------------------- */

static struct options opt;
static int ep = -1;
static struct sockaddr_storage addr;
static socklen_t addr_len;
static struct conn *live;      /* list head */
static struct conn *graveyard; /* closed in this batch of events, freed after it */
static struct counts cnt[NKINDS];
static int inflight[NKINDS];
static uint64_t rng_state;
static char scratch[SCRATCH];
static char *filler_a, *filler_bin, *filler_hdr, *filler_lines;

/* slow and nonreader clients by slot; reconnect_at when the slot is empty */
struct slot {
  struct conn *c;
  uint64_t reconnect_at;
};
static struct slot *slow_slots, *nonreader_slots;

/* probe */
static struct conn *probe_conn;
static uint64_t probe_next_at;
static struct results probe_lat;
static uint64_t probe_failures, probe_timeouts, probe_max_ns;
static bool check_answered;

/* garbage kinds, counted by name */
enum { MAX_GKINDS = 24 };
static uint64_t gkind_count[MAX_GKINDS];

static uint64_t rnd(void) { /* xorshift64*: reproducible from --seed */
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return rng_state * 2685821657736338717ull;
}

static size_t rnd_between(size_t lo, size_t hi) { return lo + (size_t)(rnd() % (hi - lo + 1)); }

/* ---- connections ----------------------------------------------------------------------------------- */

static void watch(struct conn *c, uint32_t events) {
  if (c->events == events) return;
  struct epoll_event ev = {.events = events, .data.ptr = c};
  epoll_ctl(ep, c->events ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, c->fd, &ev);
  c->events = events;
}

/* Close now; the memory waits for the end of the event batch, which may still name it. */
static void drop(struct conn *c, bool reset) {
  if (c->dead) return;
  if (reset) /* linger 0: close sends a reset instead of a FIN */
    setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &(struct linger){1, 0}, sizeof(struct linger));
  close(c->fd); /* also leaves the epoll set: the fd is ours alone */
  c->dead = true;
  inflight[c->kind]--;
  if (c->prev) c->prev->next = c->next;
  else live = c->next;
  if (c->next) c->next->prev = c->prev;
  c->next = graveyard;
  graveyard = c;
}

static void bury(void) {
  while (graveyard) {
    struct conn *c = graveyard;
    graveyard = c->next;
    free(c->resp);
    free(c);
  }
}

static void count_connect_error(enum kind k, int err) {
  if (err == ECONNREFUSED) cnt[k].refused++;
  else if (err == ETIMEDOUT) cnt[k].timeouts++;
  else cnt[k].errors++;
}

static void on_connected(struct conn *c, uint64_t now);
static void release_slot(struct conn *c, uint64_t now);
static void probe_failed(struct conn *c, uint64_t now);

/* A non-blocking connect; NULL (counted) if it failed at once. */
static struct conn *open_conn(enum kind k, int slot, uint64_t now) {
  cnt[k].started++;
  int fd = socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    cnt[k].errors++; /* out of fds here: our own limit, not the server's doing */
    return NULL;
  }
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){1}, sizeof(int));
  int rc = connect(fd, (struct sockaddr *)&addr, addr_len);
  if (rc < 0 && errno != EINPROGRESS) {
    count_connect_error(k, errno);
    close(fd);
    return NULL;
  }
  struct conn *c = calloc(1, sizeof *c);
  if (!c) {
    close(fd);
    cnt[k].errors++;
    return NULL;
  }
  *c = (struct conn){.fd = fd, .kind = k, .connecting = true, .opened = now,
                     .deadline = now + CONNECT_TIMEOUT_MS * NS_PER_MS, .slot = slot};
  c->next = live;
  if (live) live->prev = c;
  live = c;
  inflight[k]++;
  if (slot >= 0) (k == K_SLOW ? slow_slots : nonreader_slots)[slot].c = c;
  if (k == K_PROBE || k == K_CHECK) { /* before on_connected, which may send at once */
    if (!(c->resp = malloc(PROBE_BUF))) {
      fprintf(stderr, "aloop-hostile: out of memory\n");
      exit(1);
    }
    c->sent_at = now; /* a slow connect counts as a slow answer too */
    c->deadline = now + (uint64_t)(opt.probe_timeout * 1e9);
    probe_conn = c;
  }
  if (rc == 0) on_connected(c, now);
  else watch(c, EPOLLOUT);
  return c;
}

/* Where a connect went, once epoll says the socket is writable or failed. */
static void finish_connect(struct conn *c, uint64_t now) {
  int err = 0;
  socklen_t len = sizeof err;
  getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
  if (err) {
    count_connect_error(c->kind, err);
    if (c->kind == K_PROBE || c->kind == K_CHECK) {
      probe_failed(c, now);
      return;
    }
    release_slot(c, now);
    drop(c, false);
    return;
  }
  on_connected(c, now);
}

/* Send what the socket takes; false if the server is gone. */
static bool send_some(struct conn *c, const char *p, size_t n, size_t *sent) {
  *sent = 0;
  while (*sent < n) {
    ssize_t w = send(c->fd, p + *sent, n - *sent, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && errno == EAGAIN) return true;
    if (w <= 0) return false;
    *sent += (size_t)w;
    cnt[c->kind].bytes_out += (size_t)w;
  }
  return true;
}

/* Read and throw away; false at end of stream or an error. */
static bool drain_in(struct conn *c) {
  for (int i = 0; i < RECV_ROUNDS; i++) {
    ssize_t n = recv(c->fd, scratch, sizeof scratch, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return true;
    if (n <= 0) return false;
    cnt[c->kind].bytes_in += (size_t)n;
  }
  return true;
}

/* ---- storm: connect, then reset ------------------------------------------------------------------- */

static uint64_t storm_t0;

static void storm_connected(struct conn *c) {
  cnt[K_STORM].connected++;
  cnt[K_STORM].done++;
  drop(c, true);
}

/* How many connections of a rate-driven mode are due by now. A client that falls a second behind
 * (the machine was busy) forgets that backlog rather than bursting to catch up: t0 moves. */
static double due_by(uint64_t now, uint64_t *t0, double rate, uint64_t started) {
  double due = rate * (double)(now - *t0) / 1e9;
  if (due - (double)started <= rate) return due;
  *t0 = now - (uint64_t)((double)started / rate * 1e9);
  return (double)started;
}

/* Keep the asked rate, within the in-flight cap. */
static void storm_tick(uint64_t now) {
  double due = due_by(now, &storm_t0, opt.storm_rate, cnt[K_STORM].started);
  while ((double)cnt[K_STORM].started < due && inflight[K_STORM] < opt.storm_inflight)
    open_conn(K_STORM, -1, now);
}

/* ---- slow: one byte at a time --------------------------------------------------------------------- */

static const char *slow_request(size_t *n) {
  static const char *const req[] = {
      [PROTO_ECHO] = "a slow line, one byte a second\n",
      [PROTO_LINE] = "chess black king\n",
      [PROTO_HTTP] =
          "GET /?query=cat+face HTTP/1.1\r\nHost: slow.example\r\nUser-Agent: hostile\r\n\r\n",
  };
  *n = strlen(req[opt.proto]);
  return req[opt.proto];
}

static void slow_connected(struct conn *c, uint64_t now) {
  cnt[K_SLOW].connected++;
  /* Spread the first bytes over one interval so the clients do not move in step. */
  c->next_at = now + rnd_between(0, (size_t)opt.trickle_ms) * NS_PER_MS;
  watch(c, EPOLLIN);
}

/* The server closed a client (or it failed): note how long it lasted; the slot reconnects soon. */
static void release_slot(struct conn *c, uint64_t now) {
  if (c->slot < 0) return;
  struct slot *slots = c->kind == K_SLOW ? slow_slots : nonreader_slots;
  slots[c->slot] = (struct slot){NULL, now + RECONNECT_MS * NS_PER_MS};
}

static void slot_lost(struct conn *c, uint64_t now, bool by_server) {
  struct counts *k = &cnt[c->kind];
  if (by_server) {
    k->server_closed++;
    uint64_t life = now - c->opened;
    k->lifetime_ns_sum += life;
    if (life > k->lifetime_ns_max) k->lifetime_ns_max = life;
  }
  release_slot(c, now);
  drop(c, !by_server);
}

static void slow_tick(uint64_t now) {
  size_t len;
  const char *req = slow_request(&len);
  for (int i = 0; i < opt.slow_n; i++) {
    struct slot *s = &slow_slots[i];
    if (!s->c) { /* open_conn puts a connection in the slot; a failed one leaves it empty */
      if (now >= s->reconnect_at) {
        s->reconnect_at = now + RECONNECT_MS * NS_PER_MS;
        open_conn(K_SLOW, i, now);
      }
      continue;
    }
    struct conn *c = s->c;
    if (c->connecting || now < c->next_at) continue;
    size_t sent;
    if (!send_some(c, req + c->pos, 1, &sent)) {
      slot_lost(c, now, true);
      continue;
    }
    c->pos = (c->pos + sent) % len;
    if (sent && c->pos == 0) cnt[K_SLOW].requests++;
    c->next_at += (uint64_t)opt.trickle_ms * NS_PER_MS;
  }
}

/* ---- nonreader: send, never read ------------------------------------------------------------------ */

static char nonreader_chunk[NONREADER_CHUNK];
static size_t nonreader_len; /* whole requests only: the chunk is sent round and round */

static void nonreader_fill(void) {
  static const char *const unit[] = {
      [PROTO_ECHO] = NULL, /* random bytes */
      [PROTO_LINE] = "chess black\n",
      [PROTO_HTTP] = "GET /?query=chess+black HTTP/1.1\r\nHost: nonreader.example\r\n\r\n",
  };
  const char *u = unit[opt.proto];
  size_t ulen = u ? strlen(u) : 0;
  for (size_t i = 0; i < sizeof nonreader_chunk; i++)
    nonreader_chunk[i] = u ? u[i % ulen] : (char)rnd();
  nonreader_len = u ? sizeof nonreader_chunk / ulen * ulen : sizeof nonreader_chunk;
}

static void nonreader_push(struct conn *c, uint64_t now) {
  size_t len = nonreader_len;
  for (int round = 0; round < RECV_ROUNDS; round++) {
    size_t sent;
    if (!send_some(c, nonreader_chunk + c->pos, len - c->pos, &sent)) {
      slot_lost(c, now, true);
      return;
    }
    c->pos = (c->pos + sent) % len;
    if (c->pos != 0 || sent == 0) return; /* the socket is full: wait for EPOLLOUT */
  }
}

static void nonreader_tick(uint64_t now) {
  for (int i = 0; i < opt.nonreader_n; i++) {
    struct slot *s = &nonreader_slots[i];
    if (!s->c && now >= s->reconnect_at) {
      s->reconnect_at = now + RECONNECT_MS * NS_PER_MS;
      open_conn(K_NONREADER, i, now);
    }
  }
}

/* ---- garbage -------------------------------------------------------------------------------------- */

/* One malformed input: how it is made (into c->out and c->text) and how the connection ends. */
struct gkind {
  const char *name;
  void (*make)(struct conn *c);
};

static void piece_text(struct conn *c, int i, int t, const char *s) {
  snprintf(c->text[t], sizeof c->text[t], "%s", s);
  c->out[i] = (struct piece){c->text[t], strlen(c->text[t])};
}

static void piece_bytes(struct conn *c, int i, int t, const char *p, size_t n) {
  memcpy(c->text[t], p, n < sizeof c->text[t] ? n : sizeof c->text[t]);
  c->out[i] = (struct piece){c->text[t], n < sizeof c->text[t] ? n : sizeof c->text[t]};
}

static void piece_filler(struct conn *c, int i, const char *filler, size_t n) {
  c->out[i] = (struct piece){filler, n};
}

static void g_binary(struct conn *c) {
  piece_filler(c, 0, filler_bin + rnd_between(0, 1024), rnd_between(1, 8192));
  c->ending = (enum ending)rnd_between(END_READ, END_RESET);
}

static void g_bad_utf8(struct conn *c) {
  static const char *const lines[] = {
      "cat \xc3\x28 face\n", "\xff\xfe\xfd\n", "chess \xc0\xaf black\n", "\xed\xa0\x80 king\n",
      "GET /?query=\xc3\x28 HTTP/1.1\r\nHost: x\r\n\r\n", "GET /?query=%C3%28%FF HTTP/1.1\r\n\r\n",
      "GET /?query=%zz%4 HTTP/1.1\r\nHost: x\r\n\r\n"};
  size_t i = rnd_between(0, sizeof lines / sizeof lines[0]);
  if (i < sizeof lines / sizeof lines[0]) piece_text(c, 0, 0, lines[i]);
  else piece_bytes(c, 0, 0, "cat\0face\n", 9); /* a NUL inside */
  c->ending = END_READ;
}

static void g_control(struct conn *c) {
  static const char *const lines[] = {"\x03\r\n", "  \x01 cat\n", "\xff\xf4\xff\xfd\x06\r\n",
                                      "\x1b[2J\x1b[H\n", "\r\r\r\r\n"};
  piece_text(c, 0, 0, lines[rnd_between(0, sizeof lines / sizeof lines[0] - 1)]);
  c->ending = END_READ;
}

/* A line over every limit (64 KiB for the line protocol), with or without its newline. */
static void g_long_line(struct conn *c) {
  piece_filler(c, 0, filler_a, rnd_between(60 * 1024, FILLER));
  piece_text(c, 1, 0, rnd() % 2 ? "\n" : "");
  c->ending = c->out[1].n ? END_READ : (enum ending)rnd_between(END_SHUT, END_RESET);
}

static void g_many_lines(struct conn *c) {
  piece_filler(c, 0, filler_lines, 5 * rnd_between(100, 4000)); /* "zzzq\n" each */
  c->ending = rnd() % 2 ? END_SHUT : END_READ;
}

static void g_huge_url(struct conn *c) {
  piece_text(c, 0, 0, "GET /?query=");
  piece_filler(c, 1, filler_a, rnd_between(8 * 1024 - 64, FILLER));
  piece_text(c, 2, 1, " HTTP/1.1\r\nHost: huge.example\r\n\r\n");
  c->ending = END_READ;
}

static void g_huge_header(struct conn *c) {
  piece_text(c, 0, 0, "GET /?query=cat HTTP/1.1\r\nHost: x\r\nX-Big: ");
  piece_filler(c, 1, filler_a, rnd_between(16 * 1024 - 64, 256 * 1024));
  piece_text(c, 2, 1, "\r\n\r\n");
  c->ending = END_READ;
}

static void g_many_headers(struct conn *c) {
  piece_text(c, 0, 0, "GET /?query=cat HTTP/1.1\r\nHost: x\r\n");
  piece_filler(c, 1, filler_hdr, 8 * rnd_between(100, 8000)); /* "X-h: v\r\n" each */
  piece_text(c, 2, 1, "\r\n");
  c->ending = END_READ;
}

static void g_bad_request_line(struct conn *c) {
  static const char *const heads[] = {
      "GET / HTTP/9.9\r\nHost: x\r\n\r\n", "GET / HTTP/1.1x\r\n\r\n", "GET /\r\n\r\n",
      "GET / HTTP/1\r\n\r\n", "\x01\x02\x03 / HTTP/1.1\r\n\r\n", "BREW /pot HTTP/1.1\r\n\r\n",
      "GET http://[::1 HTTP/1.1\r\n\r\n", "GET  /  HTTP/1.1\r\n\r\n", "get / http/1.1\r\n\r\n",
      "GET / HTTP/1.1\n\n", "GET / HTTP/1.1\rHost: x\r\r", "GET ../../etc/passwd HTTP/1.1\r\n\r\n",
      "GET /?query=cat HTTP/1.0\r\n\r\n\x00\x01\x02junk"};
  piece_text(c, 0, 0, heads[rnd_between(0, sizeof heads / sizeof heads[0] - 1)]);
  c->ending = END_READ;
}

static void g_bad_headers(struct conn *c) {
  static const char *const heads[] = {
      "GET / HTTP/1.1\r\nNoColonHere\r\n\r\n",
      "GET / HTTP/1.1\r\n Host: folded\r\n\r\n",
      "POST /api/search HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
      "POST /api/search HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n",
      "POST /api/search HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n",
      "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
      "GET / HTTP/1.1\r\nHost : x\r\n\r\n",
      "GET / HTTP/1.1\r\nConnection: upgrade\r\nUpgrade: h2c\r\n\r\n",
      "POST /api/search HTTP/1.1\r\nContent-Length: 100000\r\n\r\nshort body then nothing"};
  piece_text(c, 0, 0, heads[rnd_between(0, sizeof heads / sizeof heads[0] - 1)]);
  c->ending = END_READ;
}

/* A good request cut short, then a close or a reset. */
static void g_half(struct conn *c) {
  static const char *const reqs[] = {
      [PROTO_ECHO] = "half of a line that never ends",
      [PROTO_LINE] = "chess black ki",
      [PROTO_HTTP] = "GET /?query=chess+black HTTP/1.1\r\nHost: ha"};
  piece_text(c, 0, 0, reqs[opt.proto]);
  c->ending = rnd() % 2 ? END_CLOSE : END_RESET;
}

/* A large body that the server is still taking in when we reset. */
static void g_reset_mid(struct conn *c) {
  if (opt.proto == PROTO_HTTP) {
    piece_text(c, 0, 0, "POST /api/search HTTP/1.1\r\nContent-Length: 1000000\r\n\r\n");
    piece_filler(c, 1, filler_a, 1000000);
  } else {
    piece_filler(c, 0, opt.proto == PROTO_ECHO ? filler_bin : filler_lines, FILLER);
  }
  c->ending = END_RESET;
  c->cut = 0; /* set by the caller: somewhere in the middle */
}

static const struct gkind gkinds_echo[] = {
    {"binary", g_binary}, {"bad-utf8", g_bad_utf8}, {"long-line", g_long_line},
    {"half", g_half}, {"reset-mid", g_reset_mid}};
static const struct gkind gkinds_line[] = {
    {"binary", g_binary}, {"bad-utf8", g_bad_utf8}, {"control", g_control},
    {"long-line", g_long_line}, {"many-lines", g_many_lines}, {"half", g_half},
    {"reset-mid", g_reset_mid}};
static const struct gkind gkinds_http[] = {
    {"binary", g_binary}, {"bad-utf8", g_bad_utf8}, {"huge-url", g_huge_url},
    {"huge-header", g_huge_header}, {"many-headers", g_many_headers},
    {"bad-request-line", g_bad_request_line}, {"bad-headers", g_bad_headers}, {"half", g_half},
    {"reset-mid", g_reset_mid}};

static const struct gkind *gkinds(size_t *n) {
  switch (opt.proto) {
    case PROTO_ECHO: *n = sizeof gkinds_echo / sizeof *gkinds_echo; return gkinds_echo;
    case PROTO_LINE: *n = sizeof gkinds_line / sizeof *gkinds_line; return gkinds_line;
    default: *n = sizeof gkinds_http / sizeof *gkinds_http; return gkinds_http;
  }
}

static void garbage_make(struct conn *c) {
  size_t n;
  const struct gkind *g = gkinds(&n);
  c->gkind = (int)rnd_between(0, n - 1);
  gkind_count[c->gkind]++;
  g[c->gkind].make(c);
  c->total = c->out[0].n + c->out[1].n + c->out[2].n;
  if (c->ending == END_RESET && g[c->gkind].make == g_reset_mid)
    c->cut = rnd_between(1, c->total - 1);
  else if (c->ending == END_CLOSE || c->ending == END_RESET) c->cut = rnd_between(1, c->total);
  else c->cut = c->total;
}

/* Push the pieces up to the cut; then end as the kind says. */
static void garbage_push(struct conn *c, uint64_t now) {
  while (c->pos < c->cut) {
    size_t at = c->pos, i = 0;
    while (at >= c->out[i].n) at -= c->out[i++].n;
    size_t n = c->out[i].n - at;
    if (n > c->cut - c->pos) n = c->cut - c->pos;
    size_t sent;
    if (!send_some(c, c->out[i].p + at, n, &sent)) { /* the server gave up on us first */
      cnt[K_GARBAGE].server_closed++;
      cnt[K_GARBAGE].done++;
      drop(c, false);
      return;
    }
    c->pos += sent;
    if (sent < n) {
      watch(c, EPOLLIN | EPOLLOUT);
      return;
    }
  }
  switch (c->ending) {
    case END_CLOSE: cnt[K_GARBAGE].done++; drop(c, false); return;
    case END_RESET: cnt[K_GARBAGE].done++; cnt[K_GARBAGE].reset_by_us++; drop(c, true); return;
    case END_SHUT: shutdown(c->fd, SHUT_WR); break;
    case END_READ: break;
  }
  c->waiting = true;
  c->deadline = now + GARBAGE_WAIT_MS * NS_PER_MS;
  watch(c, EPOLLIN);
}

static void garbage_readable(struct conn *c) {
  if (drain_in(c)) return;
  cnt[K_GARBAGE].server_closed++;
  cnt[K_GARBAGE].done++;
  drop(c, false);
}

static uint64_t garbage_t0;

static void garbage_tick(uint64_t now) {
  double due = due_by(now, &garbage_t0, opt.garbage_rate, cnt[K_GARBAGE].started);
  while ((double)cnt[K_GARBAGE].started < due && inflight[K_GARBAGE] < opt.garbage_inflight)
    open_conn(K_GARBAGE, -1, now);
}

/* ---- probe and check: the client that behaves ----------------------------------------------------- */

static const char probe_line[] = "chess black king\n";
static const char probe_line_end[] = "4 matches for 'chess black king'\r\n?> ";
static const char probe_http[] =
    "GET /api/search?query=chess+black+king HTTP/1.1\r\nHost: probe.example\r\n\r\n";

/* The next request; an echo's differs each time (kept in c->text[0]), so a stale answer shows. */
static void probe_request(struct conn *c, const char **p, size_t *n) {
  if (opt.proto == PROTO_ECHO) {
    for (size_t i = 0; i < PROBE_ECHO_BYTES; i++)
      c->text[0][i] = (char)('a' + (cnt[c->kind].requests + i) % 26);
    *p = c->text[0], *n = PROBE_ECHO_BYTES;
  } else if (opt.proto == PROTO_LINE) {
    *p = probe_line, *n = sizeof probe_line - 1;
  } else {
    *p = probe_http, *n = sizeof probe_http - 1;
  }
}

/* 1: the whole answer is in, and right; 0: not yet; -1: wrong. */
static int probe_complete(struct conn *c) {
  if (opt.proto == PROTO_ECHO) {
    if (c->got < PROBE_ECHO_BYTES) return 0;
    return c->got == PROBE_ECHO_BYTES && !memcmp(c->resp, c->text[0], PROBE_ECHO_BYTES) ? 1 : -1;
  }
  c->resp[c->got] = 0;
  if (opt.proto == PROTO_LINE) {
    if (memchr(c->resp, 0, c->got)) return -1;
    return strstr(c->resp, probe_line_end) ? 1 : 0;
  }
  const char *end = strstr(c->resp, "\r\n\r\n");
  if (!end) return 0;
  if (strncmp(c->resp, "HTTP/1.1 200 ", 13)) return -1;
  const char *cl = strcasestr(c->resp, "\r\nContent-Length:");
  if (!cl || cl > end) return -1;
  size_t body = strtoul(cl + 17, NULL, 10), have = c->got - (size_t)(end + 4 - c->resp);
  return have < body ? 0 : have == body ? 1 : -1;
}

static void probe_failed(struct conn *c, uint64_t now) {
  probe_failures++;
  probe_next_at = now + (uint64_t)opt.probe_ms * NS_PER_MS;
  drop(c, false);
  probe_conn = NULL;
}

static void probe_send(struct conn *c, uint64_t now) {
  const char *p;
  size_t n, sent;
  probe_request(c, &p, &n);
  c->got = 0;
  c->sent_at = c->sent_at ? c->sent_at : now; /* a fresh connection's clock began at connect */
  if (!send_some(c, p, n, &sent) || sent < n) { /* a tiny request that does not fit: broken */
    probe_failed(c, now);
    return;
  }
  cnt[c->kind].requests++;
  c->waiting = true;
  c->deadline = c->sent_at + (uint64_t)(opt.probe_timeout * 1e9);
}

static void probe_answered(struct conn *c, uint64_t now) {
  uint64_t lat = now - c->sent_at;
  record(&probe_lat, lat);
  if (lat > probe_max_ns) probe_max_ns = lat;
  cnt[c->kind].done++;
  c->waiting = false;
  c->sent_at = 0;
  if (c->kind == K_CHECK) check_answered = true;
  uint64_t next = probe_next_at + (uint64_t)opt.probe_ms * NS_PER_MS;
  probe_next_at = next > now ? next : now;
  if (opt.probe_fresh || c->kind == K_CHECK) {
    drop(c, false);
    probe_conn = NULL;
  }
}

static void probe_readable(struct conn *c, uint64_t now) {
  for (int i = 0; i < RECV_ROUNDS; i++) {
    if (c->got + 1 >= PROBE_BUF) { /* far larger than any right answer */
      probe_failed(c, now);
      return;
    }
    ssize_t n = recv(c->fd, c->resp + c->got, PROBE_BUF - 1 - c->got, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return;
    if (n <= 0) { /* closed or reset under us */
      probe_failed(c, now);
      return;
    }
    cnt[c->kind].bytes_in += (size_t)n;
    if (!c->waiting) { /* the line protocol's first prompt arrives before any request */
      if (opt.proto == PROTO_LINE) { c->got += (size_t)n; continue; }
      probe_failed(c, now); /* anything else unasked is wrong */
      return;
    }
    c->got += (size_t)n;
    int done = probe_complete(c);
    if (done < 0) {
      probe_failed(c, now);
      return;
    }
    if (done) {
      probe_answered(c, now);
      return;
    }
  }
}

static void probe_tick(uint64_t now, enum kind k) {
  if (!probe_conn) {
    if (now < probe_next_at) return;
    if (!open_conn(k, -1, now)) { /* else it is probe_conn now */
      probe_failures++;
      probe_next_at = now + (uint64_t)opt.probe_ms * NS_PER_MS;
    }
    return;
  }
  struct conn *c = probe_conn;
  if (!c->connecting && !c->waiting && now >= probe_next_at) probe_send(c, now);
}

/* ---- dispatch ------------------------------------------------------------------------------------- */

static void on_connected(struct conn *c, uint64_t now) {
  c->connecting = false;
  switch (c->kind) {
    case K_STORM: storm_connected(c); break;
    case K_SLOW: slow_connected(c, now); break;
    case K_NONREADER:
      cnt[K_NONREADER].connected++;
      watch(c, EPOLLOUT); /* never EPOLLIN: a close shows as a failed send */
      nonreader_push(c, now);
      break;
    case K_GARBAGE:
      cnt[K_GARBAGE].connected++;
      garbage_make(c);
      garbage_push(c, now);
      break;
    case K_PROBE:
    case K_CHECK:
      cnt[c->kind].connected++;
      watch(c, EPOLLIN);
      probe_send(c, now); /* at once: the time since the connect began counts */
      break;
    case NKINDS: break;
  }
}

static void on_event(struct conn *c, uint32_t ev, uint64_t now) {
  if (c->dead) return;
  if (c->connecting) {
    if (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)) finish_connect(c, now);
    return;
  }
  switch (c->kind) {
    case K_SLOW:
      if (!drain_in(c)) slot_lost(c, now, true);
      break;
    case K_NONREADER: nonreader_push(c, now); break;
    case K_GARBAGE:
      if (ev & EPOLLOUT && !c->waiting) garbage_push(c, now);
      if (!c->dead && ev & (EPOLLIN | EPOLLERR | EPOLLHUP)) garbage_readable(c);
      break;
    case K_PROBE:
    case K_CHECK: probe_readable(c, now); break;
    default: break;
  }
}

/* Connects that hang, garbage the server neither answers nor closes, probes past their time. */
static void expire(uint64_t now) {
  for (struct conn *c = live, *next; c; c = next) {
    next = c->next;
    if (c->dead || now < c->deadline) continue;
    bool probe = c->kind == K_PROBE || c->kind == K_CHECK;
    if (probe && (c->connecting || c->waiting)) {
      uint64_t lat = now - c->sent_at;
      probe_timeouts++;
      record(&probe_lat, lat); /* a timeout is a (very) slow answer in the percentiles */
      if (lat > probe_max_ns) probe_max_ns = lat;
      probe_next_at = now;
      probe_conn = NULL;
      drop(c, false);
    } else if (c->connecting) {
      cnt[c->kind].timeouts++;
      release_slot(c, now);
      drop(c, false);
    } else if (c->kind == K_GARBAGE && c->waiting) {
      cnt[K_GARBAGE].unanswered++; /* we gave up waiting: the server neither answered nor closed */
      cnt[K_GARBAGE].done++;
      drop(c, false);
    }
  }
}

static void tick(uint64_t now) {
  if (opt.on[K_STORM]) storm_tick(now);
  if (opt.on[K_SLOW]) slow_tick(now);
  if (opt.on[K_NONREADER]) nonreader_tick(now);
  if (opt.on[K_GARBAGE]) garbage_tick(now);
  if (opt.on[K_PROBE]) probe_tick(now, K_PROBE);
  if (opt.on[K_CHECK]) probe_tick(now, K_CHECK);
}

/* ---- the summary ---------------------------------------------------------------------------------- */

static void print_storm(double secs) {
  const struct counts *k = &cnt[K_STORM];
  printf("storm: %llu connects in %.1f s (%.0f/s, %.0f/s asked), %llu reset once connected, "
         "%llu refused, %llu timed out connecting, %llu other errors\n",
         (unsigned long long)k->started, secs, (double)k->started / secs, opt.storm_rate,
         (unsigned long long)k->done, (unsigned long long)k->refused,
         (unsigned long long)k->timeouts, (unsigned long long)k->errors);
}

static void print_slow(void) {
  const struct counts *k = &cnt[K_SLOW];
  printf("slow: %d clients, %llu connects, %llu bytes trickled (1 per %d ms), %llu requests sent "
         "whole, %llu closed by the server (longest-lived %.1f s), %llu connect failures\n",
         opt.slow_n, (unsigned long long)k->connected, (unsigned long long)k->bytes_out,
         opt.trickle_ms, (unsigned long long)k->requests, (unsigned long long)k->server_closed,
         (double)k->lifetime_ns_max / 1e9,
         (unsigned long long)(k->refused + k->timeouts + k->errors));
}

static void print_nonreader(void) {
  const struct counts *k = &cnt[K_NONREADER];
  printf("nonreader: %d clients, %llu connects, %.1f MiB sent and never read back, %llu closed by "
         "the server, %llu connect failures\n",
         opt.nonreader_n, (unsigned long long)k->connected, (double)k->bytes_out / (1 << 20),
         (unsigned long long)k->server_closed,
         (unsigned long long)(k->refused + k->timeouts + k->errors));
}

static void print_garbage(void) {
  const struct counts *k = &cnt[K_GARBAGE];
  size_t n;
  const struct gkind *g = gkinds(&n);
  printf("garbage: %llu connections (", (unsigned long long)k->started);
  for (size_t i = 0; i < n; i++)
    printf("%s%s %llu", i ? ", " : "", g[i].name, (unsigned long long)gkind_count[i]);
  printf("), %.1f MiB sent, %.1f MiB answered, %llu closed by the server, %llu reset by us, "
         "%llu left unanswered for %d ms, %llu connect failures\n",
         (double)k->bytes_out / (1 << 20), (double)k->bytes_in / (1 << 20),
         (unsigned long long)k->server_closed, (unsigned long long)k->reset_by_us,
         (unsigned long long)k->unanswered, GARBAGE_WAIT_MS,
         (unsigned long long)(k->refused + k->timeouts + k->errors));
}

/* The probe's line and its verdict; true if the verdict holds against --max-p99-ms. */
static bool print_probe(enum kind k, double secs) {
  struct summary s = summarize(&probe_lat, secs, 0, 0, false);
  double p99_ms = s.pct[2] / 1e3;
  bool have = probe_lat.nlat > 0;
  bool over = opt.max_p99_ms > 0 && (!have || p99_ms > opt.max_p99_ms);
  const char *verdict = k == K_CHECK ? (check_answered ? "answered" : "NOT answered")
                        : over       ? "p99 above the limit"
                        : probe_failures || probe_timeouts ? "served, with failures"
                        : have       ? "ok"
                                     : "no answer";
  printf("%s: %llu answered, %llu asked, latency p50 %.2f ms, p99 %.2f ms, max %.2f ms, "
         "%llu failures, %llu timeouts (%.3g s): %s",
         kind_names[k], (unsigned long long)cnt[k].done, (unsigned long long)cnt[k].requests,
         s.pct[0] / 1e3, p99_ms, (double)probe_max_ns / 1e6, (unsigned long long)probe_failures,
         (unsigned long long)probe_timeouts, opt.probe_timeout, verdict);
  if (opt.max_p99_ms > 0 && k == K_PROBE) printf(" (limit %.3g ms)", opt.max_p99_ms);
  printf("\n");
  return k == K_CHECK ? check_answered : !over;
}

/* ---- the command line ----------------------------------------------------------------------------- */

static void usage(FILE *out) {
  fprintf(out,
          "usage: aloop-hostile --port P [--host H] [--proto echo|line|http] [--seconds S]\n"
          "                     [--seed N] [--max-p99-ms MS] [--storm-inflight N]\n"
          "                     [--garbage-inflight N] [--trickle-ms MS] [--probe-timeout S]\n"
          "                     [--probe-fresh] MODE...\n"
          "  MODE: storm[=RATE]     connect and reset RATE times a second (default 1000)\n"
          "        slow[=N]         N clients sending a request a byte per --trickle-ms (10)\n"
          "        nonreader[=N]    N clients sending without end, never reading (default 10)\n"
          "        garbage[=RATE]   RATE connections a second of malformed input (default 50)\n"
          "        probe[=MS]       one good client, a request every MS ms (default 10): latency\n"
          "        check            one good request; exit 1 unless answered within --seconds\n"
          "  --proto           echo (default), line (charfinder TCP) or http (charfinder HTTP)\n"
          "  --seconds         how long everything runs (default 10; at most 3600)\n"
          "  --max-p99-ms      exit 1 if the probe's p99 latency is above MS\n"
          "  --probe-fresh     a new connection per probe request (latency from the connect)\n"
          "  --probe-timeout   seconds a probe request may take before it counts as timed out (5)\n"
          "  --trickle-ms      the slow clients' interval between bytes (default 1000)\n"
          "  --storm-inflight  storm connects in flight at most (default 1000)\n"
          "  --garbage-inflight  garbage connections open at most (default 100)\n"
          "One line per mode at the end. Exit status: 0; 2 bad usage; 1 when setting up failed,\n"
          "the probe's p99 is above --max-p99-ms, or `check` was not answered.\n");
}

static bool parse_num(const char *s, double lo, double hi, double *v) {
  char *end;
  *v = strtod(s, &end);
  if (end != s && !strcmp(end, "/s")) end += 2; /* "storm=10000/s" reads as it is meant */
  return end != s && !*end && *v >= lo && *v <= hi;
}

/* A MODE word: its name and optional figure. */
static bool parse_mode(const char *w) {
  const char *eq = strchr(w, '=');
  size_t len = eq ? (size_t)(eq - w) : strlen(w);
  for (int k = 0; k < NKINDS; k++) {
    if (strlen(kind_names[k]) != len || strncmp(w, kind_names[k], len)) continue;
    opt.on[k] = true;
    if (!eq) return true;
    double v;
    switch (k) {
      case K_STORM: return parse_num(eq + 1, 1, 1e6, &opt.storm_rate);
      case K_GARBAGE: return parse_num(eq + 1, 1, 1e5, &opt.garbage_rate);
      case K_SLOW: return parse_num(eq + 1, 1, 50000, &v) && (opt.slow_n = (int)v, true);
      case K_NONREADER: return parse_num(eq + 1, 1, 10000, &v) && (opt.nonreader_n = (int)v, true);
      case K_PROBE: return parse_num(eq + 1, 1, 60000, &v) && (opt.probe_ms = (int)v, true);
      default: return false;
    }
  }
  return false;
}

static int parse(int argc, char **argv) {
  static const struct option longs[] = {
      {"host", 1, 0, 'h'}, {"port", 1, 0, 'p'}, {"proto", 1, 0, 'P'}, {"seconds", 1, 0, 's'},
      {"seed", 1, 0, 'S'}, {"max-p99-ms", 1, 0, 'm'}, {"storm-inflight", 1, 0, 'i'},
      {"garbage-inflight", 1, 0, 'g'}, {"trickle-ms", 1, 0, 't'}, {"probe-timeout", 1, 0, 'T'},
      {"probe-fresh", 0, 0, 'f'}, {"help", 0, 0, 'H'}, {0, 0, 0, 0}};
  opt = (struct options){.host = "127.0.0.1", .seconds = 10, .storm_rate = 1000,
                         .garbage_rate = 50, .slow_n = 10, .nonreader_n = 10, .probe_ms = 10,
                         .storm_inflight = 1000, .garbage_inflight = 100, .trickle_ms = 1000,
                         .probe_timeout = 5, .seed = (uint64_t)now_ns() ^ (uint64_t)getpid()};
  int c;
  double v;
  while ((c = getopt_long(argc, argv, "", longs, NULL)) != -1) {
    bool ok = true;
    switch (c) {
      case 'h': opt.host = optarg; break;
      case 'p': ok = parse_num(optarg, 1, 65535, &v) && (opt.port = (int)v); break;
      case 'P':
        ok = false;
        for (int i = 0; i < 3; i++)
          if (!strcmp(optarg, proto_names[i])) opt.proto = (enum proto)i, ok = true;
        break;
      case 's': ok = parse_num(optarg, 0.01, 3600, &opt.seconds); break;
      case 'S': ok = parse_num(optarg, 0, 1e18, &v) && (opt.seed = (uint64_t)v, true); break;
      case 'm': ok = parse_num(optarg, 0.001, 1e7, &opt.max_p99_ms); break;
      case 'i': ok = parse_num(optarg, 1, 100000, &v) && (opt.storm_inflight = (int)v); break;
      case 'g': ok = parse_num(optarg, 1, 10000, &v) && (opt.garbage_inflight = (int)v); break;
      case 't': ok = parse_num(optarg, 1, 60000, &v) && (opt.trickle_ms = (int)v); break;
      case 'T': ok = parse_num(optarg, 0.001, 3600, &opt.probe_timeout); break;
      case 'f': opt.probe_fresh = true; break;
      case 'H': usage(stdout); exit(0);
      default: ok = false;
    }
    if (!ok) goto bad;
  }
  bool any = false;
  for (; optind < argc; optind++) {
    if (!strcmp(argv[optind], "+")) continue; /* "storm + probe" reads as it is meant */
    if (!parse_mode(argv[optind])) goto bad;
    any = true;
  }
  if (opt.on[K_PROBE] && opt.on[K_CHECK]) goto bad; /* one well-behaved client at a time */
  if (any && opt.port) return 0;
bad:
  usage(stderr);
  return 2;
}

/* ---- main ----------------------------------------------------------------------------------------- */

static bool resolve(void) {
  char service[16];
  snprintf(service, sizeof service, "%d", opt.port);
  struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai;
  int gai = getaddrinfo(opt.host, service, &hints, &ai);
  if (gai) {
    fprintf(stderr, "aloop-hostile: %s: %s\n", opt.host, gai_strerror(gai));
    return false;
  }
  memcpy(&addr, ai->ai_addr, ai->ai_addrlen);
  addr_len = ai->ai_addrlen;
  freeaddrinfo(ai);
  return true;
}

static char *filler(const char *unit) {
  char *f = malloc(FILLER);
  if (!f) return NULL;
  size_t n = unit ? strlen(unit) : 0;
  for (size_t i = 0; i < FILLER; i++) f[i] = unit ? unit[i % n] : (char)rnd();
  return f;
}

static bool setup(void) {
  rng_state = opt.seed * 2 + 1; /* never 0: xorshift would stay there */
  filler_a = filler("a");
  filler_bin = filler(NULL);
  filler_hdr = filler("X-h: v\r\n");
  filler_lines = filler("zzzq\n");
  slow_slots = calloc((size_t)opt.slow_n, sizeof *slow_slots);
  nonreader_slots = calloc((size_t)opt.nonreader_n, sizeof *nonreader_slots);
  if (!filler_a || !filler_bin || !filler_hdr || !filler_lines || !slow_slots || !nonreader_slots) {
    fprintf(stderr, "aloop-hostile: out of memory\n");
    return false;
  }
  nonreader_fill();
  if ((ep = epoll_create1(EPOLL_CLOEXEC)) < 0) {
    perror("aloop-hostile: epoll_create1");
    return false;
  }
  return resolve();
}

static void teardown(void) {
  while (live) drop(live, true); /* reset: nothing we leave should linger on the server */
  bury();
  free(filler_a), free(filler_bin), free(filler_hdr), free(filler_lines);
  free(slow_slots), free(nonreader_slots), free(probe_lat.lat);
  if (ep >= 0) close(ep);
}

/* Every enabled mode until --seconds have passed (or `check` was answered); their lines; the
 * exit status. */
static int run(void) {
  int status = 0;
  if (!setup()) {
    teardown();
    return 1;
  }
  uint64_t t0 = now_ns(), end = t0 + (uint64_t)(opt.seconds * 1e9), now = t0, last_expire = 0;
  storm_t0 = garbage_t0 = probe_next_at = t0;
  struct epoll_event events[MAX_EVENTS];
  while (now < end && !check_answered) {
    int n = epoll_wait(ep, events, MAX_EVENTS, TICK_MS);
    now = now_ns();
    for (int i = 0; i < n; i++) on_event(events[i].data.ptr, events[i].events, now);
    if (now - last_expire >= 10 * NS_PER_MS) { /* timeouts are seconds: no need to look often */
      expire(now);
      last_expire = now;
    }
    tick(now);
    bury();
  }
  double secs = (double)(now - t0) / 1e9;
  if (opt.on[K_STORM]) print_storm(secs);
  if (opt.on[K_SLOW]) print_slow();
  if (opt.on[K_NONREADER]) print_nonreader();
  if (opt.on[K_GARBAGE]) print_garbage();
  if (opt.on[K_PROBE] && !print_probe(K_PROBE, secs)) status = 1;
  if (opt.on[K_CHECK] && !print_probe(K_CHECK, secs)) status = 1;
  teardown();
  return status;
}

/* The probe in a process of its own, when anything else runs: a storm can keep one loop busy for
 * hundreds of milliseconds, and the probe would measure its attacker instead of the server. Its
 * line comes back through a pipe, printed after the others; its exit status is its verdict. */
static int run_with_probe_apart(void) {
  int p[2];
  fflush(stdout);
  if (pipe(p) < 0) {
    perror("aloop-hostile: pipe");
    return 1;
  }
  pid_t pid = fork();
  if (pid < 0) {
    perror("aloop-hostile: fork");
    return 1;
  }
  if (pid == 0) {
    close(p[0]);
    dup2(p[1], STDOUT_FILENO);
    close(p[1]);
    for (int k = 0; k < NKINDS; k++) opt.on[k] = k == K_PROBE;
    opt.seed ^= 0x9e3779b97f4a7c15ull; /* its own random stream */
    int rc = run();
    fflush(stdout);
    _exit(rc);
  }
  close(p[1]);
  opt.on[K_PROBE] = false;
  int status = run();
  fflush(stdout);
  char buf[4096];
  for (ssize_t n; (n = read(p[0], buf, sizeof buf)) != 0;) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    fwrite(buf, 1, (size_t)n, stdout);
  }
  close(p[0]);
  int child;
  if (waitpid(pid, &child, 0) != pid || !WIFEXITED(child) || WEXITSTATUS(child)) status = 1;
  return status;
}

int main(int argc, char **argv) {
  if (parse(argc, argv)) return 2;
  printf("aloop-hostile: %s:%d, %s protocol, %.3g s, seed %llu\n", opt.host, opt.port,
         proto_names[opt.proto], opt.seconds, (unsigned long long)opt.seed);
  bool others = false;
  for (int k = 0; k < NKINDS; k++) others |= opt.on[k] && k != K_PROBE;
  return opt.on[K_PROBE] && others ? run_with_probe_apart() : run();
}
