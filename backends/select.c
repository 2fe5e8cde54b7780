/* The select(2) driver: portable, dependency-free, and honest about its limits.
 *
 * What the interface costs and where it breaks:
 *  a) fd_set is a bitmap of FD_SETSIZE (1024) bits, and glibc's fortified FD_SET aborts on an fd
 *     above it. The driver declares max_fd = FD_SETSIZE, so the core refuses such fds with
 *     ALOOP_EFDLIMIT before they reach this file.
 *  b) The kernel overwrites the sets it is given: every poll works on copies of ours.
 *  c) One closed fd in the sets fails the whole call with EBADF. Find it (fcntl), report it through
 *     the core, and drop it, instead of failing again on every iteration.
 *  d) Each call costs O(highest fd) in the kernel and in our scan of the results.
 *  e) The timeout is a timeval (microseconds): round up, or a timer is found early and the loop spins.
 *  f) EINTR is a signal, not an error: return and let the loop look at its wake-up fd.
 *  g) No kernel object holds the interest: it is two bitmaps in this process, handed over anew
 *     on every call. So there is no fd a host loop could wait on for us (an epoll set kept
 *     alongside would be another driver pretending), and aloop_backend_fd answers
 *     ALOOP_EUNAVAIL (the core does, as this driver fills no backend_fd entry).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/select.h>

#include "driver.h"

struct select_state {
  fd_set readers, writers;
  int maxfd; /* highest fd in either set, or -1 */
};

static int select_probe(char *why, size_t n) {
  (void)why;
  (void)n;
  return 0; /* select(2) is always there */
}

static int select_init(aloop_loop *loop, void *state, char *why, size_t n) {
  (void)loop;
  (void)why;
  (void)n;
  struct select_state *s = state;
  FD_ZERO(&s->readers);
  FD_ZERO(&s->writers);
  s->maxfd = -1;
  return 0;
}

static void select_fini(aloop_loop *loop, void *state) {
  (void)loop;
  (void)state;
}

static int select_watch(aloop_loop *loop, void *state, int fd, void *fd_priv, unsigned old_ev,
                        unsigned new_ev) {
  (void)loop;
  (void)fd_priv;
  (void)old_ev;
  struct select_state *s = state;
  if (new_ev & ALOOP__READ) FD_SET(fd, &s->readers); else FD_CLR(fd, &s->readers);
  if (new_ev & ALOOP__WRITE) FD_SET(fd, &s->writers); else FD_CLR(fd, &s->writers);
  if (new_ev && fd > s->maxfd) s->maxfd = fd;
  while (s->maxfd >= 0 && !FD_ISSET(s->maxfd, &s->readers) && !FD_ISSET(s->maxfd, &s->writers))
    s->maxfd--;
  return 0;
}

/* select said EBADF: some watched fd was closed behind our back. */
static void drop_closed_fds(aloop_loop *loop, struct select_state *s) {
  for (int fd = 0; fd <= s->maxfd; fd++) {
    if (!FD_ISSET(fd, &s->readers) && !FD_ISSET(fd, &s->writers)) continue;
    if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF) continue;
    FD_CLR(fd, &s->readers);
    FD_CLR(fd, &s->writers);
    aloop__fd_invalid(loop, fd, -EBADF);
  }
  while (s->maxfd >= 0 && !FD_ISSET(s->maxfd, &s->readers) && !FD_ISSET(s->maxfd, &s->writers))
    s->maxfd--;
}

static int select_poll(aloop_loop *loop, void *state, int64_t timeout_ns) {
  struct select_state *s = state;
  fd_set rd = s->readers, wr = s->writers;
  struct timeval tv, *tvp = NULL;
  if (timeout_ns >= 0) {
    int64_t us = aloop__ns_to_us_ceil(timeout_ns);
    tv.tv_sec = (time_t)(us / 1000000);
    tv.tv_usec = (suseconds_t)(us % 1000000);
    tvp = &tv;
  }
  bool began = aloop__wait_begin(loop, timeout_ns);
  int n = select(s->maxfd + 1, &rd, &wr, NULL, tvp), err = errno;
  aloop__wait_end(loop, began);
  errno = err;
  if (n < 0) {
    if (errno == EINTR) return 0;
    if (errno == EBADF) {
      drop_closed_fds(loop, s);
      return 0;
    }
    return -errno;
  }
  for (int fd = 0; n > 0 && fd <= s->maxfd; fd++) {
    unsigned ev = (FD_ISSET(fd, &rd) ? ALOOP__READ : 0) | (FD_ISSET(fd, &wr) ? ALOOP__WRITE : 0);
    if (!ev) continue;
    n -= (ev == (ALOOP__READ | ALOOP__WRITE)) ? 2 : 1;
    aloop__fd_event(loop, fd, ev);
  }
  return 0;
}

const struct aloop__driver aloop__driver_select = {
    .name = "select",
    .max_fd = FD_SETSIZE,
    .state_size = sizeof(struct select_state),
    .fd_priv_size = 0,
    .probe = select_probe,
    .init = select_init,
    .fini = select_fini,
    .watch = select_watch,
    .poll = select_poll,
};
