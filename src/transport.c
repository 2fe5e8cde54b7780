/* The transport: one implementation over operations for every driver. The read side is one
 * RECV_STREAM operation (io_uring: in the kernel; select/libev: the core reads on readiness into
 * the loop's buffer). The write side keeps at most one SENDMSG operation in flight, covering every
 * queued chunk (up to SEND_IOV), so a queue drains in one request however it was written. With
 * nothing queued, a write tries sendmsg() at once and queues only the rest; on a completion
 * driver a small one (below CHUNK_MIN) is queued instead, and its send rides the next submission
 * batch with the wait (no syscall of its own, and still no extra loop iteration).
 * connection_lost comes once, after both operations have completed and the fd is closed, so no
 * buffer is in use when the transport is freed. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "core.h"
#include "transport_internal.h"
#include "sendfile.h"

static aloop_transport *of_rop(struct aloop__op *op) {
  return (aloop_transport *)((char *)op - offsetof(aloop_transport, rop));
}
static aloop_transport *of_wop(struct aloop__op *op) {
  return (aloop_transport *)((char *)op - offsetof(aloop_transport, wop));
}

static void on_read(aloop_loop *loop, struct aloop__op *op, int32_t res);
static void on_sent(aloop_loop *loop, struct aloop__op *op, int32_t res);
static void sendfile_step(aloop_transport *t);
static void sendfile_abort(aloop_transport *t);

/* Whether reads take one chunk per request (op.h). A multishot receive costs less per message but
 * reads ahead without bound: it goes on filling provided buffers from the socket until its cancel
 * reaches the kernel, megabytes for a peer that floods us. So every connection starts bounded and
 * moves to multishot only after BOUNDED_CHUNKS chunks that were all small (request and answer
 * traffic, where it pays); a bulk chunk (a sender ahead of us: more is waiting) or a pause of its
 * reading keeps it bounded for good, so a client that sends and never reads costs at most one
 * chunk past the protocol's pause. */
enum { BOUNDED_CHUNKS = 16, BULK_CHUNK = 16 * 1024 };
static bool bounded_reads(const aloop_transport *t) {
  return t->pushed_back || t->chunks < BOUNDED_CHUNKS || t->file; /* no multishot read(2) */
}

/* A buffered protocol's room for the next read (0: no bound). A read never takes more than the
 * protocol can hold, so nothing is held here for it when it pauses at its limit. */
static size_t read_room(aloop_transport *t) {
  size_t room = 0;
  if (t->tls) return 0; /* ciphertext: the protocol's room bounds the plain bytes (tls.c) */
  if (!t->proto->get_buffer || !t->proto->get_buffer(t, ALOOP__READ_BUFFER, &room, t->ctx))
    return 0;
  return room;
}

static size_t room_now(struct aloop__op *op) { return read_room(of_rop(op)); }

static void start_reading(aloop_transport *t) {
  if (t->reading || t->read_paused || t->closing || t->eof_received || t->no_reads) return;
  t->reading = true;
  t->rop = (struct aloop__op){.kind = ALOOP__OP_RECV_STREAM, .fd = t->fd, .done = on_read,
                              .bounded = bounded_reads(t), .room = room_now,
                              .file = t->file};
  aloop__op_start(t->loop, &t->rop);
}

static void start_sending(aloop_transport *t) {
  if (t->sending || !t->wq || t->aborting) return;
  t->sending = true;
  size_t n = 0;
  for (struct chunk *c = t->wq; c && n < SEND_IOV; c = c->next)
    t->iov[n++] = (struct iovec){c->data + c->off, c->len - c->off};
  /* Bytes appended to the last chunk later lie beyond its iov entry: the request stays valid. */
  t->msg = (struct msghdr){.msg_iov = t->iov, .msg_iovlen = n};
  t->wop = (struct aloop__op){.kind = ALOOP__OP_SENDMSG, .fd = t->fd, .buf = &t->msg,
                              .done = on_sent, .file = t->file};
  aloop__op_start(t->loop, &t->wop);
}

static void free_queue(aloop_transport *t) {
  for (struct chunk *c = t->wq, *next; c; c = next) {
    next = c->next;
    free(c);
  }
  t->wq = t->wq_last = NULL;
  t->wq_bytes = 0;
}

