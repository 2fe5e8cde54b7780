/* The datagram transport (asyncio's _SelectorDatagramTransport, over operations) and
 * create_datagram_endpoint. The read side is one RECVMSG_STREAM operation, started again after
 * every error it ends with: for a datagram socket an error is news about one datagram (an ICMP
 * refusal), told to error_received, not the end of the transport. The write side sends each
 * datagram at once when nothing is queued, else queues it whole with its address and keeps one
 * SENDMSG operation in flight for the oldest. connection_lost comes once, after both operations
 * have completed and the fd is closed. This file never blocks: names resolve on the executor. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "core.h"

_Static_assert(ALOOP_DATAGRAM_MAX == ALOOP__DATAGRAM_MAX, "one limit, public and internal");
_Static_assert(ALOOP__DATAGRAM_MAX <= ALOOP__READ_BUFFER, "the readiness path reads into read_buf");

/* A queued datagram: its own allocation, sent whole or not at all. */
struct dgram {
  struct dgram *next;
  aloop_sockaddr to; /* len 0: the connected peer */
  size_t len;
  unsigned char data[];
};

struct aloop_datagram_transport {
  aloop_loop *loop;
  int fd;
  const aloop_datagram_protocol *proto;
  void *ctx;
  struct aloop__op rop, wop;
  struct msghdr msg;              /* wop's: the oldest queued datagram */
  struct iovec iov;
  aloop_sockaddr peer;            /* len 0: not connected */
  sa_family_t family;             /* the socket's, for senders the kernel gives no address */
  bool reading, sending;          /* rop / wop in flight */
  bool closing, aborting, lost_scheduled;
  bool write_paused;
  bool made;                      /* connection_made has run: connection_lost may follow */
  int lost_err;
  struct dgram *wq, **wq_tail;    /* oldest first */
  size_t wq_bytes, high, low;
};

static aloop_datagram_transport *of_rop(struct aloop__op *op) {
  return (aloop_datagram_transport *)((char *)op - offsetof(aloop_datagram_transport, rop));
}
static aloop_datagram_transport *of_wop(struct aloop__op *op) {
  return (aloop_datagram_transport *)((char *)op - offsetof(aloop_datagram_transport, wop));
}

static void on_datagram(aloop_loop *loop, struct aloop__op *op, int32_t res);
static void on_sent(aloop_loop *loop, struct aloop__op *op, int32_t res);

/* ---- closing ------------------------------------------------------------------------------------ */

static void free_queue(aloop_datagram_transport *t) {
  for (struct dgram *d = t->wq, *next; d; d = next) {
    next = d->next;
    free(d);
  }
  t->wq = NULL;
  t->wq_tail = &t->wq;
  t->wq_bytes = 0;
}

static void lost(aloop_loop *loop, void *arg) {
  (void)loop;
  aloop_datagram_transport *t = arg;
  if (t->proto->connection_lost) t->proto->connection_lost(t, t->lost_err, t->ctx);
  free(t);
}

/* Once closing and both operations are done (and, for a graceful close, the queue is sent): close
 * the fd and tell the protocol on the next iteration. */
static void maybe_finish(aloop_datagram_transport *t) {
  if (!t->made || !t->closing || t->lost_scheduled || t->reading || t->sending) return;
  if (t->wq && !t->aborting) return;
  t->lost_scheduled = true;
  free_queue(t);
  aloop_close(t->loop, t->fd);
  if (aloop_call_soon(t->loop, lost, t, NULL) < 0) lost(t->loop, t); /* out of memory: now */
}

void aloop_datagram_abort(aloop_datagram_transport *t) {
  if (t->aborting) return;
  t->closing = t->aborting = true;
  if (t->reading) aloop__op_cancel(t->loop, &t->rop);
  if (t->sending) aloop__op_cancel(t->loop, &t->wop);
  maybe_finish(t);
}

void aloop_datagram_close(aloop_datagram_transport *t) {
  if (t->closing) return;
  t->closing = true;
  if (t->reading) aloop__op_cancel(t->loop, &t->rop);
  maybe_finish(t);
}

bool aloop_datagram_is_closing(const aloop_datagram_transport *t) { return t->closing; }

/* ---- errors --------------------------------------------------------------------------------------- */

