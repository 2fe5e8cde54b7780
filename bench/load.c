/* aloop-load: the benchmark's load client. It uses none of aloop (plain epoll), so every server is
 * measured by the same yardstick. N connections each send a message, wait for the whole echo,
 * check it byte for byte, and repeat; after a warm-up it counts for a fixed time and reports
 * requests/s, MiB/s, latency percentiles, errors, and the server's CPU time per request (read from
 * /proc: on 2 cores the client may saturate first, and the server's own cost stays meaningful). */
#include <errno.h>
#include <fcntl.h>
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
#include <time.h>
#include <unistd.h>

#include "load_common.h"

enum { MAX_EVENTS = 256 };

struct conn {
  int fd;
  size_t sent, got;      /* of the current message */
  uint64_t started;      /* when its first byte went out */
  bool want_out;         /* EPOLLOUT registered */
  bool dead;
};

struct options {
  struct load_options l;
  size_t size;
};

static void usage(FILE *out) {
  fprintf(out, "usage: aloop-load --port P [--host H] [--connections N] [--size BYTES]\n"
               "                  [--duration S] [--warmup S] [--pid PID]... [--json]\n"
               "  N connections (default 10) each send a SIZE-byte message (default 1024), wait for\n"
               "  the whole echo, check it, repeat; counts for DURATION s (default 5) after WARMUP s\n"
               "  (default 1). --pid: the server's process(es), for its CPU time per request.\n");
}

static int parse(int argc, char **argv, struct options *o) {
  static const struct option longs[] = {LOAD_LONG_OPTIONS, {"size", 1, 0, 's'},
                                        {"help", 0, 0, 'H'}, {0, 0, 0, 0}};
  *o = (struct options){.l = load_defaults(), .size = 1024};
  int c;
  char *end;
  while ((c = getopt_long(argc, argv, "", longs, NULL)) != -1) {
    switch (c) {
    case 's':
      o->size = strtoul(optarg, &end, 10);
      if (*end || !o->size || o->size > (64u << 20)) goto bad;
      break;
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

static int connect_one(const struct sockaddr *addr, socklen_t len) {
  int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || connect(fd, addr, len) < 0) {
    if (fd >= 0) close(fd);
    return -1;
  }
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){1}, sizeof(int));
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  return fd;
}

static void interest(int ep, struct conn *c, bool out) {
  if (c->want_out == out) return;
  struct epoll_event ev = {.events = EPOLLIN | (out ? EPOLLOUT : 0), .data.ptr = c};
  epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
  c->want_out = out;
}

static void fail(int ep, struct conn *c, struct results *r, bool counting) {
  epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
  close(c->fd);
  c->dead = true;
  if (counting) r->errors++;
}

/* Push what the socket takes of the current message. */
static bool pump_out(int ep, struct conn *c, const unsigned char *msg, size_t size) {
  while (c->sent < size) {
    ssize_t n = send(c->fd, msg + c->sent, size - c->sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) break;
    if (n <= 0) return false;
    c->sent += (size_t)n;
  }
  interest(ep, c, c->sent < size);
  return true;
}

int main(int argc, char **argv) {
  struct options o;
  if (parse(argc, argv, &o)) return 2;
  char service[16];
  snprintf(service, sizeof service, "%d", o.l.port);
  struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai;
  int gai = getaddrinfo(o.l.host, service, &hints, &ai);
  if (gai) {
    fprintf(stderr, "aloop-load: %s: %s\n", o.l.host, gai_strerror(gai));
    return 1;
  }
  unsigned char *msg = malloc(o.size), *back = malloc(o.size);
  for (size_t i = 0; i < o.size; i++) msg[i] = (unsigned char)(i * 131 + 7);
  struct conn *conns = calloc((size_t)o.l.connections, sizeof *conns);
  int ep = epoll_create1(EPOLL_CLOEXEC);
  for (int i = 0; i < o.l.connections; i++) {
    struct conn *c = &conns[i];
    if ((c->fd = connect_one(ai->ai_addr, ai->ai_addrlen)) < 0) {
      fprintf(stderr, "aloop-load: connect to %s:%d: %s\n", o.l.host, o.l.port, strerror(errno));
      return 1;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
  }
  freeaddrinfo(ai);

  struct results r = {0};
  uint64_t t0 = now_ns(), start = t0 + (uint64_t)(o.l.warmup * 1e9);
  uint64_t end = start + (uint64_t)(o.l.duration * 1e9), cpu0 = 0;
  bool counting = false;
  for (int i = 0; i < o.l.connections; i++) {
    conns[i].started = now_ns();
    if (!pump_out(ep, &conns[i], msg, o.size)) fail(ep, &conns[i], &r, false);
  }
  struct epoll_event events[MAX_EVENTS];
  int alive = o.l.connections;
  for (uint64_t t = now_ns(); t < end && alive > 0; t = now_ns()) {
    if (!counting && t >= start) {
      counting = true;
      cpu0 = server_cpu_ns(o.l.pids, o.l.npids);
      r.requests = 0;
      r.nlat = 0;
    }
    int n = epoll_wait(ep, events, MAX_EVENTS, 100);
    for (int k = 0; k < n; k++) {
      struct conn *c = events[k].data.ptr;
      if (c->dead) continue;
      if ((events[k].events & EPOLLOUT) && !pump_out(ep, c, msg, o.size)) {
        fail(ep, c, &r, counting), alive--;
        continue;
      }
      if (!(events[k].events & (EPOLLIN | EPOLLERR | EPOLLHUP))) continue;
      for (;;) {
        ssize_t got = recv(c->fd, back, o.size - c->got, 0);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0 && errno == EAGAIN) break;
        if (got <= 0 || c->got + (size_t)got > c->sent ||
            memcmp(back, msg + c->got, (size_t)got) != 0) { /* reset, early end, wrong bytes */
          fail(ep, c, &r, counting), alive--;
          break;
        }
        c->got += (size_t)got;
        if (c->got < o.size) continue;
        uint64_t done = now_ns();
        if (counting && done <= end) record(&r, done - c->started);
        c->sent = c->got = 0;
        c->started = done;
        if (!pump_out(ep, c, msg, o.size)) {
          fail(ep, c, &r, counting), alive--;
          break;
        }
      }
    }
  }
  double secs = (double)(now_ns() - (counting ? start : t0)) / 1e9;
  uint64_t cpu = counting && o.l.npids ? server_cpu_ns(o.l.pids, o.l.npids) - cpu0 : 0;
  struct summary sum = summarize(&r, secs, o.size, cpu, o.l.npids > 0);
  if (o.l.json) printf("{");
  print_summary(&sum, &r, o.l.json);
  printf(o.l.json ? "}\n" : "\n");
  for (int i = 0; i < o.l.connections; i++)
    if (!conns[i].dead) close(conns[i].fd);
  close(ep);
  free(conns), free(msg), free(back), free(r.lat);
  return r.errors || alive < o.l.connections ? 1 : 0;
}
