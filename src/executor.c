/* The executor: a small thread pool for blocking calls (getaddrinfo, file I/O), as asyncio's
 * run_in_executor. Workers never touch the loop except through its wake-up: finished jobs go on a
 * mutex-protected list that the loop drains on its own thread, where the futures are completed. */
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"

struct aloop__executor {
  pthread_mutex_t lock;
  pthread_cond_t work;
  struct aloop__job *queued, **queued_tail, *finished;
  pthread_t threads[ALOOP_EXECUTOR_THREADS];
  int nthreads, idle;
  bool stopping;
  aloop_loop *loop;
};

static void *worker(void *arg) {
  struct aloop__executor *ex = arg;
  pthread_mutex_lock(&ex->lock);
  for (;;) {
    while (!ex->queued && !ex->stopping) {
      ex->idle++;
      pthread_cond_wait(&ex->work, &ex->lock);
      ex->idle--;
    }
    if (ex->stopping) break;
    struct aloop__job *job = ex->queued;
    ex->queued = job->next;
    if (!ex->queued) ex->queued_tail = &ex->queued;
    job->started = true;
    pthread_mutex_unlock(&ex->lock);
    job->result = job->fn(job->arg);
    pthread_mutex_lock(&ex->lock);
    job->next = ex->finished;
    ex->finished = job;
    aloop__wake(ex->loop);
  }
  pthread_mutex_unlock(&ex->lock);
  return NULL;
}

static struct aloop__executor *executor(aloop_loop *loop) {
  if (loop->executor) return loop->executor;
  struct aloop__executor *ex = calloc(1, sizeof *ex);
  if (!ex) return NULL;
  pthread_mutex_init(&ex->lock, NULL);
  pthread_cond_init(&ex->work, NULL);
  ex->queued_tail = &ex->queued;
  ex->loop = loop;
  return loop->executor = ex;
}

static void free_job(struct aloop__job *job) {
  if (job->finished) { /* the core's own job, never finished: its owner frees it */
    if (job->cleanup) job->cleanup(job);
    return;
  }
  aloop_future_release(job->future);
  if (job->cleanup) job->cleanup(job);
  free(job);
}

static void finish_job(struct aloop__job *job) {
  if (job->finished) { /* the core's own job (op.c): its owner takes it back */
    job->finished(job);
    return;
  }
  if (!aloop_future_done(job->future)) { /* a job cancelled while running is dropped here */
    if (job->complete)
      job->complete(job);
    else
      aloop__future_finish(job->future, job->result, NULL);
  }
  free_job(job);
}

void aloop__executor_drain(aloop_loop *loop) {
  struct aloop__executor *ex = loop->executor;
  if (!ex) return;
  pthread_mutex_lock(&ex->lock);
  struct aloop__job *done = ex->finished;
  ex->finished = NULL;
  pthread_mutex_unlock(&ex->lock);
  /* The list is newest first: restore the order the jobs finished in. */
  struct aloop__job *ordered = NULL;
  while (done) {
    struct aloop__job *next = done->next;
    done->next = ordered;
    ordered = done;
    done = next;
  }
  while (ordered) {
    struct aloop__job *next = ordered->next;
    finish_job(ordered);
    ordered = next;
  }
}

/* Queue job, starting a thread if none is idle. Returns how many threads the pool has: 0 means
 * the job would wait forever (not even one thread could start). */
static int enqueue(struct aloop__executor *ex, struct aloop__job *job) {
  pthread_mutex_lock(&ex->lock);
  job->next = NULL;
  *ex->queued_tail = job;
  ex->queued_tail = &job->next;
  if (ex->idle == 0 && ex->nthreads < ALOOP_EXECUTOR_THREADS &&
      pthread_create(&ex->threads[ex->nthreads], NULL, worker, ex) == 0)
    ex->nthreads++;
  pthread_cond_signal(&ex->work);
  int nthreads = ex->nthreads;
  pthread_mutex_unlock(&ex->lock);
  return nthreads;
}

/* Take job off the queue if no thread has started it; whether it was. */
static bool unqueue(struct aloop__executor *ex, struct aloop__job *job) {
  pthread_mutex_lock(&ex->lock);
  bool unlinked = false;
  if (!job->started) {
    for (struct aloop__job **p = &ex->queued; *p; p = &(*p)->next) {
      if (*p != job) continue;
      *p = job->next;
      if (!*p) ex->queued_tail = p;
      unlinked = true;
      break;
    }
  }
  pthread_mutex_unlock(&ex->lock);
  return unlinked;
}

static void cancel_job(aloop_future *f, void *arg) {
  struct aloop__job *job = arg;
  bool unlinked = unqueue(aloop_future_loop(f)->executor, job);
  aloop__future_finish(f, -ECANCELED, NULL); /* running: its result is dropped when it comes */
  if (unlinked) free_job(job);
}