/* Faults of the socket itself, after which every operation would fail the same way: these end
 * the transport. A receive is started again at once after an error, so for it a fault of the
 * request (EINVAL, no memory) ends the transport too, rather than spin. Every other error is about
 * one datagram (asyncio: an OSError goes to error_received): a bad address to send to, a datagram
 * too long, an ICMP refusal. */
static bool socket_fault(int err, bool receiving) {
  static const int always[] = {EBADF, ENOTSOCK, EFAULT, EBADFD};
  static const int receive[] = {EINVAL, EOPNOTSUPP, ENOMEM};
  for (size_t i = 0; i < ALOOP__ARRAY_LEN(always); i++)
    if (err == -always[i]) return true;
  for (size_t i = 0; receiving && i < ALOOP__ARRAY_LEN(receive); i++)
    if (err == -receive[i]) return true;
  return err == -ALOOP_EFDLIMIT;
}

static void report(aloop_datagram_transport *t, int err, const char *message) {
  char where[ALOOP_SOCKADDR_STRLEN] = "?";
  aloop_sockaddr addr;
  if (aloop_datagram_sockname(t, &addr) == 0) aloop_sockaddr_str(&addr, where, sizeof where);
  aloop__report(t->loop, err, t->fd, "datagram", "%s: %s", where, message);
}

/* An error of an operation: error_received, or the end of the transport for a socket fault. */
static void failed(aloop_datagram_transport *t, int err, bool receiving) {
  if (err == -ECANCELED || t->aborting) return;
  if (socket_fault(err, receiving)) {
    report(t, err, "datagram socket failed");
    if (!t->lost_err) t->lost_err = err;
    aloop_datagram_abort(t);
  } else if (t->proto->error_received) {
    t->proto->error_received(t, err, t->ctx);
  }
}

/* ---- receiving ------------------------------------------------------------------------------------ */

static void start_reading(aloop_datagram_transport *t) {
  if (t->reading || t->closing) return;
  t->reading = true;
  t->rop = (struct aloop__op){.kind = ALOOP__OP_RECVMSG_STREAM, .fd = t->fd, .done = on_datagram};
  aloop__op_start(t->loop, &t->rop);
}

static void deliver(aloop_datagram_transport *t, const struct aloop__op *op, size_t n) {
  if (op->truncated) { /* never half a datagram: the protocol hears it was lost */
    if (t->proto->error_received) t->proto->error_received(t, -EMSGSIZE, t->ctx);
    return;
  }
  if (!t->proto->datagram_received) return;
  aloop_sockaddr from = {.len = op->addrlen <= sizeof from.addr ? op->addrlen : sizeof from.addr};
  memcpy(&from.addr, &op->addr, from.len);
  if (!from.len) { /* an unbound Unix socket: an unnamed address, as getpeername says */
    from.addr.ss_family = t->family;
    from.len = sizeof(sa_family_t);
  }
  t->proto->datagram_received(t, op->buf, n, &from, t->ctx);
}

static void on_datagram(aloop_loop *loop, struct aloop__op *op, int32_t res) {
  (void)loop;
  aloop_datagram_transport *t = of_rop(op);
  if (!op->more) t->reading = false;
  if (op->more && !t->closing) /* after close, what still arrives is dropped, as asyncio does */
    deliver(t, op, (size_t)res);
  else if (!op->more && res < 0)
    failed(t, res, true);
  if (!t->reading) start_reading(t); /* after an error: datagrams go on arriving */
  maybe_finish(t);
}

/* ---- sending -------------------------------------------------------------------------------------- */

static void start_sending(aloop_datagram_transport *t) {
  if (t->sending || !t->wq || t->aborting) return;
  t->sending = true;
  struct dgram *d = t->wq;
  t->iov = (struct iovec){d->data, d->len};
  t->msg = (struct msghdr){.msg_name = d->to.len ? &d->to.addr : NULL, .msg_namelen = d->to.len,
                           .msg_iov = &t->iov, .msg_iovlen = 1};
  t->wop = (struct aloop__op){.kind = ALOOP__OP_SENDMSG, .fd = t->fd, .buf = &t->msg,
                              .done = on_sent};
  aloop__op_start(t->loop, &t->wop);
}

static void maybe_resume_writing(aloop_datagram_transport *t) {
  if (!t->write_paused || t->wq_bytes > t->low) return;
  t->write_paused = false;
  if (t->proto->resume_writing && !t->aborting) t->proto->resume_writing(t, t->ctx);
}

