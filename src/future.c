/* Futures and the combinators built only on them (sleep, gather, wait_for). A future never calls
 * back from inside the call that completed it: done-callbacks go through the ready queue. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"

enum { F_PENDING, F_DONE, F_CANCELLED };

struct callback {
  aloop_future_cb cb;
  void *arg;
};

struct aloop_future {
  aloop_loop *loop;
  uint32_t refs;
  uint8_t state;
  bool retrieved, cancel_requested;
  int64_t outcome;
  char *message;
  void *data;
  void (*data_free)(void *);
  const char *origin;
  struct callback *cbs;
  size_t ncbs, cbs_cap;
  struct aloop__future_work work;
};

aloop_future *aloop_future_new(aloop_loop *loop, const char *origin) {
  aloop_future *f = calloc(1, sizeof *f);
  if (!f) return NULL;
  f->loop = loop;
  f->refs = 1;
  f->origin = origin ? origin : "future";
  loop->live_futures++;
  return f;
}

aloop_future *aloop_future_ref(aloop_future *f) {
  f->refs++;
  return f;
}

aloop_loop *aloop_future_loop(const aloop_future *f) { return f->loop; }

void aloop_future_release(aloop_future *f) {
  if (!f || --f->refs > 0) return;
  if (f->state == F_DONE && f->outcome < 0 && !f->retrieved)
    aloop__report(f->loop, (int)f->outcome, -1, f->origin, "error was never retrieved%s%s",
                  f->message ? ": " : "", f->message ? f->message : "");
  if (f->data && f->data_free) f->data_free(f->data);
  f->loop->live_futures--;
  free(f->message);
  free(f->cbs);
  free(f);
}

static void run_callbacks(aloop_loop *loop, void *arg) {
  (void)loop;
  aloop_future *f = arg;
  /* Detached first: a callback may add more (scheduled on their own, since the future is done). */
  struct callback *cbs = f->cbs;
  size_t n = f->ncbs;
  f->cbs = NULL;
  f->ncbs = f->cbs_cap = 0;
  for (size_t i = 0; i < n; i++) cbs[i].cb(f, cbs[i].arg);
  free(cbs);
  aloop_future_release(f);
}

int aloop__future_finish(aloop_future *f, int64_t outcome, const char *message) {
  if (f->state != F_PENDING) return -ALOOP_EDONE;
  f->state = outcome == -ECANCELED ? F_CANCELLED : F_DONE;
  f->outcome = outcome;
  if (message && outcome < 0) f->message = strdup(message);
  f->work.cancel = NULL;
  if (f->ncbs && aloop_call_soon(f->loop, run_callbacks, aloop_future_ref(f), NULL) < 0) {
    aloop__report(f->loop, -ENOMEM, -1, f->origin, "done-callbacks could not be scheduled");
    aloop_future_release(f);
  }
  return 0;
}

int aloop_future_set_result(aloop_future *f, int64_t value) {
  if (value < 0) return -EINVAL;
  return aloop__future_finish(f, value, NULL);
}

int aloop_future_set_error(aloop_future *f, int code, const char *fmt, ...) {
  if (code >= 0) return -EINVAL;
  char message[256];
  if (fmt) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
  }
  return aloop__future_finish(f, code, fmt ? message : NULL);
}

void aloop_future_set_data(aloop_future *f, void *data, void (*free_fn)(void *)) {
  if (f->data && f->data_free && f->data != data) f->data_free(f->data);
  f->data = data;
  f->data_free = free_fn;
}

void *aloop_future_data(const aloop_future *f) { return f->data; }

void *aloop_future_take_data(aloop_future *f) {
  void *data = f->data;
  f->data = NULL;
  f->data_free = NULL;
  return data;
}

void aloop__future_set_work(aloop_future *f, void (*cancel)(aloop_future *, void *), void *arg) {
  f->work = (struct aloop__future_work){cancel, arg};
}

bool aloop__future_cancel_requested(const aloop_future *f) { return f->cancel_requested; }

int aloop_future_cancel(aloop_future *f) {
  if (f->state != F_PENDING) return -ALOOP_EDONE;
  if (f->cancel_requested) return 0;
  f->cancel_requested = true;
  if (f->work.cancel)
    f->work.cancel(f, f->work.arg); /* the work finishes the future when it has stopped */
  else
    aloop__future_finish(f, -ECANCELED, NULL);
  return 0;
}

