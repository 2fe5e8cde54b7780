/* aloop-cf-load: the charfinder benchmark's client for the TCP line protocol. It uses none of aloop
 * (plain epoll, non-blocking sockets), so it measures any server of the protocol alike.
 *
 * The protocol: on connect the server sends the prompt "?> "; a client sends a line ("cat face\r\n")
 * and gets one line per matching character, a status line ("10 matches for 'cat face'") and the
 * prompt again, every line ending "\r\n". So an answer is complete when it ends "\r\n?> ".
 *
 * First one probe connection asks the query once and keeps the whole answer (it must end in a
 * status line and the prompt). Then N connections each read the first prompt and loop: send the
 * query, read the answer, check it byte for byte against the probe's, count a request and its
 * latency. A different answer, a failed connect or a reset is an error (the connection is closed
 * and not replaced). After a warm-up it counts for a fixed time and reports requests/s, latency
 * percentiles, errors and the server's CPU time per request (read from /proc for --pid). */
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
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

enum {
  MAX_EVENTS = 256,
  LINE_MAX_BYTES = 65536,        /* the server's line limit */
  SCRATCH = 64 * 1024,           /* one recv at most */
  PROBE_SECONDS = 10,            /* the probe's time limit */
};
#define MAX_ANSWER ((size_t)256 << 20) /* a larger answer is refused */

static const char prompt[] = "?> ";
#define PROMPT_LEN (sizeof prompt - 1)

enum state { CONNECTING, READ_PROMPT, READ_ANSWER };

struct conn {
  int fd;
  enum state state;
  size_t sent;      /* of the query line */
  size_t got;       /* of the prompt or the answer being read */
  uint64_t started; /* when the query's first byte went out */
  bool want_out;    /* EPOLLOUT registered */
  bool dead;
};

struct options {
  struct load_options l;
  const char *query;
};

static void usage(FILE *out) {
  fprintf(out,
          "usage: aloop-cf-load --port P [--host H] [--connections N] [--query TEXT]\n"
          "                     [--duration S] [--warmup S] [--pid PID]... [--json]\n"
          "  Load for the charfinder TCP line protocol: N connections (default 10) each send\n"
          "  TEXT (default \"cat face\") as a line, read the whole answer up to the next prompt,\n"
          "  check it against the first answer, repeat; counts for DURATION s (default 5) after\n"
          "  WARMUP s (default 1). --pid: the server's process(es), for its CPU time per request.\n");
}

static int parse(int argc, char **argv, struct options *o) {
  static const struct option longs[] = {LOAD_LONG_OPTIONS, {"query", 1, 0, 'q'},
                                        {"help", 0, 0, 'H'}, {0, 0, 0, 0}};
  *o = (struct options){.l = load_defaults(), .query = "cat face"};
  int c;
  while ((c = getopt_long(argc, argv, "", longs, NULL)) != -1) {
    switch (c) {
    case 'q': o->query = optarg; break;
    case 'H': usage(stdout); exit(0);
    default:
      if (load_option(&o->l, c, optarg) <= 0) goto bad;
    }
  }
  /* One line with something in it: an empty line gets only a prompt back, not an answer. */
  if (strpbrk(o->query, "\r\n") || strlen(o->query) >= LINE_MAX_BYTES - 2 ||
      strspn(o->query, " \t") == strlen(o->query)) {
    fprintf(stderr, "aloop-cf-load: --query must be one line with at least one word\n");
    return 2;
  }
  if (optind == argc && o->l.port) return 0;
bad:
  usage(stderr);
  return 2;
}

/* A non-blocking TCP socket whose connect has begun; -1 if it failed at once. */
static int connect_start(const struct sockaddr *addr, socklen_t len, bool *done) {
  int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){1}, sizeof(int));
  *done = connect(fd, addr, len) == 0;
  if (!*done && errno != EINPROGRESS) {
    int e = errno;
    close(fd);
    errno = e;
    return -1;
  }
  return fd;
}