static void lost(aloop_loop *loop, void *arg) {
  (void)loop;
  aloop_transport *t = arg;
  if (t->tls) aloop__tls_free(t); /* first: a caller waiting for the handshake may silence proto */
  if (t->proto->connection_lost) t->proto->connection_lost(t, t->lost_err, t->ctx);
  if (t->conn.lost) t->conn.lost(&t->conn);
  free(t->spare);
  free(t->held);
  free(t);
}

/* Once closing and both operations are done (and, for a graceful close, the queue is sent): close
 * the fd and tell the protocol on the next iteration. */
static void maybe_finish(aloop_transport *t) {
  if (!t->made || !t->closing || t->lost_scheduled || t->reading || t->sending) return;
  if (t->wq && !t->aborting) return;
  if (t->sendfile) return; /* a close sends the file too; an abort waits until it let go */
  t->lost_scheduled = true;
  free_queue(t);
  aloop_close(t->loop, t->fd);
  if (aloop_call_soon(t->loop, lost, t, NULL) < 0) lost(t->loop, t); /* out of memory: now */
}

void aloop_transport_abort(aloop_transport *t) {
  if (t->aborting) return;
  t->closing = t->aborting = true;
  if (t->sendfile) sendfile_abort(t);
  if (t->reading) aloop__op_cancel(t->loop, &t->rop);
  if (t->sending) aloop__op_cancel(t->loop, &t->wop);
  maybe_finish(t);
}

static void lose(aloop_transport *t, int err) {
  if (!t->lost_err) t->lost_err = err;
  aloop_transport_abort(t);
}
void aloop__transport_lose(aloop_transport *t, int err) { lose(t, err); }

static void report(aloop_transport *t, int err, const char *message) {
  if (t->file) {
    aloop__report(t->loop, err, t->fd, "pipe", "fd %d: %s", t->fd, message);
    return;
  }
  char peer[ALOOP_SOCKADDR_STRLEN] = "?";
  aloop_sockaddr addr;
  if (aloop_transport_peername(t, &addr) == 0) aloop_sockaddr_str(&addr, peer, sizeof peer);
  aloop__report(t->loop, err, t->fd, "connection", "%s: %s", peer, message);
}

/* What the network or the peer did is the connection's own news (connection_lost says it); a
 * local fault (out of memory, an fd the driver cannot watch) is also reported. */
static bool peer_error(int err) {
  static const int errs[] = {ECONNRESET, EPIPE,       ETIMEDOUT, ECONNABORTED, ECONNREFUSED,
                             ENOTCONN,   EHOSTUNREACH, ENETUNREACH, ENETDOWN,  EHOSTDOWN};
  for (size_t i = 0; i < ALOOP__ARRAY_LEN(errs); i++)
    if (err == -errs[i]) return true;
  return false;
}

static void fail(aloop_transport *t, int err) {
  if (!peer_error(err) && !t->aborting) report(t, err, "connection failed");
  lose(t, err);
}

