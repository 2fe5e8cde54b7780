/* Servers and outgoing connections over transports (asyncio's create_server, create_connection).
 * Accepting is one ACCEPT operation in flight per listening socket, started again as soon as it
 * completes: io_uring keeps its multishot accept armed, the readiness drivers accept until EAGAIN
 * per wake-up. This file never blocks: name resolution runs on the executor, inside a task.
 * It must never drop a connection the kernel gave it, except when a factory refuses it. */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "core.h"

struct listener {
  aloop_server *server;
  int fd;
  struct aloop__op op;
  bool accepting;      /* op in flight */
  bool in_loop, again; /* accept_next's loop: completions that arrive inside it do not recurse */
  bool paused;
  bool deferred;       /* this iteration's batch is used up: accepting goes on from the ready queue */
  bool at_limit;       /* max_connections open: accepting resumes when one is lost */
  uint64_t batch_iteration;
  unsigned batch;      /* connections accepted in batch_iteration (an accept started in an earlier
                          iteration counts when it completes) */
  aloop_handle pause_timer, defer_handle;
};

struct waiter {
  aloop_future *future;
  bool forever; /* serve_forever: done when closed; else wait_closed: also when no connections */
};

struct aloop_server {
  aloop_loop *loop;
  const aloop_protocol *proto;
  aloop_ctx_factory factory;
  void *arg;
  void (*arg_free)(void *);
  struct listener *listeners;
  size_t nlisteners;
  struct aloop__conn conns; /* circular list head */
  size_t nconns;
  size_t holds;             /* stream tasks still running for connections (stream.c) */
  size_t max_conns;         /* 0: no limit */
  aloop_tls_context *tls;   /* every connection speaks TLS with it */
  bool serving, freed, pause_reported, tcp;
  char *unix_path;
  struct waiter *waiters;
  size_t nwaiters, waiters_cap;
};

/* ---- lifetime ---------------------------------------------------------------------------------- */

static bool busy(const aloop_server *s) {
  if (s->nconns || s->holds) return true;
  for (size_t i = 0; i < s->nlisteners; i++)
    if (s->listeners[i].accepting || s->listeners[i].deferred) return true;
  return false;
}

static void maybe_free(aloop_server *s) {
  if (!s->freed || busy(s) || s->nwaiters) return;
  if (s->arg_free) s->arg_free(s->arg);
  aloop_tls_context_free(s->tls);
  free(s->listeners);
  free(s->unix_path);
  free(s->waiters);
  free(s);
}

/* Complete the waiters whose condition holds: serve_forever once closed, wait_closed once closed
 * with no connection left. */
static void settle_waiters(aloop_server *s) {
  if (s->serving) return;
  size_t kept = 0;
  for (size_t i = 0; i < s->nwaiters; i++) {
    struct waiter w = s->waiters[i];
    if (!w.forever && (s->nconns || s->holds)) {
      s->waiters[kept++] = w;
      continue;
    }
    aloop__future_finish(w.future, aloop__future_cancel_requested(w.future) ? -ECANCELED : 0, NULL);
    aloop_future_release(w.future);
  }
  s->nwaiters = kept;
  maybe_free(s);
}

static void cancel_serve_forever(aloop_future *f, void *arg) {
  (void)f;
  aloop_server_close(arg); /* settles the future, as cancelled */
}

static aloop_future *add_waiter(aloop_server *s, bool forever) {
  aloop_future *f = aloop_future_new(s->loop, forever ? "serve_forever" : "wait_closed");
  if (!f) return NULL;
  if (s->nwaiters == s->waiters_cap) {
    size_t cap = s->waiters_cap ? s->waiters_cap * 2 : 4;
    struct waiter *w = realloc(s->waiters, cap * sizeof *w);
    if (!w) {
      aloop_future_release(f);
      return NULL;
    }
    s->waiters = w;
    s->waiters_cap = cap;
  }
  s->waiters[s->nwaiters++] = (struct waiter){aloop_future_ref(f), forever};
  if (forever) aloop__future_set_work(f, cancel_serve_forever, s);
  settle_waiters(s);
  return f;
}

