/* Readers and writers: the per-fd table, the change list the driver is told from, and dispatch of
 * the readiness the driver reported. The driver hears about interest once per iteration (so adding
 * and removing a watcher within one iteration costs it nothing); callbacks never run inside the
 * driver's poll. */
#include <errno.h>
#include <stdalign.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core.h"

static size_t align_up(size_t n, size_t a) { return (n + a - 1) / a * a; }

int aloop__fds_init(aloop_loop *loop) {
  loop->fds.stride = align_up(sizeof(struct aloop__fd), alignof(max_align_t)) +
                     align_up(loop->drv->fd_priv_size, alignof(max_align_t));
  return 0;
}

void aloop__fds_fini(aloop_loop *loop) {
  struct aloop__fd_table *t = &loop->fds;
  for (size_t i = 0; i < t->nchunks; i++) free(t->chunks[i]);
  free(t->chunks);
  free(t->changes);
  free(t->pending);
  memset(t, 0, sizeof *t);
}

/* The record for fd, or NULL if none was ever created. */
static struct aloop__fd *fd_find(aloop_loop *loop, int fd) {
  struct aloop__fd_table *t = &loop->fds;
  size_t c = (size_t)fd / ALOOP__FD_CHUNK;
  if (fd < 0 || c >= t->nchunks || !t->chunks[c]) return NULL;
  return (struct aloop__fd *)(t->chunks[c] + ((size_t)fd % ALOOP__FD_CHUNK) * t->stride);
}

struct aloop__fd *aloop__fd_record(aloop_loop *loop, int fd) {
  struct aloop__fd_table *t = &loop->fds;
  size_t c = (size_t)fd / ALOOP__FD_CHUNK;
  if (c >= t->nchunks) {
    size_t n = t->nchunks ? t->nchunks : 4;
    while (n <= c) n *= 2;
    unsigned char **chunks = realloc(t->chunks, n * sizeof *chunks);
    if (!chunks) return NULL;
    memset(chunks + t->nchunks, 0, (n - t->nchunks) * sizeof *chunks);
    t->chunks = chunks;
    t->nchunks = n;
  }
  if (!t->chunks[c] && !(t->chunks[c] = calloc(ALOOP__FD_CHUNK, t->stride))) return NULL;
  return fd_find(loop, fd);
}

void *aloop__fd_priv(aloop_loop *loop, int fd) {
  struct aloop__fd *f = fd_find(loop, fd);
  return f ? (unsigned char *)f + align_up(sizeof *f, alignof(max_align_t)) : NULL;
}

static int push_fd(int **arr, size_t *len, size_t *cap, int fd) {
  if (*len == *cap) {
    size_t n = *cap ? *cap * 2 : 64;
    int *a = realloc(*arr, n * sizeof *a);
    if (!a) return -ENOMEM;
    *arr = a;
    *cap = n;
  }
  (*arr)[(*len)++] = fd;
  return 0;
}

/* Record the interest fd should have now; the driver is told before the next poll, so interest
 * that drops and comes back within one iteration (a task's next recv parked right after the last
 * one completed) costs the driver nothing. */
int aloop__fd_update_interest(aloop_loop *loop, int fd, struct aloop__fd *f, bool forget) {
  unsigned events = (f->reader || f->read_ops.head ? ALOOP__READ : 0) |
                    (f->writer || f->write_ops.head ? ALOOP__WRITE : 0);
  f->revents &= events; /* readiness for a removed watcher must not reach a new one */
  f->events = (uint8_t)events;
  /* After a watcher is removed the caller may close the fd and get the same number back for
   * another file before the driver hears of it. epoll and io_uring would still hold the old file,
   * so the driver must forget the fd before it learns the new interest, even if that interest
   * looks unchanged. (Operations finishing do not imply a close: aloop_close says so.) */
  if (forget && !events && f->registered) f->forget = true;
  if (f->in_changes || (f->events == f->registered && !f->forget)) return 0;
  struct aloop__fd_table *t = &loop->fds;
  int err = push_fd(&t->changes, &t->nchanges, &t->changes_cap, fd);
  if (err == 0) f->in_changes = true;
  return err;
}