void aloop_transport_fail(aloop_transport *t, int err, const char *fmt, ...) {
  char message[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(message, sizeof message, fmt, ap);
  va_end(ap);
  report(t, err, message);
  lose(t, err < 0 ? err : -EIO);
}

void aloop_transport_close(aloop_transport *t) {
  if (t->closing) return;
  t->closing = true;
  /* close_notify behind what is queued, before a cancelled read can finish the transport */
  if (t->tls) aloop__tls_close(t);
  if (t->reading) aloop__op_cancel(t->loop, &t->rop);
  maybe_finish(t);
}

bool aloop_transport_is_closing(const aloop_transport *t) { return t->closing; }

void aloop_transport_set_protocol(aloop_transport *t, const aloop_protocol *proto, void *ctx) {
  t->proto = proto;
  t->ctx = ctx;
}

int aloop__transport_hold(aloop_transport *t, const void *data, size_t n) {
  unsigned char *held = realloc(t->held, t->held_len + n);
  if (!held) return -ENOMEM;
  memcpy(held + t->held_len, data, n);
  t->held = held;
  t->held_len += n;
  return 0;
}

/* Bytes to the protocol: data_received, or a buffered protocol's buffers, one after another; it
 * may pause reading or close in between. How many it took: the rest is the caller's to hold. */
size_t aloop__transport_deliver(aloop_transport *t, const unsigned char *data, size_t n) {
  if (!t->proto->get_buffer) {
    if (t->proto->data_received) t->proto->data_received(t, data, n, t->ctx);
    return n;
  }
  size_t took = 0;
  while (took < n && !t->read_paused && !t->closing) {
    size_t room = 0;
    void *buf = t->proto->get_buffer(t, n - took, &room, t->ctx);
    if (!buf || !room) {
      aloop_transport_fail(t, -ENOBUFS, "the protocol gave no buffer to read into");
      return n;
    }
    size_t k = room < n - took ? room : n - took;
    memcpy(buf, data + took, k);
    took += k;
    t->proto->buffer_updated(t, k, t->ctx);
  }
  return t->closing ? n : took; /* closed: what is left is dropped, as asyncio does */
}

void aloop__transport_deliver_eof(aloop_transport *t) {
  t->eof_pending = false;
  if (!t->closing && !(t->proto->eof_received && t->proto->eof_received(t, t->ctx)))
    aloop_transport_close(t);
}

static void on_read(aloop_loop *loop, struct aloop__op *op, int32_t res) {
  aloop_transport *t = of_rop(op);
  if (!op->more) t->reading = false;
  if (res > 0 && t->chunks < BOUNDED_CHUNKS) t->chunks++;
  /* Bulk: a big chunk, or one that filled all the room the protocol gave (either way the sender
   * is ahead of us and more is waiting). */
  bool bulk = res >= BULK_CHUNK || (op->len && res > 0 && (size_t)res >= op->len);
  if (bulk && !t->pushed_back) {
    t->pushed_back = true;
    /* A multishot receive in the kernel's hands would read on regardless: stop it; it is
     * restarted bounded when its cancel completes (below). */
    if (op->state == OP_SUBMITTED && !op->bounded && !t->read_paused && !t->closing)
      aloop__op_cancel(loop, op);
  }
  if (res > 0) {
    if (t->closing) {
      /* closed: what still arrives is dropped, as asyncio does */
    } else if (t->tls) {
      aloop__tls_received(t, op->buf, (size_t)res); /* records in; plain bytes to the protocol */
    } else {
      /* Paused, or behind bytes not yet delivered: all of it waits; else what the protocol did
       * not take before it paused. */
      size_t took = t->read_paused || t->held_len ? 0 : aloop__transport_deliver(t, op->buf, (size_t)res);
      if (took < (size_t)res && aloop__transport_hold(t, (unsigned char *)op->buf + took, (size_t)res - took) < 0)
        fail(t, -ENOMEM);
    }
  } else if (res == 0) {
    t->eof_received = true;
    if (t->tls)
      aloop__tls_ended(t); /* after the records before it (or the handshake fails) */
    else if (t->read_paused || t->held_len)
      t->eof_pending = true; /* the protocol hears of it after the bytes before it */
    else
      aloop__transport_deliver_eof(t);
  } else if (res != -ECANCELED) {
    fail(t, res);
  }
  op->bounded = bounded_reads(t); /* for the driver's re-arm, if it re-arms */
  if (!t->reading) start_reading(t); /* a stream op that ended early (io_uring re-arm) */
  maybe_finish(t);
}

/* A sent chunk is kept for the next write, so a message costs no malloc and no fresh pages to
 * fault in: one of the smallest size goes to the loop's spares (any transport's next write takes
 * it, and a connection that goes quiet holds none: an idle connection on io_uring, whose small
 * writes are all queued, held 16 KiB of heap each); a bigger one (up to the high mark, the memory
 * the connection may queue anyway) stays with its connection, which writes big messages. */
static void keep_spare(aloop_transport *t, struct chunk *c) {
  aloop_loop *loop = t->loop;
  if (c->cap == CHUNK_MIN && loop->nspare_chunks < ALOOP__SPARE_CHUNKS) {
    loop->spare_chunks[loop->nspare_chunks++] = c;
  } else if (c->cap == CHUNK_MIN || c->cap > t->high || (t->spare && t->spare->cap >= c->cap)) {
    free(c);
  } else {
    free(t->spare);
    t->spare = c;
  }
}

/* A chunk for at least cap bytes (cap >= CHUNK_MIN): a spare if one fits, else a new one. */
static struct chunk *new_chunk(aloop_transport *t, size_t cap) {
  aloop_loop *loop = t->loop;
  struct chunk *c;
  if (cap == CHUNK_MIN && loop->nspare_chunks) {
    c = loop->spare_chunks[--loop->nspare_chunks];
  } else if (t->spare && t->spare->cap >= cap) { /* (not the chunk just queued: it is unsent) */
    c = t->spare;
    t->spare = NULL;
    cap = c->cap;
  } else if (!(c = malloc(sizeof *c + cap))) {
    return NULL;
  }
  c->cap = cap;
  return c;
}

static void maybe_resume_writing(aloop_transport *t) {
  if (!t->write_paused || aloop_transport_get_write_buffer_size(t) > t->low) return;
  t->write_paused = false;
  if (t->proto->resume_writing && !t->aborting) t->proto->resume_writing(t, t->ctx);
}

static void on_sent(aloop_loop *loop, struct aloop__op *op, int32_t res) {
  (void)loop;
  aloop_transport *t = of_wop(op);
  t->sending = false;
  if (res < 0) {
    if (res != -ECANCELED) fail(t, res);
    maybe_finish(t);
    return;
  }
  t->wq_bytes -= (size_t)res;
  for (size_t left = (size_t)res; left;) { /* drop what was sent, chunk by chunk */
    struct chunk *c = t->wq;
    size_t take = c->len - c->off < left ? c->len - c->off : left;
    c->off += take;
    left -= take;
    if (c->off < c->len) break;
    if (!(t->wq = c->next)) t->wq_last = NULL;
    keep_spare(t, c);
  }
  if (t->wq) {
    start_sending(t);
  } else if (t->eof_requested && !t->eof_sent) {
    t->eof_sent = true;
    shutdown(t->fd, SHUT_WR);
  }
  maybe_resume_writing(t);
  sendfile_step(t); /* waiting for the queue to drain, or copying */
  maybe_finish(t);
}

static int enqueue(aloop_transport *t, const unsigned char *data, size_t n) {
  struct chunk *tail = t->wq_last;
  if (tail && tail->cap - tail->len >= n) { /* beyond what an in-flight send covers: safe */
    memcpy(tail->data + tail->len, data, n);
    tail->len += n;
  } else {
    struct chunk *c = new_chunk(t, n > CHUNK_MIN ? n : CHUNK_MIN);
    if (!c) return -ENOMEM;
    *c = (struct chunk){.len = n, .cap = c->cap};
    memcpy(c->data, data, n);
    if (tail)
      tail->next = c;
    else
      t->wq = c;
    t->wq_last = c;
  }
  t->wq_bytes += n;
  return 0;
}

int aloop_transport_writev(aloop_transport *t, const struct iovec *iov, int iovcnt) {
  if (t->no_writes) return -EBADF;
  if (t->closing || t->eof_requested) return -EPIPE;
  if (t->sendfile) return -EBUSY;
  return t->tls ? aloop__tls_writev(t, iov, iovcnt) : aloop__transport_send(t, iov, iovcnt);
}

int aloop__transport_send(aloop_transport *t, const struct iovec *iov, int iovcnt) {
  size_t total = 0, sent = 0;
  for (int i = 0; i < iovcnt; i++) total += iov[i].iov_len;
  if (!total) return 0;
  /* Nothing queued: straight to the socket, except small writes on a completion driver, which
   * ride the next submission batch (copying 1 KiB costs less than a syscall; copying 64 KiB into
   * a queue chunk, and faulting its pages in, costs more). */
  if (!t->wq && !t->sending && (!t->native_send || total >= CHUNK_MIN)) {
    struct msghdr msg = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)iovcnt};
    ssize_t n;
    do n = t->file ? writev(t->fd, iov, iovcnt) : sendmsg(t->fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
      fail(t, -errno);
      return 0; /* the error goes to connection_lost */
    }
    if (n > 0) sent = (size_t)n;
    if (sent == total) return 0;
  }
  for (int i = 0; i < iovcnt; i++) { /* queue what is left */
    size_t len = iov[i].iov_len, skip = sent < len ? sent : len;
    sent -= skip;
    if (len > skip && enqueue(t, (const unsigned char *)iov[i].iov_base + skip, len - skip) < 0) {
      fail(t, -ENOMEM);
      return -ENOMEM;
    }
  }
  start_sending(t);
  aloop__transport_check_high(t);
  return 0;
}

