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
 */
#include <errno.h>
#include <ev.h>
#include <stdio.h>
#include <string.h>

#include "driver.h"

struct libev_state {
  struct ev_loop *ev;
  ev_timer deadline;
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
  (void)loop;
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
  ev_run(s->ev, EVRUN_ONCE);
  ev_timer_stop(s->ev, &s->deadline);
  return 0;
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
};
