/* echo-epoll: reference peer for the echo benchmark, the "near the limit" mark a C loop library is
 * measured against. Per message it costs one epoll_wait, one recv into the connection's 64 KiB
 * buffer and one send of those bytes straight back: nothing else. Sockets are edge-triggered and
 * registered once for EPOLLIN|EPOLLOUT, so there is never an epoll_ctl after accept; a recv shorter
 * than the buffer means the socket was drained (anything that arrives later raises a new edge), so
 * the usual extra recv that returns EAGAIN is skipped. When a send is short the rest stays in the
 * buffer and the connection stops reading until EPOLLOUT has let it all go out. Signals come in
 * through a signalfd in the same epoll set, so stopping needs no check on the fast path.
 *
 * usage: echo-epoll [--host H] [--port P]   (defaults 127.0.0.1 and 8888; port 0 = ephemeral)
 * Prints "echo-epoll: listening on HOST:PORT"; on SIGINT/SIGTERM prints "echo-epoll: stopped" and
 * exits 0. */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#define NAME "echo-epoll"

enum { BUF_SIZE = 64 * 1024, MAX_EVENTS = 512, BACKLOG = 4096 };

struct conn {
  int fd;
  uint32_t off, len; /* unsent bytes: buf[off .. off+len) */
  char buf[BUF_SIZE];
};

static char listen_tag, signal_tag; /* epoll data.ptr for the two non-connection fds */

static void usage(FILE *f, const char *prog) {
  fprintf(f, "usage: %s [--host H] [--port P]  (defaults 127.0.0.1 and 8888; port 0 = ephemeral)\n",
          prog);
}

static void parse_args(int argc, char **argv, const char **host, int *port) {
  for (int i = 1; i < argc; i++) {
    const char *arg = argv[i], *val = NULL;
    if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
      usage(stdout, argv[0]);
      exit(0);
    }
    if (!strncmp(arg, "--host=", 7) || !strncmp(arg, "--port=", 7)) {
      val = arg + 7;
    } else if ((!strcmp(arg, "--host") || !strcmp(arg, "--port")) && i + 1 < argc) {
      val = argv[++i];
    } else {
      fprintf(stderr, "%s: bad argument: %s\n", NAME, arg);
      usage(stderr, argv[0]);
      exit(2);
    }
    if (arg[2] == 'h') {
      *host = val;
    } else {
      char *end;
      errno = 0;
      long v = strtol(val, &end, 10);
      if (errno || end == val || *end || v < 0 || v > 65535) {
        fprintf(stderr, "%s: bad port: %s\n", NAME, val);
        usage(stderr, argv[0]);
        exit(2);
      }
      *port = (int)v;
    }
  }
}

/* A non-blocking listening socket on host:port; *bound gets the real port. Exits on failure. */
static int listen_on(const char *host, int port, int *bound) {
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                           .ai_flags = AI_PASSIVE | AI_NUMERICSERV}, *res, *ai;
  char service[8];
  snprintf(service, sizeof service, "%d", port);
  int rc = getaddrinfo(host, service, &hints, &res);
  if (rc) {
    fprintf(stderr, "%s: %s: %s\n", NAME, host, gai_strerror(rc));
    exit(1);
  }
  int fd = -1, err = 0;
  for (ai = res; ai; ai = ai->ai_next) {
    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
      err = errno;
      continue;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, BACKLOG) == 0) break;
    err = errno;
    close(fd);
    fd = -1;
  }
  freeaddrinfo(res);
  if (fd < 0) {
    fprintf(stderr, "%s: cannot listen on %s:%d: %s\n", NAME, host, port, strerror(err));
    exit(1);
  }
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  getsockname(fd, (struct sockaddr *)&ss, &sl);
  *bound = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                          : ((struct sockaddr_in *)&ss)->sin_port);
  return fd;
}

static void drop(struct conn *c) {
  close(c->fd); /* also takes it out of the epoll set */
  free(c);
}

static void accept_all(int ep, int lfd) {
  for (;;) {
    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      return; /* EAGAIN, or out of fds/memory: the listener stays ready and we come back */
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct conn *c = malloc(sizeof *c);
    if (!c) {
      close(fd);
      continue;
    }
    c->fd = fd;
    c->off = c->len = 0;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.ptr = c};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) drop(c);
  }
}

/* One readiness report for a connection. Returns 0, or -1 once the connection is gone. */
static int serve(struct conn *c, uint32_t events) {
  if (c->len) { /* a short send is outstanding: finish it before reading anything more */
    if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return 0;
    ssize_t w = send(c->fd, c->buf + c->off, c->len, MSG_NOSIGNAL);
    if (w < 0) return errno == EAGAIN || errno == EINTR ? 0 : -1;
    c->off += (uint32_t)w;
    c->len -= (uint32_t)w;
    if (c->len) return 0;
    /* All out: read what came in meanwhile. Its edges, a hang-up's too, were reported while we
     * were not reading, so read on to EAGAIN or EOF this once. */
    events |= EPOLLRDHUP;
  }
  for (;;) {
    ssize_t n = recv(c->fd, c->buf, BUF_SIZE, 0);
    if (n <= 0) {
      if (n < 0 && errno == EINTR) continue;
      return n < 0 && errno == EAGAIN ? 0 : -1; /* 0: EOF; otherwise a reset or another error */
    }
    ssize_t w = send(c->fd, c->buf, (size_t)n, MSG_NOSIGNAL);
    if (w == n) {
      /* Short read: drained, unless a hang-up was reported (then read on to the EOF). */
      if (n < BUF_SIZE && !(events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))) return 0;
      continue;
    }
    if (w < 0) {
      if (errno != EAGAIN && errno != EINTR) return -1;
      w = 0;
    }
    c->off = (uint32_t)w;
    c->len = (uint32_t)(n - w);
    return 0; /* EPOLLOUT (already registered) resumes us */
  }
}

int main(int argc, char **argv) {
  const char *host = "127.0.0.1";
  int port = 8888;
  parse_args(argc, argv, &host, &port);

  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  signal(SIGPIPE, SIG_IGN);
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGTERM);
  sigprocmask(SIG_BLOCK, &mask, NULL);
  int sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
  int ep = epoll_create1(EPOLL_CLOEXEC);
  if (sfd < 0 || ep < 0) {
    perror(NAME);
    return 1;
  }
  int bound;
  int lfd = listen_on(host, port, &bound);
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &listen_tag};
  epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
  ev.data.ptr = &signal_tag;
  epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &ev);

  printf("%s: listening on %s:%d\n", NAME, host, bound);
  fflush(stdout);

  struct epoll_event events[MAX_EVENTS];
  for (;;) {
    int n = epoll_wait(ep, events, MAX_EVENTS, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      perror(NAME ": epoll_wait");
      return 1;
    }
    for (int i = 0; i < n; i++) {
      void *p = events[i].data.ptr;
      if (p == &listen_tag) {
        accept_all(ep, lfd);
      } else if (p == &signal_tag) {
        printf("%s: stopped\n", NAME);
        fflush(stdout);
        return 0;
      } else if (serve(p, events[i].events) < 0) {
        drop(p);
      }
    }
  }
}