static int socket_error(int fd) {
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) return errno;
  return err;
}

/* Wait until fd is ready for `events` or the deadline passes: true if ready. */
static bool wait_fd(int fd, short events, uint64_t deadline) {
  for (;;) {
    uint64_t t = now_ns();
    if (t >= deadline) return false;
    struct pollfd p = {.fd = fd, .events = events};
    int n = poll(&p, 1, (int)((deadline - t) / 1000000 + 1));
    if (n > 0) return true;
    if (n < 0 && errno != EINTR) return false;
  }
}

struct bytes {
  char *data;
  size_t len, cap;
};

static bool ends_with_prompt(const struct bytes *b) {
  static const char tail[] = "\r\n?> ";
  size_t n = sizeof tail - 1;
  return b->len >= n && !memcmp(b->data + b->len - n, tail, n);
}

/* Read into b until it ends with "\r\n?> " (or, with just_prompt, holds the first prompt). */
static const char *probe_read(int fd, struct bytes *b, bool just_prompt, uint64_t deadline) {
  while (just_prompt ? b->len < PROMPT_LEN : !ends_with_prompt(b)) {
    if (b->len == b->cap) {
      if (b->cap >= MAX_ANSWER) return "the answer is larger than 256 MiB";
      b->cap = b->cap ? b->cap * 2 : SCRATCH;
      char *p = realloc(b->data, b->cap);
      if (!p) return "out of memory";
      b->data = p;
    }
    size_t room = just_prompt ? PROMPT_LEN - b->len : b->cap - b->len;
    ssize_t n = recv(fd, b->data + b->len, room, 0);
    if (n > 0) {
      b->len += (size_t)n;
    } else if (n == 0) {
      return "the server closed the connection";
    } else if (errno == EAGAIN || errno == EINTR) {
      if (!wait_fd(fd, POLLIN, deadline)) return "no answer in time";
    } else {
      return strerror(errno);
    }
  }
  return NULL;
}

/* One connection asks the query once: the answer every later one must equal. NULL, or what went
 * wrong. */
static const char *probe(const struct sockaddr *addr, socklen_t alen, const char *line,
                         size_t llen, struct bytes *answer) {
  uint64_t deadline = now_ns() + (uint64_t)PROBE_SECONDS * 1000000000u;
  bool done;
  int fd = connect_start(addr, alen, &done);
  if (fd < 0) return strerror(errno);
  const char *err = NULL;
  if (!done) {
    int e;
    if (!wait_fd(fd, POLLOUT, deadline))
      err = "connect timed out";
    else if ((e = socket_error(fd)))
      err = strerror(e);
  }
  struct bytes first = {0};
  if (!err) err = probe_read(fd, &first, true, deadline);
  if (!err && memcmp(first.data, prompt, PROMPT_LEN))
    err = "the server did not send the prompt \"?> \"";
  for (size_t sent = 0; !err && sent < llen;) {
    ssize_t n = send(fd, line + sent, llen - sent, MSG_NOSIGNAL);
    if (n > 0)
      sent += (size_t)n;
    else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      if (!wait_fd(fd, POLLOUT, deadline)) err = "could not send the query in time";
    } else
      err = n < 0 ? strerror(errno) : "send failed";
  }
  if (!err) err = probe_read(fd, answer, false, deadline);
  free(first.data);
  close(fd);
  return err;
}

/* The status line of a whole answer (the line before the final prompt), as [*at, *at + *len). */
static bool status_line(const struct bytes *a, const char **at, size_t *len) {
  size_t end = a->len - 5; /* where its "\r\n" begins */
  size_t start = end;
  while (start >= 2 && !(a->data[start - 2] == '\r' && a->data[start - 1] == '\n')) start--;
  if (start < 2) start = 0;
  *at = a->data + start;
  *len = end - start;
  /* "No match for ...", "1 match for ...", "N matches for ..." */
  static const char no[] = "No match for ";
  size_t digits = 0;
  while (digits < *len && (*at)[digits] >= '0' && (*at)[digits] <= '9') digits++;
  static const char one[] = " match for ", many[] = " matches for ";
  const char *rest = *at + digits;
  size_t left = *len - digits;
  if (!digits) return left >= sizeof no - 1 && !memcmp(rest, no, sizeof no - 1);
  return (left >= sizeof one - 1 && !memcmp(rest, one, sizeof one - 1)) ||
         (left >= sizeof many - 1 && !memcmp(rest, many, sizeof many - 1));
}

