/* The libev driver: readiness through libev's ev_io watchers, on whatever kernel mechanism libev
 * picks (EVFLAG_AUTO honours LIBEV_FLAGS; epoll on Linux).
 *
 * What the interface costs and where it breaks:
 *  a) libev keeps pointers to ev_io watchers in its own fd lists, so a watcher must never move:
 *     ours live in the core's per-fd bytes, which are allocated in chunks that never move.
 *  b) Changing an ev_io's events needs stop/set/start; libev queues the change and makes at most one
 *     epoll_ctl per fd per ev_run, so this costs no syscall by itself.
 *  c) epoll forgets an fd when its last descriptor is closed; libev notices errors (EBADF, ENOMEM)
 *     when it applies a change and stops the watcher with EV_ERROR: the core hears "invalid".
 *  d) ev_run(EVRUN_ONCE) only blocks while some watcher is active: the loop's wake-up fd always is.
 *     libev caps a wait at about 60 s; the core simply iterates again.
 *  e) Timers stay in the core. One ev_timer only bounds the wait; ev_now_update first, or libev
 *     measures it from a stale clock and returns early.
 *  f) Embedding (aloop_backend_fd): libev 4.33 has no call that gives its epoll fd (ev_embed only
 *     hosts a libev loop in another libev loop). The kernel tells: a private eventfd is watched
 *     once, and the epoll instance whose /proc/self/fdinfo lists that eventfd (fd and inode) is
 *     libev's. Only epoll has such an fd: libev on select or poll (LIBEV_FLAGS) answers
 *     ALOOP_EUNAVAIL. libev drops interest lazily (a stopped fd stays in the set until its next
 *     event), which may wake a host once for nothing; fds epoll refuses (regular files), which
 *     libev treats as always ready, never make its fd readable: do not watch those when embedded.
 */
#include <dirent.h>
#include <errno.h>
#include <ev.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "driver.h"

struct libev_state {
  struct ev_loop *ev;
  ev_timer deadline;
  int epoll_fd; /* libev's epoll fd once found for a host (trap f), else -1 */
};

static int libev_probe(char *why, size_t n) {
  if (ev_recommended_backends() == 0) {
    snprintf(why, n, "libev has no usable backend on this system");
    return -ALOOP_EUNAVAIL;
  }
  return 0;
}

static void on_io(struct ev_loop *ev, ev_io *w, int revents) {
  aloop_loop *loop = ev_userdata(ev);
  if (revents & EV_ERROR) {
    aloop__fd_invalid(loop, w->fd, -EBADF);
    return;
  }
  aloop__fd_event(loop, w->fd,
                  ((revents & EV_READ) ? ALOOP__READ : 0) | ((revents & EV_WRITE) ? ALOOP__WRITE : 0));
}

static void on_deadline(struct ev_loop *ev, ev_timer *w, int revents) {
  (void)ev;
  (void)w;
  (void)revents; /* only ends the wait */
}

static int libev_init(aloop_loop *loop, void *state, char *why, size_t n) {
  struct libev_state *s = state;
  /* NOSIGMASK: aloop handles signals itself; libev must not touch the signal mask. */
  s->ev = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOSIGMASK);
  if (!s->ev) {
    snprintf(why, n, "ev_loop_new failed (no backend allowed by LIBEV_FLAGS?)");
    return -ALOOP_EUNAVAIL;
  }
  ev_set_userdata(s->ev, loop);
  ev_init(&s->deadline, on_deadline);
  s->epoll_fd = -1;
  return 0;
}

static void libev_fini(aloop_loop *loop, void *state) {
  (void)loop;
  struct libev_state *s = state;
  if (s->ev) ev_loop_destroy(s->ev);
}

static int libev_watch(aloop_loop *loop, void *state, int fd, void *fd_priv, unsigned old_ev,
                       unsigned new_ev) {
  (void)loop;
  struct libev_state *s = state;
  ev_io *w = fd_priv;
  if (old_ev) ev_io_stop(s->ev, w);
  if (new_ev) {
    ev_io_init(w, on_io, fd,
               ((new_ev & ALOOP__READ) ? EV_READ : 0) | ((new_ev & ALOOP__WRITE) ? EV_WRITE : 0));
    ev_io_start(s->ev, w);
  }
  return 0;
}

static int libev_poll(aloop_loop *loop, void *state, int64_t timeout_ns) {
  struct libev_state *s = state;
  if (timeout_ns == 0) {
    ev_run(s->ev, EVRUN_NOWAIT);
    return 0;
  }
  if (timeout_ns > 0) {
    ev_now_update(s->ev);
    ev_timer_set(&s->deadline, (ev_tstamp)timeout_ns / 1e9, 0.);
    ev_timer_start(s->ev, &s->deadline);
  }
  /* Inside ev_run the watchers' callbacks only note events (callbacks run after poll): the
   * whole run is the wait. */
  bool began = aloop__wait_begin(loop, timeout_ns);
  ev_run(s->ev, EVRUN_ONCE);
  aloop__wait_end(loop, began);
  ev_timer_stop(s->ev, &s->deadline);
  return 0;
}