static aloop_future *submit(aloop_loop *loop, struct aloop__job *job, const char *origin) {
  struct aloop__executor *ex = executor(loop);
  aloop_future *f = ex ? aloop_future_new(loop, origin) : NULL;
  if (!f) {
    if (job->cleanup) job->cleanup(job); /* getaddrinfo's copies of host and port */
    free(job);
    return NULL;
  }
  job->future = aloop_future_ref(f);
  aloop__future_set_work(f, cancel_job, job);
  if (enqueue(ex, job) == 0) { /* not even one thread: fail now rather than wait forever */
    aloop__report(loop, -EAGAIN, -1, "executor", "cannot start a thread");
    aloop_future_cancel(f);
  }
  return f;
}

int aloop__executor_start(aloop_loop *loop, struct aloop__job *job) {
  struct aloop__executor *ex = executor(loop);
  if (!ex) return -ENOMEM;
  job->started = false;
  if (enqueue(ex, job) > 0) return 0;
  unqueue(ex, job);
  return -EAGAIN;
}

bool aloop__executor_unqueue(aloop_loop *loop, struct aloop__job *job) {
  return loop->executor && unqueue(loop->executor, job);
}

aloop_future *aloop_run_in_executor(aloop_loop *loop, aloop_job_fn fn, void *arg) {
  struct aloop__job *job = calloc(1, sizeof *job);
  if (!job) return NULL;
  job->fn = fn;
  job->arg = arg;
  return submit(loop, job, "run_in_executor");
}

/* ---- getaddrinfo ----------------------------------------------------------------------------- */

struct gai_req {
  struct aloop__job job; /* first: the job is the request */
  struct addrinfo hints, *res;
  char *host, *port;
};

static int64_t run_getaddrinfo(void *arg) {
  struct gai_req *r = arg;
  return getaddrinfo(r->host, r->port, &r->hints, &r->res);
}

static void free_addrinfo(void *p) { freeaddrinfo(p); }

static void cleanup_getaddrinfo(struct aloop__job *job) {
  struct gai_req *r = (struct gai_req *)job;
  if (r->res) freeaddrinfo(r->res);
  free(r->host);
  free(r->port);
}

static void complete_getaddrinfo(struct aloop__job *job) {
  struct gai_req *r = (struct gai_req *)job;
  if (job->result == 0) {
    aloop_future_set_data(job->future, r->res, free_addrinfo);
    r->res = NULL;
    aloop__future_finish(job->future, 0, NULL);
    return;
  }
  int code = job->result == EAI_SYSTEM ? -errno : -ALOOP_EADDRINFO;
  char message[320];
  snprintf(message, sizeof message, "%s:%s: %s", r->host ? r->host : "", r->port ? r->port : "",
           gai_strerror((int)job->result));
  aloop__future_finish(job->future, code, message);
}

aloop_future *aloop_getaddrinfo(aloop_loop *loop, const char *host, const char *port,
                                const struct addrinfo *hints) {
  struct gai_req *r = calloc(1, sizeof *r);
  if (!r) return NULL;
  r->host = host ? strdup(host) : NULL;
  r->port = port ? strdup(port) : NULL;
  if ((host && !r->host) || (port && !r->port)) { /* else it would resolve "any host" instead */
    cleanup_getaddrinfo(&r->job);
    free(r);
    return NULL;
  }
  if (hints) {
    r->hints = *hints;
  } else {
    r->hints.ai_family = AF_UNSPEC;
    r->hints.ai_socktype = SOCK_STREAM;
  }
  r->job.fn = run_getaddrinfo;
  r->job.arg = r;
  r->job.complete = complete_getaddrinfo;
  r->job.cleanup = cleanup_getaddrinfo;
  return submit(loop, &r->job, "getaddrinfo");
}

void aloop__executor_fini(aloop_loop *loop) {
  struct aloop__executor *ex = loop->executor;
  if (!ex) return;
  pthread_mutex_lock(&ex->lock);
  ex->stopping = true;
  pthread_cond_broadcast(&ex->work);
  pthread_mutex_unlock(&ex->lock);
  for (int i = 0; i < ex->nthreads; i++) pthread_join(ex->threads[i], NULL);
  struct aloop__job *lists[] = {ex->queued, ex->finished};
  for (size_t i = 0; i < 2; i++)
    while (lists[i]) {
      struct aloop__job *next = lists[i]->next;
      free_job(lists[i]);
      lists[i] = next;
    }
  pthread_mutex_destroy(&ex->lock);
  pthread_cond_destroy(&ex->work);
  free(ex);
  loop->executor = NULL;
}