aloop_future *aloop_server_wait_closed(aloop_server *s) { return add_waiter(s, false); }
aloop_future *aloop_server_serve_forever(aloop_server *s) { return add_waiter(s, true); }

void aloop_server_close(aloop_server *s) {
  if (!s->serving) return;
  s->serving = false;
  for (size_t i = 0; i < s->nlisteners; i++) {
    struct listener *l = &s->listeners[i];
    if (l->paused) aloop_cancel(s->loop, l->pause_timer);
    if (l->deferred) aloop_cancel(s->loop, l->defer_handle);
    l->paused = l->deferred = l->at_limit = false;
    /* A completion driver's accept holds the socket until its cancel comes back, and the kernel
     * would go on queueing connections nobody takes: shutting the listener down refuses them
     * from now on, on every driver. */
    shutdown(l->fd, SHUT_RD);
    aloop_close(s->loop, l->fd); /* answers its accept: parked at once, in the kernel later */
    l->fd = -1;
  }
  if (s->unix_path) unlink(s->unix_path);
  settle_waiters(s);
}

static void each_client(aloop_server *s, void (*fn)(aloop_transport *)) {
  for (struct aloop__conn *c = s->conns.next, *next; c != &s->conns; c = next) {
    next = c->next; /* connection_lost comes later, through the ready queue: the list holds */
    fn(aloop__conn_transport(c));
  }
}

void aloop_server_close_clients(aloop_server *s) { each_client(s, aloop_transport_close); }
void aloop_server_abort_clients(aloop_server *s) { each_client(s, aloop_transport_abort); }

void aloop_server_free(aloop_server *s) {
  aloop_server_close(s);
  aloop_server_abort_clients(s);
  s->freed = true;
  maybe_free(s);
}

size_t aloop_server_sockets(const aloop_server *s, int *fds, size_t max) {
  for (size_t i = 0; i < s->nlisteners && i < max; i++) fds[i] = s->listeners[i].fd;
  return s->nlisteners;
}

int aloop_server_port(const aloop_server *s) {
  if (!s->nlisteners || s->listeners[0].fd < 0) return -EBADF;
  struct sockaddr_storage a;
  socklen_t len = sizeof a;
  if (getsockname(s->listeners[0].fd, (struct sockaddr *)&a, &len) < 0) return -errno;
  if (a.ss_family == AF_INET) return ntohs(((struct sockaddr_in *)&a)->sin_port);
  if (a.ss_family == AF_INET6) return ntohs(((struct sockaddr_in6 *)&a)->sin6_port);
  return -EAFNOSUPPORT;
}

size_t aloop_server_connections(const aloop_server *s) { return s->nconns; }
bool aloop_server_is_serving(const aloop_server *s) { return s->serving; }

/* ---- accepting ----------------------------------------------------------------------------------- */

static void accepted(aloop_loop *loop, struct aloop__op *op, int32_t res);
static void accept_deferred(aloop_loop *loop, void *arg);

/* May l start another accept now? Not above the connection limit, and not past this iteration's
 * batch (then once more from the ready queue, behind what is already there). */
static bool may_accept(struct listener *l) {
  aloop_server *s = l->server;
  if (s->max_conns && s->nconns >= s->max_conns) {
    l->at_limit = true;
    return false;
  }
  aloop_loop *loop = s->loop;
  if (l->batch_iteration != loop->iterations || l->batch < ALOOP_ACCEPT_BATCH) return true;
  if (!l->deferred && aloop_call_soon(loop, accept_deferred, l, &l->defer_handle) == 0)
    l->deferred = true; /* out of memory: the next connection lost or accepted starts it again */
  return false;
}