void aloop__transport_check_high(aloop_transport *t) {
  if (!t->write_paused && aloop_transport_get_write_buffer_size(t) > t->high) {
    t->write_paused = true;
    if (t->proto->pause_writing) t->proto->pause_writing(t, t->ctx);
  }
}

int aloop_transport_write(aloop_transport *t, const void *data, size_t n) {
  struct iovec iov = {(void *)data, n};
  return aloop_transport_writev(t, &iov, 1);
}

int aloop_transport_write_eof(aloop_transport *t) {
  if (t->no_writes) return -EBADF;
  if (t->closing) return -EPIPE;
  if (t->sendfile) return -EBUSY;
  if (t->eof_requested) return 0;
  if (t->file) { /* a pipe has no half-close: the reader sees the end when it is closed */
    aloop_transport_close(t);
    return 0;
  }
  /* TLS: close_notify first, once the handshake is done; it then shuts the socket's side. */
  return t->tls ? aloop__tls_write_eof(t) : aloop__transport_shutdown_write(t);
}

/* Shut the socket's writing side once the queue is sent (at once if it is empty). */
int aloop__transport_shutdown_write(aloop_transport *t) {
  t->eof_requested = true;
  if (!t->wq && !t->sending) {
    t->eof_sent = true;
    if (shutdown(t->fd, SHUT_WR) < 0) return -errno;
  }
  return 0;
}