static void count_user(aloop_loop *loop, struct aloop__fd *f, bool had) {
  bool has = !f->internal && (f->reader || f->writer);
  if (has && !had) loop->fds.user_fds++;
  if (!has && had) loop->fds.user_fds--;
}

static int add_watcher(aloop_loop *loop, int fd, unsigned which, aloop_io_cb cb, void *arg) {
  if (fd < 0 || !cb) return fd < 0 ? -EBADF : -EINVAL;
  if (loop->drv->max_fd && fd >= loop->drv->max_fd) return -ALOOP_EFDLIMIT;
  struct aloop__fd *f = aloop__fd_record(loop, fd);
  if (!f) return -ENOMEM;
  aloop_io_cb old_cb = which == ALOOP__READ ? f->reader : f->writer;
  bool had = !f->internal && (f->reader || f->writer);
  if (which == ALOOP__READ) {
    f->reader = cb;
    f->reader_arg = arg;
  } else {
    f->writer = cb;
    f->writer_arg = arg;
  }
  int err = aloop__fd_update_interest(loop, fd, f, true);
  if (err < 0) {
    if (which == ALOOP__READ)
      f->reader = old_cb;
    else
      f->writer = old_cb;
    aloop__fd_update_interest(loop, fd, f, true); /* back to the old interest, which needs no new change entry */
    return err;
  }
  count_user(loop, f, had);
  return 0;
}

static int remove_watcher(aloop_loop *loop, int fd, unsigned which) {
  struct aloop__fd *f = fd_find(loop, fd);
  if (!f || f->internal) return 0;
  aloop_io_cb *slot = which == ALOOP__READ ? &f->reader : &f->writer;
  if (!*slot) return 0;
  bool had = f->reader || f->writer;
  *slot = NULL;
  /* Removing interest never needs memory when the fd is already in the change list; when it is
   * not and the list cannot grow, the driver keeps the interest and dispatch ignores it. */
  aloop__fd_update_interest(loop, fd, f, true);
  count_user(loop, f, had);
  return 1;
}

int aloop_add_reader(aloop_loop *loop, int fd, aloop_io_cb cb, void *arg) {
  return add_watcher(loop, fd, ALOOP__READ, cb, arg);
}
int aloop_add_writer(aloop_loop *loop, int fd, aloop_io_cb cb, void *arg) {
  return add_watcher(loop, fd, ALOOP__WRITE, cb, arg);
}
int aloop_remove_reader(aloop_loop *loop, int fd) { return remove_watcher(loop, fd, ALOOP__READ); }
int aloop_remove_writer(aloop_loop *loop, int fd) { return remove_watcher(loop, fd, ALOOP__WRITE); }

static void drop_watchers(aloop_loop *loop, int fd, struct aloop__fd *f) {
  bool had = !f->internal && (f->reader || f->writer);
  f->reader = f->writer = NULL;
  f->internal = false;
  aloop__fd_update_interest(loop, fd, f, true);
  count_user(loop, f, had);
}

int aloop_close(aloop_loop *loop, int fd) {
  struct aloop__fd *f = fd_find(loop, fd);
  if (f) {
    aloop__ops_fail(loop, fd, f, -ECANCELED);
    drop_watchers(loop, fd, f); /* and the driver forgets the fd before its number comes back */
  }
  aloop__ops_cancel_native(loop, fd);
  return close(fd) < 0 ? -errno : 0;
}

int aloop__fd_watch_internal(aloop_loop *loop, int fd, aloop_io_cb reader, void *arg) {
  struct aloop__fd *f = aloop__fd_record(loop, fd);
  if (!f) return -ENOMEM;
  f->internal = true; /* before adding: the loop's own fds are not counted as the user's */
  return add_watcher(loop, fd, ALOOP__READ, reader, arg);
}