bool aloop_future_done(const aloop_future *f) { return f->state != F_PENDING; }
bool aloop_future_cancelled(const aloop_future *f) { return f->state == F_CANCELLED; }

int64_t aloop_future_outcome(aloop_future *f) {
  if (f->state == F_PENDING) return -ALOOP_EPENDING;
  f->retrieved = true;
  return f->outcome;
}

const char *aloop_future_message(const aloop_future *f) {
  if (f->message) return f->message;
  return f->state != F_PENDING && f->outcome < 0 ? aloop_strerror((int)f->outcome) : "";
}

int aloop_future_add_done_callback(aloop_future *f, aloop_future_cb cb, void *arg) {
  if (f->state != F_PENDING && f->ncbs == 0) {
    /* Done and its callbacks already ran: this one runs on its own, still never re-entrantly. */
    struct callback *one = malloc(sizeof *one);
    if (!one) return -ENOMEM;
    *one = (struct callback){cb, arg};
    f->cbs = one;
    f->ncbs = f->cbs_cap = 1;
    int err = aloop_call_soon(f->loop, run_callbacks, aloop_future_ref(f), NULL);
    if (err < 0) {
      aloop_future_release(f);
      free(f->cbs);
      f->cbs = NULL;
      f->ncbs = f->cbs_cap = 0;
    }
    return err;
  }
  if (f->ncbs == f->cbs_cap) {
    size_t cap = f->cbs_cap ? f->cbs_cap * 2 : 2;
    struct callback *cbs = realloc(f->cbs, cap * sizeof *cbs);
    if (!cbs) return -ENOMEM;
    f->cbs = cbs;
    f->cbs_cap = cap;
  }
  f->cbs[f->ncbs++] = (struct callback){cb, arg};
  return 0;
}

int aloop_future_remove_done_callback(aloop_future *f, aloop_future_cb cb, void *arg) {
  size_t kept = 0;
  for (size_t i = 0; i < f->ncbs; i++)
    if (f->cbs[i].cb != cb || f->cbs[i].arg != arg) f->cbs[kept++] = f->cbs[i];
  int removed = (int)(f->ncbs - kept);
  f->ncbs = kept;
  return removed;
}

int64_t aloop_run_until_complete(aloop_loop *loop, aloop_future *f) {
  if (loop->running) return -ALOOP_ERUNNING;
  loop->stopping = false;
  while (f->state == F_PENDING) {
    int err = aloop_run_once(loop, -1);
    if (err < 0) return err; /* the driver cannot wait any more: nothing would complete f */
    if (loop->stopping) { /* aloop_stop() from a callback: return now, as asyncio does */
      loop->stopping = false;
      if (f->state == F_PENDING) return -ALOOP_EPENDING;
    }
  }
  return aloop_future_outcome(f);
}

/* ---- sleep ----------------------------------------------------------------------------------- */

struct sleeper {
  aloop_future *f;
  aloop_handle timer;
};

static void wake_sleeper(aloop_loop *loop, void *arg) {
  (void)loop;
  struct sleeper *s = arg;
  aloop__future_finish(s->f, 0, NULL);
  aloop_future_release(s->f);
  free(s);
}

static void cancel_sleeper(aloop_future *f, void *arg) {
  struct sleeper *s = arg;
  aloop_cancel(f->loop, s->timer);
  aloop__future_finish(f, -ECANCELED, NULL);
  aloop_future_release(s->f);
  free(s);
}

aloop_future *aloop_sleep(aloop_loop *loop, int64_t delay_ns) {
  struct sleeper *s = malloc(sizeof *s);
  aloop_future *f = s ? aloop_future_new(loop, "sleep") : NULL;
  if (!f || aloop_call_later(loop, delay_ns, wake_sleeper, s, &s->timer) < 0) {
    if (f) aloop_future_release(f);
    free(s);
    return NULL;
  }
  s->f = aloop_future_ref(f);
  aloop__future_set_work(f, cancel_sleeper, s);
  return f;
}

/* ---- gather ---------------------------------------------------------------------------------- */

struct gather {
  aloop_future *out;
  size_t n, pending;
  aloop_future *items[];
};