static void on_sent(aloop_loop *loop, struct aloop__op *op, int32_t res) {
  (void)loop;
  aloop_datagram_transport *t = of_wop(op);
  t->sending = false;
  if (res == -ECANCELED) { /* aborting: the queue goes with the transport */
    maybe_finish(t);
    return;
  }
  struct dgram *d = t->wq; /* sent, or lost with an error: either way done with */
  if (!(t->wq = d->next)) t->wq_tail = &t->wq;
  t->wq_bytes -= d->len;
  free(d);
  if (res < 0) failed(t, res, false);
  start_sending(t);
  maybe_resume_writing(t);
  maybe_finish(t);
}

static int enqueue(aloop_datagram_transport *t, const void *data, size_t n,
                   const aloop_sockaddr *to) {
  struct dgram *d = malloc(sizeof *d + n);
  if (!d) return -ENOMEM;
  d->next = NULL;
  d->len = n;
  d->to.len = 0;
  if (to) d->to = *to;
  memcpy(d->data, data, n);
  *t->wq_tail = d;
  t->wq_tail = &d->next;
  t->wq_bytes += n;
  return 0;
}

static bool same_address(const aloop_sockaddr *a, const aloop_sockaddr *b) {
  return a->len == b->len && memcmp(&a->addr, &b->addr, a->len) == 0;
}