static void deliver_held(aloop_loop *loop, void *arg) {
  (void)loop;
  aloop_transport *t = arg;
  /* Paused again, or closed, meanwhile: keep (or drop) the bytes; resume schedules us again. */
  if (t->read_paused || t->closing) return;
  if (t->held_len) {
    unsigned char *held = t->held;
    size_t n = t->held_len;
    t->held = NULL;
    t->held_len = 0;
    size_t took = aloop__transport_deliver(t, held, n);
    if (took < n) { /* a buffered protocol paused again: keep the rest, in order */
      memmove(held, held + took, n - took);
      t->held = held;
      t->held_len = n - took;
    } else {
      free(held);
    }
    if (t->read_paused || t->closing) return;
  }
  if (t->tls) { /* the records read before the pause, then the end if it came, or more */
    t->eof_pending = false;
    aloop__tls_pump(t);
    start_reading(t);
  } else if (t->eof_pending) {
    aloop__transport_deliver_eof(t);
  } else {
    start_reading(t);
  }
}

void aloop_transport_pause_reading(aloop_transport *t) {
  if (t->read_paused || t->closing) return;
  t->read_paused = true;
  t->pushed_back = true;
  if (t->reading) aloop__op_cancel(t->loop, &t->rop);
}

void aloop_transport_resume_reading(aloop_transport *t) {
  if (!t->read_paused || t->closing) return;
  t->read_paused = false;
  if (t->held_len || t->eof_pending || (t->tls && aloop__tls_has_input(t)))
    aloop_call_soon(t->loop, deliver_held, t, NULL);
  else
    start_reading(t);
}

int aloop_transport_set_write_buffer_limits(aloop_transport *t, size_t high, size_t low) {
  if (!high) high = ALOOP_WRITE_HIGH_DEFAULT;
  if (!low) low = high / 4;
  if (low > high) return -EINVAL;
  t->high = high;
  t->low = low;
  return 0;
}

size_t aloop_transport_get_write_buffer_size(const aloop_transport *t) {
  return t->wq_bytes + (t->tls ? aloop__tls_pending(t) : 0);
}
int aloop_transport_fd(const aloop_transport *t) { return t->fd; }
struct aloop__conn *aloop__transport_conn(aloop_transport *t) { return &t->conn; }
aloop_transport *aloop__conn_transport(struct aloop__conn *c) {
  return (aloop_transport *)((char *)c - offsetof(aloop_transport, conn));
}
aloop_loop *aloop_transport_loop(const aloop_transport *t) { return t->loop; }

static int name_of(int fd, aloop_sockaddr *out, int (*fn)(int, struct sockaddr *, socklen_t *)) {
  out->len = sizeof out->addr;
  return fn(fd, (struct sockaddr *)&out->addr, &out->len) < 0 ? -errno : 0;
}
int aloop_transport_peername(const aloop_transport *t, aloop_sockaddr *out) {
  if (t->peer.len) {
    *out = t->peer;
    return 0;
  }
  return name_of(t->fd, out, getpeername);
}

void aloop__transport_set_ctx(aloop_transport *t, void *ctx) { t->ctx = ctx; }

void aloop__transport_silence(aloop_transport *t) {
  static const aloop_protocol nobody;
  t->proto = &nobody;
}

void aloop__transport_discard(aloop_transport *t) {
  aloop__transport_silence(t);
  aloop_transport_abort(t); /* the fd is closed once made() has run */
}