static void gather_item_done(aloop_future *item, void *arg) {
  (void)item;
  struct gather *g = arg;
  if (--g->pending > 0) return;
  int64_t outcome = (int64_t)g->n;
  const char *message = NULL;
  for (size_t i = 0; i < g->n; i++) { /* every item's outcome is looked at: all are retrieved */
    aloop_future *it = g->items[i];
    /* Not done: an item that could not be watched for want of memory (see aloop_gather). */
    int64_t o = aloop_future_done(it) ? aloop_future_outcome(it) : -ENOMEM;
    if (o < 0 && outcome >= 0) outcome = o, message = aloop_future_done(it) ? it->message : NULL;
  }
  if (outcome >= 0 && aloop__future_cancel_requested(g->out)) outcome = -ECANCELED;
  aloop__future_finish(g->out, outcome, message);
  for (size_t i = 0; i < g->n; i++) aloop_future_release(g->items[i]);
  aloop_future_release(g->out);
  free(g);
}

static void cancel_gather(aloop_future *f, void *arg) {
  (void)f;
  struct gather *g = arg;
  for (size_t i = 0; i < g->n; i++) aloop_future_cancel(g->items[i]);
}

aloop_future *aloop_gather(aloop_loop *loop, aloop_future *const *futures, size_t n) {
  aloop_future *out = aloop_future_new(loop, "gather");
  struct gather *g = out ? malloc(sizeof *g + n * sizeof g->items[0]) : NULL;
  if (!g) {
    if (out) aloop_future_release(out);
    return NULL;
  }
  if (n == 0) {
    free(g);
    aloop__future_finish(out, 0, NULL);
    return out;
  }
  g->out = aloop_future_ref(out);
  g->n = g->pending = n;
  for (size_t i = 0; i < n; i++) g->items[i] = aloop_future_ref(futures[i]);
  for (size_t i = 0; i < n; i++) {
    if (aloop_future_add_done_callback(g->items[i], gather_item_done, g) < 0) {
      /* Treat it as done now: the gather must still finish once the others are. */
      aloop__report(loop, -ENOMEM, -1, "gather", "cannot watch item %zu", i);
      gather_item_done(g->items[i], g);
    }
  }
  aloop__future_set_work(out, cancel_gather, g);
  return out;
}

/* ---- wait_for -------------------------------------------------------------------------------- */

struct waiter {
  aloop_future *out, *inner;
  aloop_handle timer;
  bool timed_out;
};

static void waiter_inner_done(aloop_future *inner, void *arg) {
  struct waiter *w = arg;
  int64_t o = aloop_future_outcome(inner);
  if (!w->timed_out) aloop_cancel(inner->loop, w->timer);
  if (w->timed_out && o == -ECANCELED) o = -ETIMEDOUT;
  aloop__future_finish(w->out, o, o < 0 && o != -ETIMEDOUT ? inner->message : NULL);
  aloop_future_release(w->inner);
  aloop_future_release(w->out);
  free(w);
}

static void waiter_timeout(aloop_loop *loop, void *arg) {
  (void)loop;
  struct waiter *w = arg;
  w->timed_out = true;
  aloop_future_cancel(w->inner); /* the outcome is given when the cancellation completed */
}

static void cancel_waiter(aloop_future *f, void *arg) {
  struct waiter *w = arg;
  aloop_cancel(f->loop, w->timer);
  aloop_future_cancel(w->inner);
}

aloop_future *aloop_wait_for(aloop_loop *loop, aloop_future *inner, int64_t timeout_ns) {
  struct waiter *w = calloc(1, sizeof *w);
  aloop_future *out = w ? aloop_future_new(loop, "wait_for") : NULL;
  if (!out || aloop_call_later(loop, timeout_ns, waiter_timeout, w, &w->timer) < 0) {
    if (out) aloop_future_release(out);
    free(w);
    return NULL;
  }
  w->out = aloop_future_ref(out);
  w->inner = aloop_future_ref(inner);
  if (aloop_future_add_done_callback(inner, waiter_inner_done, w) < 0) {
    aloop_cancel(loop, w->timer);
    aloop_future_release(w->inner);
    aloop_future_release(w->out);
    aloop_future_release(out);
    free(w);
    return NULL;
  }
  aloop__future_set_work(out, cancel_waiter, w);
  return out;
}