static void accept_next(struct listener *l) {
  l->again = true;
  if (l->in_loop) return; /* a completion inside op_start: the loop below goes on */
  l->in_loop = true;
  while (l->again && !l->accepting && !l->paused && !l->deferred && l->fd >= 0 && may_accept(l)) {
    l->again = false;
    l->accepting = true;
    l->op = (struct aloop__op){.kind = ALOOP__OP_ACCEPT, .fd = l->fd, .done = accepted};
    aloop__op_start(l->server->loop, &l->op);
  }
  l->in_loop = false;
}

static void accept_deferred(aloop_loop *loop, void *arg) {
  (void)loop;
  struct listener *l = arg;
  l->deferred = false;
  if (l->server->serving) accept_next(l);
  maybe_free(l->server);
}

static void conn_lost(struct aloop__conn *c) {
  aloop_server *s = c->owner;
  c->prev->next = c->next;
  c->next->prev = c->prev;
  s->nconns--;
  for (size_t i = 0; s->serving && i < s->nlisteners; i++) { /* below the limit again */
    struct listener *l = &s->listeners[i];
    if (!l->at_limit) continue;
    l->at_limit = false;
    accept_next(l);
  }
  settle_waiters(s); /* and frees a freed server whose last connection this was */
}

aloop_server *aloop__server_of(aloop_transport *t) {
  struct aloop__conn *c = aloop__transport_conn(t);
  return c->lost == conn_lost ? c->owner : NULL;
}

void aloop__server_hold(aloop_server *s, bool hold) {
  if (hold) {
    s->holds++;
    return;
  }
  s->holds--;
  settle_waiters(s);
}

static void new_connection(aloop_server *s, int fd, const struct aloop__op *op) {
  if (s->tcp) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){1}, sizeof(int)); /* as asyncio */
  /* The transport first: a ctx made for a connection that then got none would be lost. */
  aloop_transport *t = aloop_transport_new(s->loop, fd, s->proto, s->factory ? NULL : s->arg);
  if (!t) {
    aloop__report(s->loop, -ENOMEM, -1, "server", "connection dropped");
    return;
  }
  if (s->factory) {
    void *ctx = s->factory(s->arg);
    if (!ctx) { /* refused by the application */
      aloop__transport_discard(t);
      return;
    }
    aloop__transport_set_ctx(t, ctx);
  }
  aloop__transport_set_peer(t, &op->addr, op->addrlen);
  if (s->tls) {
    int err = aloop__tls_attach(t, s->tls, true, NULL, NULL, NULL);
    if (err < 0) {
      aloop__report(s->loop, err, -1, "server", "connection dropped: cannot start TLS");
      aloop_transport_abort(t); /* the protocol hears connection_lost: it may free its ctx */
    }
  }
  struct aloop__conn *c = aloop__transport_conn(t);
  c->owner = s;
  c->lost = conn_lost;
  c->next = &s->conns;
  c->prev = s->conns.prev;
  s->conns.prev->next = c;
  s->conns.prev = c;
  s->nconns++;
}

static void resume_accepting(aloop_loop *loop, void *arg) {
  (void)loop;
  struct listener *l = arg;
  l->paused = false;
  accept_next(l);
}

/* Errors about one incoming connection, not the listener: try the next one at once. */
static bool about_one_connection(int err) {
  return err == -ECONNABORTED || err == -EPROTO || err == -EPERM || err == -EINTR ||
         err == -ENETDOWN || err == -ENOPROTOOPT || err == -EHOSTDOWN || err == -ENONET ||
         err == -EHOSTUNREACH || err == -EOPNOTSUPP || err == -ENETUNREACH || err == -ETIMEDOUT;
}

