/* The loop: creation, the iteration, run/stop. One iteration is
 *   tell the driver what changed -> poll once -> I/O callbacks -> due timers join the ready queue ->
 *   run the ready queue as it stood (callbacks scheduled meanwhile wait for the next iteration).
 * The timeout is 0 when anything is ready, else the earliest deadline (drivers round it up, so a
 * timer is never found early), else "until woken". */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"

/* A driver that queues requests and hands them to the kernel at its next poll (io_uring) gets
 * them flushed this often during a long round of callbacks: an answer written by an early
 * callback must not wait for a round of slow ones (an application computing for each request)
 * to end. A round of quick callbacks never gets this far, so batching is kept. */
enum { FLUSH_AFTER_NS = 1000 * 1000 };

/* Run the ready queue as it is now; what the callbacks schedule goes to a fresh queue. */
static int run_ready(aloop_loop *loop) {
  struct aloop__handle *h = loop->ready.head;
  aloop__queue_init(&loop->ready);
  int ran = 0;
  bool flushes = loop->drv->flush && h && h->next; /* one callback: the poll follows at once */
  int64_t flush_at = flushes ? aloop__now() + FLUSH_AFTER_NS : 0;
  while (h) {
    struct aloop__handle *next = h->next;
    aloop_cb cb = h->cb;
    void *arg = h->arg;
    bool cancelled = h->state == H_CANCELLED;
    aloop__handle_release(loop, h); /* before the call: cancelling itself answers "stale" */
    if (!cancelled) {
      cb(loop, arg);
      ran++;
      if (flushes && next) {
        int64_t now = aloop__now();
        if (now >= flush_at) {
          loop->drv->flush(loop, loop->drv_state);
          flush_at = now + FLUSH_AFTER_NS;
        }
      }
    }
    h = next;
  }
  return ran;
}

/* Nanoseconds until the earliest timer is due (0 if it is), or -1 without timers. */
static int64_t until_first_timer(aloop_loop *loop) {
  struct aloop__handle *first = aloop__heap_top(&loop->timers);
  if (!first) return -1;
  int64_t wait = first->when - aloop__now();
  return wait < 0 ? 0 : wait;
}

static int64_t poll_timeout(aloop_loop *loop, int64_t max_wait) {
  int64_t timeout = loop->ready.len || loop->stopping ? 0 : until_first_timer(loop);
  if (max_wait >= 0 && (timeout < 0 || timeout > max_wait)) timeout = max_wait;
  return timeout;
}

/* The host's wait hooks (aloop_set_wait_hooks), for the drivers: around the one system call of a
 * poll that may block (timeout not 0), and nothing else. A host that holds a lock while aloop's
 * callbacks run (Python's interpreter lock) must let go of it while aloop sleeps, or its other
 * threads stop for as long as the loop waits; but a driver's poll also runs callbacks (io_uring
 * completes operations, which call protocols, inside it), and those need the lock. */
bool aloop__wait_begin(aloop_loop *loop, int64_t timeout_ns) {
  if (timeout_ns == 0 || !loop->wait_before) return false;
  loop->wait_before(loop->wait_arg);
  return true;
}

void aloop__wait_end(aloop_loop *loop, bool began) {
  if (began) loop->wait_after(loop->wait_arg);
}

void aloop_set_wait_hooks(aloop_loop *loop, void (*before)(void *arg), void (*after)(void *arg),
                          void *arg) {
  bool both = before && after; /* one without the other could leave a lock taken or lost */
  loop->wait_before = both ? before : NULL;
  loop->wait_after = both ? after : NULL;
  loop->wait_arg = both ? arg : NULL;
}

/* One iteration: the number of callbacks run, or the driver's poll error. A driver returns an
 * error only when waiting cannot work now or later (transient conditions it absorbs), so the
 * loop stops instead of spinning on it; the driver may already have said why in words, else it
 * is reported here, once. */
static int iterate(aloop_loop *loop, int64_t max_wait) {
  loop->iterations++;
  aloop__fds_apply_changes(loop);
  uint64_t errors = loop->errors;
  int err = loop->drv->poll(loop, loop->drv_state, poll_timeout(loop, max_wait));
  if (err < 0) {
    if (loop->errors == errors && !loop->poll_failed)
      aloop__report(loop, err, -1, loop->drv->name, "waiting for events failed; the loop stops");
    loop->poll_failed = true;
    return err;
  }
  aloop__fds_dispatch(loop);
  aloop__timers_collect(loop, aloop__now());
  return run_ready(loop);
}

int aloop_run(aloop_loop *loop) {
  if (loop->running) return -ALOOP_ERUNNING;
  loop->running = true;
  int err = 0;
  do {
    err = iterate(loop, -1);
  } while (!loop->stopping && err >= 0);
  loop->stopping = false;
  loop->running = false;
  return err < 0 ? err : 0;
}