struct run {
  int ep;
  const char *line; /* the query and "\r\n" */
  size_t llen;
  const struct bytes *expect;
  struct results res;
  int alive;
};

static void interest(struct run *g, struct conn *c, bool out) {
  if (c->want_out == out) return;
  struct epoll_event ev = {.events = EPOLLIN | (out ? EPOLLOUT : 0), .data.ptr = c};
  epoll_ctl(g->ep, EPOLL_CTL_MOD, c->fd, &ev);
  c->want_out = out;
}

/* Every failure is an error, warm-up or not: the connection is closed and not replaced. */
static void fail(struct run *g, struct conn *c) {
  epoll_ctl(g->ep, EPOLL_CTL_DEL, c->fd, NULL);
  close(c->fd);
  c->dead = true;
  g->res.errors++;
  g->alive--;
}

/* Send what the socket takes of the query line; false if the connection failed. */
static bool pump_out(struct run *g, struct conn *c) {
  while (c->sent < g->llen) {
    ssize_t n = send(c->fd, g->line + c->sent, g->llen - c->sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) break;
    if (n <= 0) return false;
    c->sent += (size_t)n;
  }
  interest(g, c, c->sent < g->llen);
  return true;
}

static bool ask(struct run *g, struct conn *c, uint64_t t) {
  c->state = READ_ANSWER;
  c->sent = c->got = 0;
  c->started = t;
  return pump_out(g, c);
}

/* Read what has come: the first prompt, or the answer, checked as it arrives. */
static bool pump_in(struct run *g, struct conn *c, bool counting, uint64_t end) {
  static char scratch[SCRATCH];
  for (;;) {
    bool in_prompt = c->state == READ_PROMPT;
    const char *want = in_prompt ? prompt : g->expect->data;
    size_t total = in_prompt ? PROMPT_LEN : g->expect->len, left = total - c->got;
    ssize_t n = recv(c->fd, scratch, left < SCRATCH ? left : SCRATCH, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return true;
    if (n <= 0 || memcmp(scratch, want + c->got, (size_t)n)) return false; /* closed, or not it */
    if ((c->got += (size_t)n) < total) continue;
    uint64_t done = now_ns();
    if (!in_prompt && counting && done <= end) record(&g->res, done - c->started);
    if (!ask(g, c, done)) return false;
  }
}

static void json_string(const char *s, size_t n) {
  putchar('"');
  for (size_t i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)s[i];
    if (ch == '"' || ch == '\\')
      printf("\\%c", ch);
    else if (ch < 0x20)
      printf("\\u%04x", ch);
    else
      putchar(ch);
  }
  putchar('"');
}