static void accepted(aloop_loop *loop, struct aloop__op *op, int32_t res) {
  struct listener *l = (struct listener *)((char *)op - offsetof(struct listener, op));
  aloop_server *s = l->server;
  l->accepting = false;
  if (res >= 0 && loop->drv->max_fd && res >= loop->drv->max_fd) {
    /* The driver could never watch it (select above FD_SETSIZE): refuse it here, once, rather
     * than fail each of its operations; pausing lets connections end and lower fds come back. */
    close(res);
    res = -ALOOP_EFDLIMIT;
  }
  if (res >= 0) {
    if (l->batch_iteration != loop->iterations) {
      l->batch_iteration = loop->iterations;
      l->batch = 0;
    }
    l->batch++;
  }
  if (res >= 0 && s->serving) {
    s->pause_reported = false;
    new_connection(s, res, op);
  } else if (res >= 0) {
    close(res); /* accepted while the server closed: nobody will serve it */
  } else if (res != -ECANCELED && !about_one_connection(res) && s->serving) {
    /* Out of fds or memory (or a listener fault): breathe, then try again; the backlog waits. */
    if (!s->pause_reported)
      aloop__report(loop, res, l->fd, "server", "accept failed; pausing accepts for %d ms",
                    (int)(ALOOP_ACCEPT_PAUSE_NS / 1000000));
    s->pause_reported = true;
    if (aloop_call_later(loop, ALOOP_ACCEPT_PAUSE_NS, resume_accepting, l, &l->pause_timer) == 0)
      l->paused = true;
  }
  if (s->serving) accept_next(l);
  maybe_free(s);
}

/* ---- listening ----------------------------------------------------------------------------------- */

static int listen_socket(const struct sockaddr *addr, socklen_t len, const aloop_server_options *o,
                         int *out) {
  int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  int one = 1;
  bool ip = addr->sa_family == AF_INET || addr->sa_family == AF_INET6;
  if ((ip && o->reuse_address >= 0 &&
       setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0) ||
      (ip && o->reuse_port > 0 && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) ||
      /* v6 only: so that "::" and "0.0.0.0" can both be bound, as asyncio does */
      (addr->sa_family == AF_INET6 &&
       setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) < 0) ||
      bind(fd, addr, len) < 0 || listen(fd, o->backlog > 0 ? o->backlog : ALOOP_BACKLOG_DEFAULT) < 0) {
    int err = -errno;
    close(fd);
    return err;
  }
  *out = fd;
  return 0;
}

struct server_req {
  aloop_loop *loop;
  const aloop_protocol *proto;
  aloop_ctx_factory factory;
  void *arg;
  void (*arg_free)(void *);
  char *host, *path;
  int port;
  aloop_server_options opts;
};

static void free_req(void *p) {
  struct server_req *r = p;
  if (r->arg_free) r->arg_free(r->arg); /* not handed to a server */
  aloop_tls_context_free(r->opts.tls);
  free(r->host);
  free(r->path);
  free(r);
}

static aloop_server *server_new(struct server_req *r, const int *fds, size_t n) {
  aloop_server *s = calloc(1, sizeof *s);
  struct listener *ls = s ? calloc(n, sizeof *ls) : NULL;
  if (!ls) {
    free(s);
    return NULL;
  }
  *s = (aloop_server){.loop = r->loop, .proto = r->proto, .factory = r->factory, .arg = r->arg,
                      .arg_free = r->arg_free, .listeners = ls, .nlisteners = n, .serving = true,
                      .tcp = !r->path, .unix_path = r->path,
                      .max_conns = r->opts.max_connections, .tls = r->opts.tls};
  r->opts.tls = NULL; /* the server's reference now */
  s->conns.next = s->conns.prev = &s->conns;
  r->arg_free = NULL; /* the server's now */
  r->path = NULL;
  for (size_t i = 0; i < n; i++) ls[i] = (struct listener){.server = s, .fd = fds[i]};
  for (size_t i = 0; i < n; i++) accept_next(&ls[i]);
  return s;
}