/* Nothing queued: straight to the socket, as asyncio does. Returns -EAGAIN if it must queue. */
static int send_now(aloop_datagram_transport *t, const void *data, size_t n,
                    const aloop_sockaddr *to) {
  struct iovec iov = {(void *)data, n};
  struct msghdr msg = {.msg_name = to ? (void *)&to->addr : NULL, .msg_namelen = to ? to->len : 0,
                       .msg_iov = &iov, .msg_iovlen = 1};
  ssize_t r;
  do r = sendmsg(t->fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
  while (r < 0 && errno == EINTR);
  if (r >= 0) return 0;
  return errno == EWOULDBLOCK ? -EAGAIN : -errno;
}

int aloop_datagram_sendto(aloop_datagram_transport *t, const void *data, size_t n,
                          const aloop_sockaddr *to) {
  if (t->closing) return -EPIPE;
  if (to && to->len > sizeof to->addr) return -EINVAL;
  if (!to && !t->peer.len) return -EDESTADDRREQ;
  if (to && t->peer.len) {
    if (!same_address(to, &t->peer)) return -EISCONN;
    to = NULL; /* connected: the kernel knows where */
  }
  if (!t->wq && !t->sending) {
    int err = send_now(t, data, n, to);
    if (err != -EAGAIN) {
      if (err < 0) failed(t, err, false); /* the datagram is lost; the protocol hears why */
      return 0;
    }
  }
  int err = enqueue(t, data, n, to);
  if (err < 0) return err;
  start_sending(t);
  if (!t->write_paused && t->wq_bytes > t->high) {
    t->write_paused = true;
    if (t->proto->pause_writing) t->proto->pause_writing(t, t->ctx);
  }
  return 0;
}

int aloop_datagram_set_write_buffer_limits(aloop_datagram_transport *t, size_t high, size_t low) {
  if (!high) high = ALOOP_WRITE_HIGH_DEFAULT;
  if (!low) low = high / 4;
  if (low > high) return -EINVAL;
  t->high = high;
  t->low = low;
  return 0;
}

size_t aloop_datagram_get_write_buffer_size(const aloop_datagram_transport *t) {
  return t->wq_bytes;
}

int aloop_datagram_fd(const aloop_datagram_transport *t) { return t->fd; }
aloop_loop *aloop_datagram_loop(const aloop_datagram_transport *t) { return t->loop; }

int aloop_datagram_sockname(const aloop_datagram_transport *t, aloop_sockaddr *out) {
  out->len = sizeof out->addr;
  return getsockname(t->fd, (struct sockaddr *)&out->addr, &out->len) < 0 ? -errno : 0;
}

int aloop_datagram_peername(const aloop_datagram_transport *t, aloop_sockaddr *out) {
  if (!t->peer.len) return -ENOTCONN;
  *out = t->peer;
  return 0;
}

/* ---- the transport's birth -------------------------------------------------------------------- */

static void made(aloop_loop *loop, void *arg) {
  (void)loop;
  aloop_datagram_transport *t = arg;
  t->made = true;
  if (t->proto->connection_made) t->proto->connection_made(t, t->ctx);
  start_reading(t);
  maybe_finish(t);
}

/* A transport over fd (non-blocking, bound and connected as wanted), which it owns from now on.
 * NULL on ENOMEM (fd is then closed). */
static aloop_datagram_transport *transport_new(aloop_loop *loop, int fd,
                                               const aloop_datagram_protocol *proto, void *ctx) {
  aloop_datagram_transport *t = calloc(1, sizeof *t);
  if (!t || aloop_call_soon(loop, made, t, NULL) < 0) {
    free(t);
    close(fd);
    return NULL;
  }
  *t = (aloop_datagram_transport){.loop = loop, .fd = fd, .proto = proto, .ctx = ctx};
  t->wq_tail = &t->wq;
  /* The peer's address while there is one (peername needs no syscall, and it is what sendto
   * compares `to` with). */
  t->peer.len = sizeof t->peer.addr;
  if (getpeername(fd, (struct sockaddr *)&t->peer.addr, &t->peer.len) < 0) t->peer.len = 0;
  aloop_sockaddr self;
  if (aloop_datagram_sockname(t, &self) == 0) t->family = self.addr.ss_family;
  aloop_datagram_set_write_buffer_limits(t, 0, 0);
  return t;
}

aloop_datagram_transport *aloop_datagram_transport_new(aloop_loop *loop, int sock,
                                                       const aloop_datagram_protocol *proto,
                                                       void *ctx) {
  int type = 0;
  socklen_t len = sizeof type;
  int flags = -1, err = 0;
  if (getsockopt(sock, SOL_SOCKET, SO_TYPE, &type, &len) < 0)
    err = errno;
  else if (type != SOCK_DGRAM)
    err = EINVAL;
  else if ((flags = fcntl(sock, F_GETFL)) < 0 || fcntl(sock, F_SETFL, flags | O_NONBLOCK) < 0)
    err = errno;
  if (err) {
    close(sock);
    errno = err;
    return NULL;
  }
  aloop_datagram_transport *t = transport_new(loop, sock, proto, ctx);
  if (!t) errno = ENOMEM;
  return t;
}

/* ---- create_datagram_endpoint ----------------------------------------------------------------- */

struct endpoint_req {
  aloop_loop *loop;
  const aloop_datagram_protocol *proto;
  void *ctx;
  aloop_datagram_options o; /* its strings are copies, owned here */
};

static void free_endpoint_req(void *p) {
  struct endpoint_req *r = p;
  if (r->o.use_sock && r->o.sock >= 0) close(r->o.sock); /* never handed to a transport */
  free((char *)r->o.local_host);
  free((char *)r->o.remote_host);
  free((char *)r->o.local_path);
  free((char *)r->o.remote_path);
  free(r);
}

/* In a task: whether the options make sense together, or an error that says why not. */
static int64_t check_options(const aloop_datagram_options *o) {
  bool ip = o->local_host || o->local_port || o->remote_host || o->remote_port;
  bool unix_path = o->local_path || o->remote_path;
  if (o->use_sock && (ip || unix_path))
    return aloop_task_error(-EINVAL, "a socket given (use_sock) takes no addresses");
  if (ip && unix_path)
    return aloop_task_error(-EINVAL, "Unix paths and IP addresses cannot be mixed");
  if (unix_path && o->family && o->family != AF_UNIX)
    return aloop_task_error(-EINVAL, "Unix paths need family AF_UNIX (or 0)");
  if (o->remote_port && !o->remote_host)
    return aloop_task_error(-EINVAL, "remote_port without remote_host");
  if (o->local_port < 0 || o->local_port > 65535 || o->remote_port < 0 || o->remote_port > 65535)
    return aloop_task_error(-EINVAL, "port out of range");
  if (!o->use_sock && !ip && !unix_path && !o->family)
    return aloop_task_error(-EINVAL, "nothing to bind or connect to: set an address or family");
  return 0;
}

static int64_t adopt_socket(const aloop_datagram_options *o, int *fd) {
  int type = 0;
  socklen_t len = sizeof type;
  if (getsockopt(o->sock, SOL_SOCKET, SO_TYPE, &type, &len) < 0)
    return aloop_task_error(-errno, "sock %d: %s", o->sock, strerror(errno));
  if (type != SOCK_DGRAM)
    return aloop_task_error(-EINVAL, "sock %d is not a datagram socket", o->sock);
  int flags = fcntl(o->sock, F_GETFL);
  if (flags < 0 || fcntl(o->sock, F_SETFL, flags | O_NONBLOCK) < 0)
    return aloop_task_error(-errno, "sock %d: %s", o->sock, strerror(errno));
  *fd = o->sock;
  return 0;
}

/* A datagram socket of `family`, with the options' socket options, bound to local and connected
 * to remote (either may be NULL). 0, or a negative errno and *step saying what failed. */
static int make_socket(int family, const struct sockaddr *local, socklen_t local_len,
                       const struct sockaddr *remote, socklen_t remote_len,
                       const aloop_datagram_options *o, const char **step, int *out) {
  int one = 1;
  *step = "socket";
  int fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  if (o->reuse_port > 0 && (*step = "SO_REUSEPORT",
                            setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0))
    goto fail;
  if (o->allow_broadcast > 0 && (*step = "SO_BROADCAST",
                                 setsockopt(fd, SOL_SOCKET, SO_BROADCAST, &one, sizeof one) < 0))
    goto fail;
  if (local && (*step = "bind", bind(fd, local, local_len) < 0)) goto fail;
  /* A datagram socket's connect only records the peer: it completes at once. */
  if (remote && (*step = "connect", connect(fd, remote, remote_len) < 0)) goto fail;
  *out = fd;
  return 0;
fail:;
  int err = -errno;
  close(fd);
  return err;
}

static int64_t unix_address(const char *path, struct sockaddr_un *a) {
  *a = (struct sockaddr_un){.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof a->sun_path)
    return aloop_task_error(-ENAMETOOLONG, "unix socket path too long: %s", path);
  strcpy(a->sun_path, path);
  return 0;
}

static int64_t unix_socket(const aloop_datagram_options *o, int *fd) {
  struct sockaddr_un local, remote;
  if ((o->local_path && unix_address(o->local_path, &local) < 0) ||
      (o->remote_path && unix_address(o->remote_path, &remote) < 0))
    return -ENAMETOOLONG;
  struct stat st;
  if (o->local_path && stat(o->local_path, &st) == 0 && S_ISSOCK(st.st_mode))
    unlink(o->local_path); /* a stale socket, as asyncio replaces */
  const char *step;
  int err = make_socket(AF_UNIX, o->local_path ? (struct sockaddr *)&local : NULL, sizeof local,
                        o->remote_path ? (struct sockaddr *)&remote : NULL, sizeof remote, o,
                        &step, fd);
  if (err < 0) {
    const char *path = !strcmp(step, "connect") ? o->remote_path : o->local_path;
    return aloop_task_error(err, "%s unix:%s: %s", step, path ? path : "", aloop_strerror(err));
  }
  return 0;
}

/* In a task: host:port resolved for datagrams (host NULL: the wildcard, for binding); the list is
 * the future's data. */
static int64_t resolve(aloop_loop *loop, const char *host, int port, int family, bool passive,
                       aloop_future **out) {
  char service[16];
  snprintf(service, sizeof service, "%d", port);
  struct addrinfo hints = {.ai_family = family, .ai_socktype = SOCK_DGRAM,
                           .ai_flags = passive ? AI_PASSIVE : 0};
  *out = aloop_getaddrinfo(loop, host && *host ? host : NULL, service, &hints);
  int64_t err = aloop_await_keep(*out);
  if (err < 0)
    err = aloop_task_error(err, "%s:%s: %s", host && *host ? host : "*", service,
                           *out ? aloop_future_message(*out) : aloop_strerror((int)err));
  return err;
}

static const struct addrinfo *of_family(const struct addrinfo *ai, int family) {
  for (; ai; ai = ai->ai_next)
    if (ai->ai_family == family) return ai;
  return NULL;
}

/* Try each candidate address in turn (the remote ones if any, else the local ones), with a local
 * address of the same family; the first socket that works wins, else the last error, in words. */
static int64_t try_addresses(const aloop_datagram_options *o, const struct addrinfo *locals,
                             const struct addrinfo *remotes, int *fd) {
  int64_t err = aloop_task_error(-EADDRNOTAVAIL, "no local address of the remote's family");
  for (const struct addrinfo *ai = remotes ? remotes : locals; ai; ai = ai->ai_next) {
    const struct addrinfo *local = remotes ? of_family(locals, ai->ai_family) : ai;
    if (locals && !local) continue;
    const struct addrinfo *remote = remotes ? ai : NULL;
    const char *step;
    int e = make_socket(ai->ai_family, local ? local->ai_addr : NULL, local ? local->ai_addrlen : 0,
                        remote ? remote->ai_addr : NULL, remote ? remote->ai_addrlen : 0, o, &step,
                        fd);
    if (e == 0) return 0;
    const struct addrinfo *where = remote && !strcmp(step, "connect") ? remote : local;
    aloop_sockaddr a = {.len = where ? where->ai_addrlen : 0};
    if (where) memcpy(&a.addr, where->ai_addr, where->ai_addrlen);
    char words[ALOOP_SOCKADDR_STRLEN];
    err = aloop_task_error(e, "%s %s: %s", step, aloop_sockaddr_str(&a, words, sizeof words),
                           aloop_strerror(e));
  }
  return err;
}

static int64_t ip_socket(struct endpoint_req *r, int *fd) {
  const aloop_datagram_options *o = &r->o;
  bool local = o->local_host || o->local_port, remote = o->remote_host;
  if (!local && !remote) { /* neither: an unbound socket of the family asked for */
    const char *step;
    int err = make_socket(o->family, NULL, 0, NULL, 0, o, &step, fd);
    return err < 0 ? aloop_task_error(err, "%s: %s", step, aloop_strerror(err)) : 0;
  }
  aloop_future *locals = NULL, *remotes = NULL;
  int64_t err = 0;
  if (local) err = resolve(r->loop, o->local_host, o->local_port, o->family, true, &locals);
  if (err == 0 && remote)
    err = resolve(r->loop, o->remote_host, o->remote_port, o->family, false, &remotes);
  if (err == 0)
    err = try_addresses(o, locals ? aloop_future_data(locals) : NULL,
                        remotes ? aloop_future_data(remotes) : NULL, fd);
  aloop_future_release(locals);
  aloop_future_release(remotes);
  return err;
}

/* The request rides in the task's future data until the task takes it: a task cancelled before
 * it ran frees it (and closes a socket given) with the future. */
static int64_t endpoint_task(void *unused) {
  (void)unused;
  aloop_future *self = aloop_task_current();
  struct endpoint_req *r = aloop_future_take_data(self);
  int fd = -1;
  int64_t err = check_options(&r->o);
  if (err == 0) {
    if (r->o.use_sock)
      err = adopt_socket(&r->o, &fd);
    else if (r->o.local_path || r->o.remote_path || r->o.family == AF_UNIX)
      err = unix_socket(&r->o, &fd);
    else
      err = ip_socket(r, &fd);
  }
  if (err == 0) {
    if (r->o.use_sock) r->o.sock = -1; /* the transport's now, even if it cannot be made */
    aloop_datagram_transport *t = transport_new(r->loop, fd, r->proto, r->ctx);
    if (t)
      aloop_future_set_data(self, t, NULL);
    else
      err = -ENOMEM;
  }
  free_endpoint_req(r);
  return err;
}

static int copy_string(const char **s) {
  return !*s || (*s = strdup(*s)) ? 0 : -ENOMEM;
}

aloop_future *aloop_create_datagram_endpoint(aloop_loop *loop,
                                             const aloop_datagram_protocol *proto, void *ctx,
                                             const aloop_datagram_options *opts) {
  struct endpoint_req *r = calloc(1, sizeof *r);
  if (!r) return NULL;
  *r = (struct endpoint_req){.loop = loop, .proto = proto, .ctx = ctx};
  memcpy(&r->o, opts, opts->size < sizeof r->o ? opts->size : sizeof r->o);
  r->o.size = sizeof r->o;
  if (!r->o.use_sock) r->o.sock = -1;
  const char **strings[] = {&r->o.local_host, &r->o.remote_host, &r->o.local_path,
                            &r->o.remote_path};
  int err = 0;
  for (size_t i = 0; i < ALOOP__ARRAY_LEN(strings); i++)
    if (err < 0 || copy_string(strings[i]) < 0) {
      *strings[i] = NULL; /* not a copy: not ours to free */
      err = -ENOMEM;
    }
  aloop_task_options topts = {.size = sizeof topts, .name = "create_datagram_endpoint"};
  aloop_future *f = err < 0 ? NULL : aloop_task_spawn(loop, endpoint_task, NULL, &topts);
  if (!f) {
    free_endpoint_req(r); /* closes a socket given, as promised for every failure */
    return NULL;
  }
  aloop_future_set_data(f, r, free_endpoint_req);
  return f;
}