void aloop__fd_unwatch_internal(aloop_loop *loop, int fd) {
  struct aloop__fd *f = fd_find(loop, fd);
  if (!f || !f->internal) return;
  f->reader = NULL;
  f->internal = false;
  aloop__fd_update_interest(loop, fd, f, true);
}


void aloop__fds_apply_changes(aloop_loop *loop) {
  struct aloop__fd_table *t = &loop->fds;
  /* By index: dropping a watcher after a failure appends to this very list. */
  for (size_t i = 0; i < t->nchanges; i++) {
    int fd = t->changes[i];
    struct aloop__fd *f = fd_find(loop, fd);
    f->in_changes = false;
    if (f->forget) {
      f->forget = false;
      int err = loop->drv->watch(loop, loop->drv_state, fd, aloop__fd_priv(loop, fd), f->registered, 0);
      if (err < 0) aloop__report(loop, err, fd, loop->drv->name, "cannot stop watching fd %d", fd);
      f->registered = 0;
    }
    if (f->events == f->registered) continue;
    int err = loop->drv->watch(loop, loop->drv_state, fd, aloop__fd_priv(loop, fd), f->registered,
                               f->events);
    if (err == 0 || f->events == 0) {
      if (err < 0) aloop__report(loop, err, fd, loop->drv->name, "cannot stop watching fd %d", fd);
      f->registered = f->events;
      continue;
    }
    aloop__report(loop, err, fd, loop->drv->name,
                  "cannot watch fd %d; its reader and writer were removed", fd);
    aloop__ops_fail(loop, fd, f, err);
    drop_watchers(loop, fd, f); /* if the driver held any interest: "forget it", later in this loop */
  }
  t->nchanges = 0;
}

void aloop__fd_event(aloop_loop *loop, int fd, unsigned revents) {
  struct aloop__fd *f = fd_find(loop, fd);
  if (!f) return;
  revents &= f->events;
  if (!revents) return;
  f->revents |= (uint8_t)revents;
  if (f->in_pending) return;
  struct aloop__fd_table *t = &loop->fds;
  /* Out of memory here: leave the event; a level-triggered driver reports it again next poll. */
  if (push_fd(&t->pending, &t->npending, &t->pending_cap, fd) == 0) f->in_pending = true;
}

void aloop__fd_invalid(aloop_loop *loop, int fd, int err) {
  struct aloop__fd *f = fd_find(loop, fd);
  if (!f) return;
  aloop__ops_fail(loop, fd, f, err);
  if (!(f->reader || f->writer)) return;
  aloop__report(loop, err, fd, loop->drv->name,
                "fd %d was closed while watched; its reader and writer were removed", fd);
  drop_watchers(loop, fd, f);
}

void aloop__fds_dispatch(aloop_loop *loop) {
  struct aloop__fd_table *t = &loop->fds;
  for (size_t i = 0; i < t->npending; i++) {
    struct aloop__fd *f = fd_find(loop, t->pending[i]);
    unsigned ev = f->revents;
    f->revents = 0;
    f->in_pending = false;
    int fd = t->pending[i];
    /* Parked operations first (they were waiting for exactly this), then the watchers, each
     * re-checked just before it runs: an earlier callback may have removed it. */
    if ((ev & ALOOP__READ) && f->read_ops.head) aloop__ops_ready(loop, fd, f, ALOOP__READ);
    if ((ev & ALOOP__WRITE) && f->write_ops.head) aloop__ops_ready(loop, fd, f, ALOOP__WRITE);
    if ((ev & ALOOP__READ) && f->reader) f->reader(loop, fd, f->reader_arg);
    if ((ev & ALOOP__WRITE) && f->writer) f->writer(loop, fd, f->writer_arg);
  }
  t->npending = 0;
}
