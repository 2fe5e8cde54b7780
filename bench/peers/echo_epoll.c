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
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#define NAME "echo-epoll"
#include "peer.h"

enum { BUF_SIZE = 64 * 1024, MAX_EVENTS = 512 };

struct conn {
  int fd;
  uint32_t off, len; /* unsent bytes: buf[off .. off+len) */
  char buf[BUF_SIZE];
};

static char listen_tag, signal_tag; /* epoll data.ptr for the two non-connection fds */

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
  peer_parse_args(argc, argv, &host, &port);

  peer_raise_fd_limit();
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
  int lfd = peer_listen(host, port, &bound);
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