void aloop__transport_set_peer(aloop_transport *t, const struct sockaddr_storage *addr,
                               socklen_t len) {
  if (len > sizeof t->peer.addr) return;
  memcpy(&t->peer.addr, addr, len);
  t->peer.len = len;
}
int aloop_transport_sockname(const aloop_transport *t, aloop_sockaddr *out) {
  return name_of(t->fd, out, getsockname);
}

static void made(aloop_loop *loop, void *arg) {
  (void)loop;
  aloop_transport *t = arg;
  t->made = true;
  /* The peer's address while there is one: after both ends close, getpeername has none. */
  if (!t->file && !t->peer.len && name_of(t->fd, &t->peer, getpeername) < 0) t->peer.len = 0;
  if (t->tls)
    aloop__tls_begin(t); /* connection_made once the handshake is done */
  else if (t->proto->connection_made)
    t->proto->connection_made(t, t->ctx);
  start_reading(t);
  maybe_finish(t);
}

/* A pipe's kind: a FIFO a completion driver can read and write itself, or a tty or other
 * character device it leaves to readiness; -EINVAL for what is neither (a regular file is
 * always "ready" and never ends by blocking: it is file I/O, not a pipe). */
static int file_kind(int fd, struct stat *st) {
  if (fstat(fd, st) < 0) return -errno;
  if (S_ISFIFO(st->st_mode)) return ALOOP__FILE_PIPE;
  if (S_ISCHR(st->st_mode)) return ALOOP__FILE_OTHER;
  if (S_ISSOCK(st->st_mode)) return ALOOP__FILE_OTHER; /* one end of a socketpair given as a pipe */
  return -EINVAL;
}

/* A write pipe's end turned readable: its reader went away (a pipe's write end reports an error
 * then; a socket given as a pipe, its peer's close or bytes). As asyncio's write pipe does, the
 * transport ends now rather than at its next write: connection_lost gets 0 if nothing was
 * waiting to be written, -EPIPE if something was (those bytes are lost). */
static void on_reader_gone(aloop_loop *loop, int fd, void *arg) {
  aloop_transport *t = arg;
  aloop__fd_unwatch_internal(loop, fd); /* once: the condition stays until the fd is closed */
  if (!t->aborting) lose(t, t->wq || t->sending || t->sendfile ? -EPIPE : 0);
}

static aloop_transport *pipe_transport(aloop_loop *loop, int fd, const aloop_protocol *proto,
                                       void *ctx, bool reads) {
  struct stat st;
  int kind = file_kind(fd, &st);
  int flags = kind < 0 ? -1 : fcntl(fd, F_GETFL);
  if (kind < 0 || flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
    int err = kind < 0 ? -kind : errno;
    close(fd);
    errno = err;
    return NULL;
  }
  if (!reads) aloop__ignore_sigpipe(); /* write(2) has no MSG_NOSIGNAL */
  aloop_transport *t = aloop_transport_new(loop, fd, proto, ctx);
  if (!t) return NULL;
  t->file = (uint8_t)kind;
  t->native_send = aloop__op_native(loop, ALOOP__OP_SENDMSG) && kind == ALOOP__FILE_PIPE;
  t->no_reads = !reads;
  t->no_writes = reads;
  /* Not a tty's: readable there means typed input. Without the watch (an fd the driver cannot
   * hold) the reader's going is still found, at the next write. */
  if (!reads && !S_ISCHR(st.st_mode)) aloop__fd_watch_internal(loop, fd, on_reader_gone, t);
  return t;
}

aloop_transport *aloop_connect_read_pipe(aloop_loop *loop, int fd, const aloop_protocol *proto,
                                         void *ctx) {
  return pipe_transport(loop, fd, proto, ctx, true);
}

aloop_transport *aloop_connect_write_pipe(aloop_loop *loop, int fd, const aloop_protocol *proto,
                                          void *ctx) {
  return pipe_transport(loop, fd, proto, ctx, false);
}

aloop_transport *aloop_transport_new(aloop_loop *loop, int fd, const aloop_protocol *proto,
                                     void *ctx) {
  aloop_transport *t = calloc(1, sizeof *t);
  if (!t || aloop_call_soon(loop, made, t, NULL) < 0) {
    free(t);
    close(fd);
    errno = ENOMEM;
    return NULL;
  }
  t->loop = loop;
  t->fd = fd;
  t->proto = proto;
  t->ctx = ctx;
  t->native_send = aloop__op_native(loop, ALOOP__OP_SENDMSG);
  aloop_transport_set_write_buffer_limits(t, 0, 0);
  return t;
}

