/* An asyncio.Queue for tasks: a ring of pointers, with waiting getters and putters as futures. An
 * item goes straight to the first waiting getter when there is one, so a waiter never finds the
 * queue emptied behind its back. */
#include <errno.h>
#include <stdlib.h>

#include "core.h"

struct waiter {
  aloop_future *future;
  void *item;   /* putters: what they put */
  aloop_queue *queue;
  bool getter;
  struct waiter *next, **prev;
};

struct aloop_queue {
  aloop_loop *loop;
  size_t maxsize, len, cap, head;
  void **ring;
  struct waiter *getters, **getters_tail, *putters, **putters_tail;
};

aloop_queue *aloop_queue_new(aloop_loop *loop, size_t maxsize) {
  aloop_queue *q = calloc(1, sizeof *q);
  if (!q) return NULL;
  q->loop = loop;
  q->maxsize = maxsize;
  q->getters_tail = &q->getters;
  q->putters_tail = &q->putters;
  return q;
}

size_t aloop_queue_size(const aloop_queue *q) { return q->len; }

static void link_waiter(struct waiter *w, struct waiter ***tail) {
  w->next = NULL;
  w->prev = *tail;
  **tail = w;
  *tail = &w->next;
}

static void unlink_waiter(struct waiter *w, struct waiter ***tail) {
  *w->prev = w->next;
  if (w->next)
    w->next->prev = w->prev;
  else
    *tail = w->prev;
}

static void finish_waiter(struct waiter *w, int64_t outcome) {
  aloop__future_finish(w->future, outcome, NULL);
  aloop_future_release(w->future);
  free(w);
}

static int push(aloop_queue *q, void *item) {
  if (q->len == q->cap) {
    size_t cap = q->cap ? q->cap * 2 : 16;
    void **ring = malloc(cap * sizeof *ring);
    if (!ring) return -ENOMEM;
    for (size_t i = 0; i < q->len; i++) ring[i] = q->ring[(q->head + i) % q->cap];
    free(q->ring);
    q->ring = ring;
    q->cap = cap;
    q->head = 0;
  }
  q->ring[(q->head + q->len++) % q->cap] = item;
  return 0;
}

static void *pop(aloop_queue *q) {
  void *item = q->ring[q->head];
  q->head = (q->head + 1) % q->cap;
  q->len--;
  return item;
}

static bool full(const aloop_queue *q) { return q->maxsize && q->len >= q->maxsize; }

int aloop_queue_try_put(aloop_queue *q, void *item) {
  if (q->getters) { /* hand it over: the queue stays empty */
    struct waiter *g = q->getters;
    unlink_waiter(g, &q->getters_tail);
    aloop_future_set_data(g->future, item, NULL);
    finish_waiter(g, 0);
    return 0;
  }
  return full(q) ? -EAGAIN : push(q, item);
}

int aloop_queue_try_get(aloop_queue *q, void **item) {
  if (!q->len) return -EAGAIN;
  *item = pop(q);
  if (q->putters) { /* room for the first waiting putter's item */
    struct waiter *p = q->putters;
    unlink_waiter(p, &q->putters_tail);
    push(q, p->item); /* cannot fail: a slot was just freed */
    finish_waiter(p, 0);
  }
  return 0;
}

static void cancel_waiter(aloop_future *f, void *arg) {
  struct waiter *w = arg;
  aloop_queue *q = w->queue;
  (void)f;
  unlink_waiter(w, w->getter ? &q->getters_tail : &q->putters_tail);
  finish_waiter(w, -ECANCELED);
}

static aloop_future *wait_on(aloop_queue *q, bool getter, void *item, const char *origin) {
  struct waiter ***tail = getter ? &q->getters_tail : &q->putters_tail;
  aloop_future *f = aloop_future_new(q->loop, origin);
  struct waiter *w = f ? calloc(1, sizeof *w) : NULL;
  if (!w) {
    if (f) aloop_future_release(f);
    return NULL;
  }
  w->future = aloop_future_ref(f);
  w->item = item;
  w->queue = q;
  w->getter = getter;
  link_waiter(w, tail);
  aloop__future_set_work(f, cancel_waiter, w);
  return f;
}

static aloop_future *done_future(aloop_loop *loop, const char *origin, int64_t outcome, void *data) {
  aloop_future *f = aloop_future_new(loop, origin);
  if (!f) return NULL;
  aloop_future_set_data(f, data, NULL);
  aloop__future_finish(f, outcome, NULL);
  return f;
}

aloop_future *aloop_queue_put(aloop_queue *q, void *item) {
  int err = aloop_queue_try_put(q, item);
  if (err == -EAGAIN) return wait_on(q, false, item, "queue_put");
  return done_future(q->loop, "queue_put", err, NULL);
}

aloop_future *aloop_queue_get(aloop_queue *q) {
  void *item;
  if (aloop_queue_try_get(q, &item) == 0) return done_future(q->loop, "queue_get", 0, item);
  return wait_on(q, true, NULL, "queue_get");
}

void aloop_queue_free(aloop_queue *q) {
  if (!q) return;
  while (q->getters) aloop_future_cancel(q->getters->future);
  while (q->putters) aloop_future_cancel(q->putters->future);
  free(q->ring);
  free(q);
}