/* ---- embedding (trap f) ---------------------------------------------------------------------- */

/* Whether epoll instance `epfd` watches the file `fd` with inode `ino`, by its fdinfo lines
 * ("tfd: FD events: ... ino:HEX sdev:..."). */
static bool epoll_lists(int epfd, int fd, ino_t ino) {
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/self/fdinfo/%d", epfd);
  FILE *f = fopen(path, "re");
  if (!f) return false;
  bool found = false;
  while (!found && fgets(line, sizeof line, f)) {
    int tfd;
    const char *at = strstr(line, " ino:");
    if (sscanf(line, "tfd: %d", &tfd) == 1 && tfd == fd && at)
      found = strtoull(at + 5, NULL, 16) == (unsigned long long)ino;
  }
  fclose(f);
  return found;
}

/* The epoll fd of this process that watches `fd` (inode `ino`), or -1. */
static int epoll_fd_watching(int fd, ino_t ino) {
  DIR *dir = opendir("/proc/self/fd");
  if (!dir) return -1;
  int found = -1;
  for (struct dirent *e; found < 0 && (e = readdir(dir));) {
    if (e->d_name[0] == '.') continue;
    char target[64];
    ssize_t n = readlinkat(dirfd(dir), e->d_name, target, sizeof target - 1);
    if (n <= 0) continue;
    target[n] = '\0';
    int candidate = atoi(e->d_name);
    if (!strcmp(target, "anon_inode:[eventpoll]") && epoll_lists(candidate, fd, ino))
      found = candidate;
  }
  closedir(dir);
  return found;
}

static void on_marker(struct ev_loop *ev, ev_io *w, int revents) {
  (void)ev;
  (void)w;
  (void)revents; /* never written: only there to be found */
}

/* Let libev register a private eventfd, then find the epoll instance that lists it. ev_run is
 * what makes libev apply the registration; readiness it finds meanwhile for the core's fds is
 * recorded as in any poll and dispatched by the next iteration. */
static int find_epoll_fd(aloop_loop *loop, struct libev_state *s) {
  int marker = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  struct stat st;
  if (marker < 0) return -errno;
  if (fstat(marker, &st) < 0) {
    int err = -errno;
    close(marker);
    return err;
  }
  ev_io w;
  ev_io_init(&w, on_marker, marker, EV_READ);
  ev_io_start(s->ev, &w);
  ev_run(s->ev, EVRUN_NOWAIT);
  int fd = epoll_fd_watching(marker, st.st_ino);
  ev_io_stop(s->ev, &w);
  close(marker); /* the kernel drops it from the epoll set; libev re-adds the number if reused */
  if (fd < 0) {
    aloop__report(loop, -ALOOP_EUNAVAIL, -1, "libev",
                  "cannot find libev's epoll fd in /proc/self/fdinfo (is /proc mounted?)");
    return -ALOOP_EUNAVAIL;
  }
  return fd;
}

static int libev_backend_fd(aloop_loop *loop, void *state) {
  struct libev_state *s = state;
  if (s->epoll_fd >= 0) return s->epoll_fd;
  if (ev_backend(s->ev) != EVBACKEND_EPOLL) return -ALOOP_EUNAVAIL; /* no fd stands for it */
  int fd = find_epoll_fd(loop, s);
  if (fd >= 0) s->epoll_fd = fd;
  return fd;
}

static const char *libev_detail(aloop_loop *loop, void *state) {
  (void)loop;
  switch (ev_backend(((struct libev_state *)state)->ev)) {
  case EVBACKEND_SELECT: return "select";
  case EVBACKEND_POLL: return "poll";
  case EVBACKEND_EPOLL: return "epoll";
  case EVBACKEND_KQUEUE: return "kqueue";
  case EVBACKEND_DEVPOLL: return "devpoll";
  case EVBACKEND_PORT: return "port";
  default: return "other";
  }
}

const struct aloop__driver aloop__driver_libev = {
    .name = "libev",
    .max_fd = 0,
    .state_size = sizeof(struct libev_state),
    .fd_priv_size = sizeof(ev_io),
    .probe = libev_probe,
    .init = libev_init,
    .fini = libev_fini,
    .watch = libev_watch,
    .poll = libev_poll,
    .detail = libev_detail,
    .backend_fd = libev_backend_fd,
};