/* In a task: path as a Unix socket address, or an error that says why not. */
static int64_t unix_address(const char *path, struct sockaddr_un *a) {
  *a = (struct sockaddr_un){.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof a->sun_path)
    return aloop_task_error(-ENAMETOOLONG, "unix socket path too long: %s", path);
  strcpy(a->sun_path, path);
  return 0;
}

static int64_t unix_listen(struct server_req *r, int *fd) {
  struct sockaddr_un a;
  if (unix_address(r->path, &a) < 0) return -ENAMETOOLONG;
  struct stat st;
  if (stat(r->path, &st) == 0 && S_ISSOCK(st.st_mode)) unlink(r->path); /* a stale socket */
  int err = listen_socket((struct sockaddr *)&a, sizeof a, &r->opts, fd);
  if (err < 0) return aloop_task_error(err, "listen on unix:%s: %s", r->path, aloop_strerror(err));
  return 0;
}

enum { MAX_LISTENERS = 16 };

static int64_t ip_listen(struct server_req *r, int *fds, size_t *n) {
  char port[16];
  snprintf(port, sizeof port, "%d", r->port);
  struct addrinfo hints = {.ai_family = r->opts.family, .ai_socktype = SOCK_STREAM,
                           .ai_flags = AI_PASSIVE | AI_ADDRCONFIG};
  aloop_future *res = aloop_getaddrinfo(r->loop, r->host && *r->host ? r->host : NULL, port, &hints);
  int64_t err = aloop_await_keep(res);
  if (err < 0) {
    err = aloop_task_error(err, "%s:%s: %s", r->host ? r->host : "*", port,
                           res ? aloop_future_message(res) : aloop_strerror((int)err));
    aloop_future_release(res);
    return err;
  }
  for (struct addrinfo *ai = aloop_future_data(res); ai && *n < MAX_LISTENERS; ai = ai->ai_next) {
    int e = listen_socket(ai->ai_addr, ai->ai_addrlen, &r->opts, &fds[*n]);
    if (e < 0) {
      aloop_sockaddr a = {.len = ai->ai_addrlen};
      memcpy(&a.addr, ai->ai_addr, ai->ai_addrlen);
      char where[ALOOP_SOCKADDR_STRLEN];
      err = aloop_task_error(e, "listen on %s: %s", aloop_sockaddr_str(&a, where, sizeof where),
                             aloop_strerror(e));
      break;
    }
    ++*n;
  }
  aloop_future_release(res);
  return err;
}

static int64_t create_server_task(void *unused) {
  (void)unused;
  struct server_req *r = aloop_future_take_data(aloop_task_current());
  int fds[MAX_LISTENERS];
  size_t n = 0;
  int64_t err = r->path ? unix_listen(r, &fds[n]) : ip_listen(r, fds, &n);
  if (r->path && err == 0) n = 1;
  aloop_server *s = err == 0 ? server_new(r, fds, n) : NULL;
  if (!s) {
    for (size_t i = 0; i < n; i++) close(fds[i]);
    free_req(r);
    return err < 0 ? err : -ENOMEM;
  }
  aloop_future_set_data(aloop_task_current(), s, NULL); /* the caller's to free */
  free_req(r);
  return 0;
}

aloop_future *aloop__create_server(aloop_loop *loop, const aloop_protocol *proto,
                                   aloop_ctx_factory factory, void *arg, void (*arg_free)(void *),
                                   const char *host, int port, const char *path,
                                   const aloop_server_options *opts) {
  struct server_req *r = calloc(1, sizeof *r);
  if (!r) return NULL;
  *r = (struct server_req){.loop = loop, .proto = proto, .factory = factory, .arg = arg,
                           .arg_free = arg_free, .port = port};
  if (opts) memcpy(&r->opts, opts, opts->size < sizeof r->opts ? opts->size : sizeof r->opts);
  r->opts.size = sizeof r->opts;
  aloop__tls_context_ref(r->opts.tls);
  if ((host && !(r->host = strdup(host))) || (path && !(r->path = strdup(path)))) {
    r->arg_free = NULL; /* the caller still owns arg on this failure */
    free_req(r);
    return NULL;
  }
  aloop_task_options topts = {.size = sizeof topts, .name = "create_server"};
  aloop_future *f = aloop_task_spawn(loop, create_server_task, NULL, &topts);
  if (!f) {
    r->arg_free = NULL;
    free_req(r);
    return NULL;
  }
  aloop_future_set_data(f, r, free_req); /* a task cancelled before it ran frees it so */
  return f;
}