int main(int argc, char **argv) {
  struct options o;
  if (parse(argc, argv, &o)) return 2;
  char service[16];
  snprintf(service, sizeof service, "%d", o.l.port);
  struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai;
  int gai = getaddrinfo(o.l.host, service, &hints, &ai);
  if (gai) {
    fprintf(stderr, "aloop-cf-load: %s: %s\n", o.l.host, gai_strerror(gai));
    return 1;
  }
  size_t qlen = strlen(o.query);
  char *line = malloc(qlen + 3);
  if (!line) return 1;
  memcpy(line, o.query, qlen);
  memcpy(line + qlen, "\r\n", 3);

  struct bytes expect = {0};
  const char *why = probe(ai->ai_addr, ai->ai_addrlen, line, qlen + 2, &expect);
  const char *status = NULL;
  size_t slen = 0;
  if (!why && !status_line(&expect, &status, &slen))
    why = "the answer does not end in a status line";
  if (why) {
    fprintf(stderr, "aloop-cf-load: %s:%d, query '%s': %s\n", o.l.host, o.l.port, o.query, why);
    return 1;
  }

  struct run g = {.line = line, .llen = qlen + 2, .expect = &expect, .alive = o.l.connections};
  g.ep = epoll_create1(EPOLL_CLOEXEC);
  struct conn *conns = calloc((size_t)o.l.connections, sizeof *conns);
  if (g.ep < 0 || !conns) {
    perror("aloop-cf-load");
    return 1;
  }
  for (int i = 0; i < o.l.connections; i++) {
    struct conn *c = &conns[i];
    bool done;
    if ((c->fd = connect_start(ai->ai_addr, ai->ai_addrlen, &done)) < 0) {
      c->dead = true;
      g.res.errors++;
      g.alive--;
      continue;
    }
    c->state = done ? READ_PROMPT : CONNECTING;
    c->want_out = !done;
    struct epoll_event ev = {.events = EPOLLIN | (done ? 0 : EPOLLOUT), .data.ptr = c};
    epoll_ctl(g.ep, EPOLL_CTL_ADD, c->fd, &ev);
  }
  freeaddrinfo(ai);

  uint64_t t0 = now_ns(), start = t0 + (uint64_t)(o.l.warmup * 1e9);
  uint64_t end = start + (uint64_t)(o.l.duration * 1e9), cpu0 = 0;
  bool counting = false;
  struct epoll_event events[MAX_EVENTS];
  for (uint64_t t = t0; t < end && g.alive > 0; t = now_ns()) {
    if (!counting && t >= start) {
      counting = true;
      cpu0 = server_cpu_ns(o.l.pids, o.l.npids);
      g.res.requests = 0;
      g.res.nlat = 0;
    }
    uint64_t until = counting ? end : start;
    int wait_ms = (int)((until - t) / 1000000) + 1;
    int n = epoll_wait(g.ep, events, MAX_EVENTS, wait_ms < 100 ? wait_ms : 100);
    for (int k = 0; k < n; k++) {
      struct conn *c = events[k].data.ptr;
      if (c->dead) continue;
      uint32_t ev = events[k].events;
      if (c->state == CONNECTING) {
        if (!(ev & (EPOLLOUT | EPOLLERR | EPOLLHUP))) continue;
        if (socket_error(c->fd)) {
          fail(&g, c);
          continue;
        }
        c->state = READ_PROMPT;
        interest(&g, c, false);
        continue; /* the prompt comes with a later EPOLLIN */
      }
      if ((ev & EPOLLOUT) && !pump_out(&g, c)) {
        fail(&g, c);
        continue;
      }
      if ((ev & (EPOLLIN | EPOLLERR | EPOLLHUP)) && !pump_in(&g, c, counting, end)) fail(&g, c);
    }
  }
  uint64_t stopped = now_ns();
  double secs = (double)(stopped - (counting ? start : t0)) / 1e9;
  uint64_t cpu = counting && o.l.npids ? server_cpu_ns(o.l.pids, o.l.npids) - cpu0 : 0;
  struct results *r = &g.res;
  struct summary sum = summarize(r, secs, expect.len, cpu, o.l.npids > 0);
  if (o.l.json) {
    printf("{");
    print_summary(&sum, r, true);
    printf(", \"connections\": %d, \"alive\": %d, \"answer_bytes\": %zu, \"status\": ",
           o.l.connections, g.alive, expect.len);
    json_string(status, slen);
    printf("}\n");
  } else {
    print_summary(&sum, r, false);
    printf("; answer %zu bytes, status \"%.*s\"\n", expect.len, (int)slen, status);
  }
  for (int i = 0; i < o.l.connections; i++)
    if (!conns[i].dead) close(conns[i].fd);
  close(g.ep);
  free(conns), free(line), free(expect.data), free(r->lat);
  return r->errors || g.alive < o.l.connections ? 1 : 0;
}
