/* Waking the loop from other threads and from signal handlers: one eventfd, watched like any fd on
 * every driver, and a mutex-protected list of calls. The eventfd is written only when wake_pending
 * goes from 0 to 1, so a burst of calls costs one write and one read (as libuv's uv_async). Must
 * stay async-signal-safe on the aloop__wake() path: an atomic exchange and a write(2), nothing else. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "core.h"

void aloop__wake(aloop_loop *loop) {
  if (atomic_exchange_explicit(&loop->wake_pending, 1, memory_order_seq_cst) == 0) {
    uint64_t one = 1;
    int saved = errno; /* may run in a signal handler */
    /* EAGAIN only when the counter is near 2^64: the loop is awake then anyway. */
    ssize_t n = write(loop->wake_fd, &one, sizeof one);
    (void)n;
    errno = saved;
  }
}

int aloop_call_soon_threadsafe(aloop_loop *loop, aloop_cb cb, void *arg) {
  pthread_mutex_lock(&loop->ts_lock);
  if (loop->ts_len == loop->ts_cap) {
    size_t cap = loop->ts_cap ? loop->ts_cap * 2 : 64;
    struct aloop__ts_call *calls = realloc(loop->ts_calls, cap * sizeof *calls);
    if (!calls) {
      pthread_mutex_unlock(&loop->ts_lock);
      return -ENOMEM;
    }
    loop->ts_calls = calls;
    loop->ts_cap = cap;
  }
  loop->ts_calls[loop->ts_len++] = (struct aloop__ts_call){cb, arg};
  pthread_mutex_unlock(&loop->ts_lock);
  aloop__wake(loop);
  return 0;
}

/* Move the calls made from other threads to the ready queue, in the order they were made. */
static void drain_threadsafe_calls(aloop_loop *loop) {
  pthread_mutex_lock(&loop->ts_lock);
  size_t i = 0;
  for (; i < loop->ts_len; i++) {
    struct aloop__handle *h = aloop__handle_new(loop, loop->ts_calls[i].cb, loop->ts_calls[i].arg);
    if (!h) break;
    h->state = H_READY;
    aloop__queue_push(&loop->ready, h);
  }
  /* Out of memory: keep the rest, in order, and come back on the next iteration. */
  loop->ts_len -= i;
  if (loop->ts_len) memmove(loop->ts_calls, loop->ts_calls + i, loop->ts_len * sizeof *loop->ts_calls);
  pthread_mutex_unlock(&loop->ts_lock);
  if (loop->ts_len) aloop__wake(loop);
}

static void on_wake(aloop_loop *loop, int fd, void *arg) {
  (void)arg;
  uint64_t count;
  ssize_t n = read(fd, &count, sizeof count); /* resets the counter; EAGAIN if already drained */
  (void)n;
  /* Clear before draining: a call made after this point raises the flag and writes again.
   * Sequentially consistent: the signal flags read next must not be read before this store
   * (a signal caught on another thread in between would find the flag still set, not write, and
   * be missed); the threadsafe calls are ordered by their mutex anyway. */
  atomic_store_explicit(&loop->wake_pending, 0, memory_order_seq_cst);
  aloop__signals_dispatch(loop);
  drain_threadsafe_calls(loop);
  aloop__executor_drain(loop);
}

int aloop__wakeup_init(aloop_loop *loop) {
  loop->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (loop->wake_fd < 0) return -errno;
  int err = pthread_mutex_init(&loop->ts_lock, NULL);
  if (err) {
    close(loop->wake_fd);
    loop->wake_fd = -1;
    return -err;
  }
  err = aloop__fd_watch_internal(loop, loop->wake_fd, on_wake, NULL);
  if (err < 0) {
    pthread_mutex_destroy(&loop->ts_lock);
    close(loop->wake_fd);
    loop->wake_fd = -1;
  }
  return err;
}

void aloop__wakeup_fini(aloop_loop *loop) {
  if (loop->wake_fd < 0) return;
  close(loop->wake_fd);
  loop->wake_fd = -1;
  pthread_mutex_destroy(&loop->ts_lock);
  free(loop->ts_calls);
  loop->ts_calls = NULL;
  loop->ts_len = loop->ts_cap = 0;
}