aloop_future *aloop_create_server(aloop_loop *loop, const aloop_protocol *proto,
                                  aloop_ctx_factory factory, void *arg, const char *host, int port,
                                  const aloop_server_options *opts) {
  return aloop__create_server(loop, proto, factory, arg, NULL, host, port, NULL, opts);
}

aloop_future *aloop_create_unix_server(aloop_loop *loop, const aloop_protocol *proto,
                                       aloop_ctx_factory factory, void *arg, const char *path,
                                       const aloop_server_options *opts) {
  return aloop__create_server(loop, proto, factory, arg, NULL, NULL, 0, path, opts);
}

/* ---- connecting ---------------------------------------------------------------------------------- */

struct connect_req {
  aloop_loop *loop;
  const aloop_protocol *proto;
  void *ctx;
  void (*ctx_free)(void *ctx);                         /* if it never gets a transport */
  void (*connected)(void *ctx, aloop_transport *t);    /* stream.c: data is ctx, not t */
  char *host, *path;
  int port;
  aloop_tls_context *tls;  /* a reference, or NULL: plain */
  char *server_hostname;   /* NULL: host */
};

static void free_connect_req(void *p) {
  struct connect_req *r = p;
  if (r->ctx_free) r->ctx_free(r->ctx);
  aloop_tls_context_free(r->tls);
  free(r->host);
  free(r->path);
  free(r->server_hostname);
  free(r);
}

/* With TLS: the handshake, which the caller waits for too. A failed one silences the protocol
 * (its caller hears of it instead) and ctx stays the caller's. */
static int64_t tls_handshake(struct connect_req *r, aloop_transport *t) {
  const char *name = r->server_hostname ? r->server_hostname : r->host;
  aloop_future *hs = aloop__tls_connect(t, r->tls, name);
  if (!hs) {
    aloop__transport_discard(t);
    return -ENOMEM;
  }
  int64_t err = aloop_await_keep(hs);
  if (err < 0) {
    if (err != -ECANCELED) err = aloop_task_error(err, "TLS with %s: %s", name ? name : r->path,
                                                   aloop_future_message(hs));
    aloop__transport_discard(t); /* a cancelled wait: the handshake stops too */
  }
  aloop_future_release(hs);
  return err;
}

static int64_t connect_to(aloop_loop *loop, const struct sockaddr *addr, socklen_t len, int *out) {
  int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  int64_t err = aloop_await(aloop_sock_connect(loop, fd, addr, len));
  if (err < 0) {
    aloop_close(loop, fd);
    return err;
  }
  if (addr->sa_family != AF_UNIX) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){1}, sizeof(int));
  *out = fd;
  return 0;
}

static int64_t resolve_and_connect(struct connect_req *r, int *fd) {
  char port[16];
  snprintf(port, sizeof port, "%d", r->port);
  struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_ADDRCONFIG};
  aloop_future *res = aloop_getaddrinfo(r->loop, r->host, port, &hints);
  int64_t err = aloop_await_keep(res);
  if (err < 0) {
    err = aloop_task_error(err, "%s:%s: %s", r->host, port,
                           res ? aloop_future_message(res) : aloop_strerror((int)err));
    aloop_future_release(res);
    return err;
  }
  for (struct addrinfo *ai = aloop_future_data(res); ai; ai = ai->ai_next) {
    if ((err = connect_to(r->loop, ai->ai_addr, ai->ai_addrlen, fd)) == 0 || err == -ECANCELED)
      break;
  }
  if (err < 0 && err != -ECANCELED)
    err = aloop_task_error(err, "connect to %s:%s: %s", r->host, port, aloop_strerror((int)err));
  aloop_future_release(res);
  return err;
}

