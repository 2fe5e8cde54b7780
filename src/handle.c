/* Scheduled callbacks: the handle pool, the ready queue and timers. Handles are recycled through a
 * free list; they must never be freed one by one, because aloop_cancel() may look at a stale one. */
#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "core.h"

/* Handles per slab: 256 x 56 bytes, about 14 KiB, so a burst of call_soon allocates rarely. */
#define HANDLES_PER_SLAB 256

int64_t aloop__now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t aloop_time(const aloop_loop *loop) {
  (void)loop;
  return aloop__now();
}

void aloop__queue_init(struct aloop__queue *q) {
  q->head = NULL;
  q->tail = &q->head;
  q->len = 0;
}

void aloop__queue_push(struct aloop__queue *q, struct aloop__handle *h) {
  h->next = NULL;
  *q->tail = h;
  q->tail = &h->next;
  q->len++;
}

static int grow_pool(aloop_loop *loop) {
  void **slabs = realloc(loop->slabs, (loop->nslabs + 1) * sizeof *slabs);
  if (!slabs) return -ENOMEM;
  loop->slabs = slabs;
  struct aloop__handle *slab = calloc(HANDLES_PER_SLAB, sizeof *slab);
  if (!slab) return -ENOMEM;
  slabs[loop->nslabs++] = slab;
  for (size_t i = HANDLES_PER_SLAB; i-- > 0;) {
    slab[i].next = loop->free_handles;
    loop->free_handles = &slab[i];
  }
  return 0;
}

struct aloop__handle *aloop__handle_new(aloop_loop *loop, aloop_cb cb, void *arg) {
  if (!loop->free_handles && grow_pool(loop) < 0) return NULL;
  struct aloop__handle *h = loop->free_handles;
  loop->free_handles = h->next;
  h->cb = cb;
  h->arg = arg;
  h->seq = ++loop->next_seq;
  h->next = NULL;
  return h;
}

void aloop__handle_release(aloop_loop *loop, struct aloop__handle *h) {
  h->state = H_FREE;
  h->seq = 0; /* no aloop_handle can match a free slot */
  h->next = loop->free_handles;
  loop->free_handles = h;
}

int aloop__handles_init(aloop_loop *loop) {
  aloop__queue_init(&loop->ready);
  return 0;
}

void aloop__handles_fini(aloop_loop *loop) {
  for (size_t i = 0; i < loop->nslabs; i++) free(loop->slabs[i]);
  free(loop->slabs);
  aloop__heap_free(&loop->timers);
  loop->slabs = NULL;
  loop->nslabs = 0;
  loop->free_handles = NULL;
  aloop__queue_init(&loop->ready);
}

static void give(aloop_handle *out, struct aloop__handle *h) {
  if (out) {
    out->h = h;
    out->seq = h->seq;
  }
}

int aloop_call_soon(aloop_loop *loop, aloop_cb cb, void *arg, aloop_handle *out) {
  struct aloop__handle *h = aloop__handle_new(loop, cb, arg);
  if (!h) return -ENOMEM;
  h->state = H_READY;
  aloop__queue_push(&loop->ready, h);
  give(out, h);
  return 0;
}

int aloop_call_at(aloop_loop *loop, int64_t when_ns, aloop_cb cb, void *arg, aloop_handle *out) {
  struct aloop__handle *h = aloop__handle_new(loop, cb, arg);
  if (!h) return -ENOMEM;
  h->when = when_ns;
  h->state = H_TIMER;
  int err = aloop__heap_push(&loop->timers, h);
  if (err < 0) {
    aloop__handle_release(loop, h);
    return err;
  }
  give(out, h);
  return 0;
}

int aloop_call_later(aloop_loop *loop, int64_t delay_ns, aloop_cb cb, void *arg,
                     aloop_handle *out) {
  if (delay_ns < 0) delay_ns = 0;
  /* A fresh clock reading, not the iteration's: a timer set late in a long callback must still
   * wait its whole delay. A delay past the clock's range means "never": saturate, since a
   * wrapped sum would be a deadline in the past. */
  int64_t now = aloop__now();
  return aloop_call_at(loop, delay_ns > INT64_MAX - now ? INT64_MAX : now + delay_ns, cb, arg, out);
}

int aloop_cancel(aloop_loop *loop, aloop_handle handle) {
  struct aloop__handle *h = handle.h;
  if (!h) return -EINVAL;
  if (h->seq != handle.seq) return -ALOOP_ESTALE;
  switch (h->state) {
  case H_TIMER:
    aloop__heap_remove(&loop->timers, h);
    aloop__handle_release(loop, h);
    return 0;
  case H_READY:
    /* It sits in a queue; it is skipped and recycled when the queue reaches it. */
    h->state = H_CANCELLED;
    return 0;
  default:
    return -ALOOP_ESTALE;
  }
}

void aloop__timers_collect(aloop_loop *loop, int64_t now) {
  struct aloop__handle *h;
  while ((h = aloop__heap_top(&loop->timers)) && h->when <= now) {
    aloop__heap_remove(&loop->timers, h);
    h->state = H_READY;
    aloop__queue_push(&loop->ready, h);
  }
}