int aloop_run_once(aloop_loop *loop, int64_t timeout_ns) {
  if (loop->running) return -ALOOP_ERUNNING;
  loop->running = true;
  int ran = iterate(loop, timeout_ns < 0 ? -1 : timeout_ns);
  loop->running = false;
  return ran; /* a stop requested meanwhile is left for the caller: aloop_run or run_until_complete */
}

void aloop_stop(aloop_loop *loop) { loop->stopping = true; }

/* ---- embedding: a host loop sleeps on the backend fd for at most the backend timeout --------- */

bool aloop__embedded(const aloop_loop *loop) { return loop->embedded; }

int aloop_backend_fd(aloop_loop *loop) {
  if (!loop->drv->backend_fd) return -ALOOP_EUNAVAIL;
  return loop->drv->backend_fd(loop, loop->drv_state);
}

/* Whether the backend fd cannot yet speak for everything aloop waits for: interest changes made
 * by callbacks reach the driver only in the next iteration, readiness recorded but not yet
 * dispatched, a wake-up whose eventfd the driver may not be watching again yet (io_uring re-arms
 * its one-shot polls in the next iteration), requests the driver has not submitted. */
static bool must_not_sleep(aloop_loop *loop) {
  if (loop->ready.len || loop->fds.nchanges || loop->fds.npending || loop->poll_failed) return true;
  if (atomic_load_explicit(&loop->wake_pending, memory_order_seq_cst)) return true;
  return loop->drv->holds_requests && loop->drv->holds_requests(loop, loop->drv_state);
}

int64_t aloop_backend_timeout(aloop_loop *loop) {
  return must_not_sleep(loop) ? 0 : until_first_timer(loop);
}

const char *aloop_backend_name(const aloop_loop *loop) { return loop->drv->name; }

const char *aloop_backend_detail(const aloop_loop *loop) {
  const char *d = loop->drv->detail ? loop->drv->detail((aloop_loop *)loop, loop->drv_state) : NULL;
  return d ? d : "";
}

void aloop_get_stats(const aloop_loop *loop, aloop_stats *out) {
  *out = (aloop_stats){
      .ready = loop->ready.len,
      .timers = loop->timers.len - (loop->report_timer_armed ? 1 : 0),
      .fds = loop->fds.user_fds,
      .signals = loop->nsignals,
      .iterations = loop->iterations,
      .errors = loop->errors,
      .futures = loop->live_futures,
      .tasks = loop->live_tasks,
      .ops = loop->live_ops,
  };
}

/* Copy what the caller's version of the struct has; newer fields stay zero. */
static int read_options(const aloop_options *opts, aloop_options *o) {
  memset(o, 0, sizeof *o);
  if (!opts) return 0;
  if (opts->size < offsetof(aloop_options, backend) + sizeof opts->backend) return -EINVAL;
  memcpy(o, opts, opts->size < sizeof *o ? opts->size : sizeof *o);
  return 0;
}

static void free_loop(aloop_loop *loop) {
  aloop__executor_fini(loop); /* first: its threads may still wake the loop */
  aloop__reports_fini(loop);
  aloop__tasks_fini(loop);
  aloop__signals_fini(loop);
  aloop__driver_stop(loop);
  aloop__wakeup_fini(loop);
  aloop__fds_fini(loop);
  aloop__handles_fini(loop);
  free(loop->read_buf);
  while (loop->nspare_chunks) free(loop->spare_chunks[--loop->nspare_chunks]);
  free(loop);
}

aloop_loop *aloop_new(const aloop_options *opts) {
  aloop_options o;
  if (read_options(opts, &o) < 0) {
    errno = EINVAL;
    return NULL;
  }
  const char *name = o.backend;
  if (!name || !*name) name = getenv("ALOOP_BACKEND");
  if (!name || !*name) name = "auto";

  aloop_loop *loop = calloc(1, sizeof *loop);
  if (!loop) {
    aloop__set_why(o.error, o.error_size, "out of memory");
    errno = ENOMEM;
    return NULL;
  }
  loop->wake_fd = -1;
  loop->embedded = o.embedded != 0; /* before the driver starts: it may set up differently */
  aloop_set_error_handler(loop, NULL, NULL);
  loop->report_interval = ALOOP_REPORT_INTERVAL_DEFAULT;
  aloop__handles_init(loop);
  int err = aloop__driver_start(loop, name, o.error, o.error_size);
  if (err == 0) err = aloop__fds_init(loop);
  if (err == 0 && (err = aloop__wakeup_init(loop)) < 0)
    aloop__set_why(o.error, o.error_size, "cannot create the wake-up eventfd: %s",
                   aloop_strerror(err));
  if (err < 0) {
    free_loop(loop);
    errno = -err;
    return NULL;
  }
  return loop;
}

int aloop_free(aloop_loop *loop) {
  if (!loop) return 0;
  if (loop->running) return -ALOOP_ERUNNING;
  free_loop(loop);
  return 0;
}