static int64_t unix_connect(struct connect_req *r, int *fd) {
  struct sockaddr_un a;
  if (unix_address(r->path, &a) < 0) return -ENAMETOOLONG;
  int64_t err = connect_to(r->loop, (struct sockaddr *)&a, sizeof a, fd);
  if (err < 0 && err != -ECANCELED)
    err = aloop_task_error(err, "connect to unix:%s: %s", r->path, aloop_strerror((int)err));
  return err;
}

/* The request rides in the task's future data until the task takes it: a task cancelled before
 * it ran frees it with the future. */
static int64_t connect_task(void *unused) {
  (void)unused;
  aloop_future *self = aloop_task_current();
  struct connect_req *r = aloop_future_take_data(self);
  int fd = -1;
  int64_t err = r->path ? unix_connect(r, &fd) : resolve_and_connect(r, &fd);
  aloop_transport *t = err == 0 ? aloop_transport_new(r->loop, fd, r->proto, r->ctx) : NULL;
  if (t && r->tls && (err = tls_handshake(r, t)) < 0) t = NULL;
  if (t) {
    r->ctx_free = NULL; /* the protocol's now */
    if (r->connected) r->connected(r->ctx, t);
    aloop_future_set_data(self, r->connected ? r->ctx : (void *)t, NULL);
  } else if (err == 0) {
    err = -ENOMEM; /* transport_new closed fd */
  }
  free_connect_req(r);
  return err;
}

aloop_future *aloop__connect(aloop_loop *loop, const aloop_protocol *proto, void *ctx,
                             void (*ctx_free)(void *), void (*connected)(void *, aloop_transport *),
                             const char *host, int port, const char *path,
                             const aloop_connect_options *opts) {
  struct connect_req *r = calloc(1, sizeof *r);
  if (!r) return NULL;
  *r = (struct connect_req){.loop = loop, .proto = proto, .ctx = ctx, .connected = connected,
                            .port = port};
  aloop_connect_options o = {0};
  if (opts) memcpy(&o, opts, opts->size < sizeof o ? opts->size : sizeof o);
  r->tls = aloop__tls_context_ref(o.tls);
  aloop_task_options topts = {.size = sizeof topts, .name = "create_connection"};
  aloop_future *f = NULL;
  if ((!host || (r->host = strdup(host))) && (!path || (r->path = strdup(path))) &&
      (!o.server_hostname || (r->server_hostname = strdup(o.server_hostname))))
    f = aloop_task_spawn(loop, connect_task, NULL, &topts);
  if (!f) {
    free_connect_req(r); /* ctx_free not set yet: the caller keeps ctx */
    return NULL;
  }
  r->ctx_free = ctx_free;
  aloop_future_set_data(f, r, free_connect_req);
  return f;
}

aloop_future *aloop_create_connection(aloop_loop *loop, const aloop_protocol *proto, void *ctx,
                                      const char *host, int port) {
  return aloop__connect(loop, proto, ctx, NULL, NULL, host ? host : "localhost", port, NULL, NULL);
}

aloop_future *aloop_create_connection_with(aloop_loop *loop, const aloop_protocol *proto,
                                           void *ctx, const char *host, int port,
                                           const aloop_connect_options *opts) {
  return aloop__connect(loop, proto, ctx, NULL, NULL, host ? host : "localhost", port, NULL, opts);
}

aloop_future *aloop_create_unix_connection(aloop_loop *loop, const aloop_protocol *proto,
                                           void *ctx, const char *path) {
  return aloop__connect(loop, proto, ctx, NULL, NULL, NULL, 0, path, NULL);
}