/* ---- sendfile ----------------------------------------------------------------------------------
 * One file at a time, and only the file: it starts once the write queue has drained (as asyncio
 * waits for the transport's buffer to empty) and until it ends the protocol's writes answer
 * -EBUSY. A socket transport sends it natively (SENDFILE operations on wop, one after another);
 * anything else copies it through the write queue, refilled at the low mark up to the high one,
 * without pause_writing (the protocol is not the one writing). */
struct tsendfile {
  struct aloop__transfer x;
  struct aloop__op read; /* the copy's read of the file's next chunk into x.buf */
  aloop_transport *t;
  aloop_future *future; /* the transfer's reference; NULL once it is done */
  bool started;         /* the queue had drained */
  bool in_flight;       /* a native operation is on wop: x.sf is the kernel's until it completes */
  bool reading;         /* `read` is in flight: x.buf is the kernel's (or a thread's) until then */
  bool stepping;        /* sendfile_step is on the stack: it goes round again instead */
  bool again;
};

/* Whether the kernel can send a file straight to this transport's fd. A plain socket: yes. A pipe
 * or tty: the copy (asyncio's fallback), and so for any transport that transforms its bytes. */
static bool sendfile_native(const aloop_transport *t) { return !t->file && !t->tls; }

/* A piece of the copy out: into the queue, or through the TLS layer into records. */
static int copy_out(aloop_transport *t, const void *data, size_t n) {
  if (!t->tls) return enqueue(t, data, n);
  struct iovec iov = {(void *)data, n};
  return aloop__tls_writev(t, &iov, 1);
}

static void sendfile_free(aloop_transport *t) {
  struct tsendfile *sf = t->sendfile;
  if (!sf || sf->future || sf->in_flight || sf->reading || sf->stepping) return; /* in use */
  t->sendfile = NULL;
  aloop__transfer_fini(&sf->x);
  free(sf);
}

/* The outcome: the total sent, or an error with words. The transport stays as it is. */
static void sendfile_end(aloop_transport *t, int64_t outcome, const char *why) {
  struct tsendfile *sf = t->sendfile;
  if (!sf->future) return;
  char message[160];
  if (outcome < 0 && outcome != -ECANCELED)
    snprintf(message, sizeof message, "sendfile: %s after %llu bytes: %s", why,
             (unsigned long long)sf->x.total, aloop_strerror((int)outcome));
  aloop__future_finish(sf->future, outcome, outcome < 0 && outcome != -ECANCELED ? message : NULL);
  aloop_future_release(sf->future);
  sf->future = NULL;
  sendfile_free(t);
}

/* The transport is aborted, or failed (then lost_err says why): the transfer fails with it. */
static void sendfile_abort(aloop_transport *t) {
  sendfile_end(t, t->lost_err ? t->lost_err : -ECONNABORTED,
               t->lost_err ? "the connection failed" : "the transport was aborted");
}

static void on_sendfile_chunk(aloop_loop *loop, struct aloop__op *op, int32_t res) {
  (void)loop;
  aloop_transport *t = of_wop(op);
  struct tsendfile *sf = t->sendfile;
  t->sending = sf->in_flight = false;
  if (!sf->future) { /* ended meanwhile (aborted): the operation was all that held it */
    sendfile_free(t);
  } else if (res == -ECANCELED || aloop__future_cancel_requested(sf->future)) {
    sendfile_end(t, -ECANCELED, NULL);
  } else if (res < 0 && peer_error(res)) {
    fail(t, res); /* the connection's end: sendfile_abort gives the future the reason */
  } else if (res < 0 && !aloop__transfer_fall_back(&sf->x, res)) {
    sendfile_end(t, res, "stopped"); /* the file's fault (or the fd's): the connection goes on */
  } else if (res >= 0 && aloop__transfer_sent(&sf->x, (size_t)res)) {
    sendfile_end(t, (int64_t)sf->x.total, NULL);
  } else {
    sendfile_step(t);
  }
  maybe_finish(t);
}

static void on_file_read(aloop_loop *loop, struct aloop__op *op, int32_t res) {
  (void)loop;
  struct tsendfile *sf = (struct tsendfile *)((char *)op - offsetof(struct tsendfile, read));
  aloop_transport *t = sf->t;
  sf->reading = false;
  if (!sf->future) { /* ended meanwhile (aborted): the read was all that held it */
    sendfile_free(t);
  } else if (res == -ECANCELED || aloop__future_cancel_requested(sf->future)) {
    sendfile_end(t, -ECANCELED, NULL); /* what is queued still goes out */
  } else if (res < 0) {
    sendfile_end(t, res, "reading the file");
  } else {
    aloop__transfer_sent(&sf->x, (size_t)res);
    if (res > 0 && copy_out(t, sf->x.buf, (size_t)res) < 0) {
      fail(t, -ENOMEM);
    } else if (!t->aborting) { /* the TLS layer may have failed the connection */
      start_sending(t);
      sendfile_step(t);
    }
  }
  maybe_finish(t);
}

/* The copy: refill the queue from the file once it is down to the low mark, one read at a time.
 * The read completes later (on_file_read queues its bytes and comes back here). */
static void sendfile_copy(aloop_transport *t, struct tsendfile *sf) {
  if (sf->reading) return;
  if (sf->x.done) {
    if (!t->wq && !t->sending) sendfile_end(t, (int64_t)sf->x.total, NULL);
    return;
  }
  if (t->wq_bytes > t->low) return; /* on_sent comes back */
  int err = aloop__transfer_read_op(&sf->x, &sf->read, t->high - t->wq_bytes);
  if (err < 0) {
    sendfile_end(t, err, "reading the file");
    return;
  }
  sf->read.done = on_file_read;
  sf->reading = true;
  aloop__op_start(t->loop, &sf->read); /* may complete at once (a failure): then it steps again */
}

/* Send what comes next: wait for the queue to drain, then a native chunk or a copy. Runs as a loop
 * (operations may complete inside aloop__op_start), never recursively. */
static void sendfile_step(aloop_transport *t) {
  struct tsendfile *sf = t->sendfile;
  if (!sf) return;
  if (sf->stepping) {
    sf->again = true;
    return;
  }
  sf->stepping = true;
  do {
    sf->again = false;
    if (!sf->future || t->aborting) break;
    if (!sf->started && (t->wq || t->sending)) break; /* on_sent comes back */
    sf->started = true;
    if (sf->x.copy) {
      sendfile_copy(t, sf);
    } else if (!t->sending) {
      aloop__transfer_op(&sf->x, &t->wop, t->fd);
      t->wop.done = on_sendfile_chunk;
      t->sending = sf->in_flight = true;
      aloop__op_start(t->loop, &t->wop);
    }
  } while (sf->again);
  sf->stepping = false;
  sendfile_free(t);
}

static void sendfile_cancel(aloop_future *f, void *arg) {
  (void)f;
  aloop_transport *t = arg;
  struct tsendfile *sf = t->sendfile;
  if (sf->in_flight)
    aloop__op_cancel(t->loop, &t->wop); /* on_sendfile_chunk ends it */
  else if (sf->reading)
    aloop__op_cancel(t->loop, &sf->read); /* on_file_read ends it */
  else
    sendfile_end(t, -ECANCELED, NULL); /* what is queued still goes out */
  maybe_finish(t);
}

/* A future that failed at once, with words. */
static aloop_future *refused(aloop_loop *loop, int err, const char *why) {
  aloop_future *f = aloop_future_new(loop, "transport_sendfile");
  if (f) aloop_future_set_error(f, err, "sendfile: %s", why);
  return f;
}

aloop_future *aloop_transport_sendfile(aloop_transport *t, int fd, off_t offset, size_t count) {
  if (t->no_writes) return refused(t->loop, -EBADF, "a read pipe cannot send");
  if (t->closing || t->eof_requested) return refused(t->loop, -EPIPE, "the transport is closing");
  if (t->sendfile) return refused(t->loop, -EBUSY, "another file is being sent");
  struct tsendfile *sf = calloc(1, sizeof *sf);
  aloop_future *f = sf ? aloop_future_new(t->loop, "transport_sendfile") : NULL;
  if (!f) {
    free(sf);
    errno = ENOMEM;
    return NULL;
  }
  int err = aloop__transfer_init(&sf->x, fd, offset, count, sendfile_native(t));
  if (err < 0) {
    free(sf);
    aloop_future_set_error(f, err, "sendfile: %s", offset < 0 ? "the offset is negative"
                                   : err == -EINVAL ? "not a regular file" : "cannot use the file");
    return f;
  }
  sf->future = aloop_future_ref(f);
  sf->t = t;
  t->sendfile = sf;
  aloop__future_set_work(f, sendfile_cancel, t);
  sendfile_step(t);
  maybe_finish(t); /* the connection may have failed in the first chunk */
  return f;
}
