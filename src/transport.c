/* The transport: one implementation over operations for every driver. The read side is one
 * RECV_STREAM operation (io_uring: in the kernel; select/libev: the core reads on readiness into
 * the loop's buffer); the write side tries send() at once when nothing is queued, queues only the
 * rest in chunks, and keeps at most one SEND operation in flight. connection_lost comes once, after
 * both operations have completed and the fd is closed, so no buffer is in use when the transport
 * is freed. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core.h"

/* Queued bytes live in chunks of at least 16 KiB, filled up before a new one is made, so that many
 * small writes become few sends. */
#define CHUNK_MIN (16 * 1024)

struct chunk {
  struct chunk *next;
  size_t off, len, cap;
  unsigned char data[];
};

struct aloop_transport {
  aloop_loop *loop;
  int fd;
  const aloop_protocol *proto;
  void *ctx;
  struct aloop__op rop, wop;
  bool reading, sending;         /* rop / wop in flight */
  bool read_paused, eof_received;
  bool closing, aborting, lost_scheduled;
  bool eof_requested, eof_sent;
  bool write_paused;
  bool made;                     /* connection_made has run: connection_lost may follow */
  int lost_err;
  struct chunk *wq, *wq_last;    /* queued bytes, oldest first */
  size_t wq_bytes, high, low;
  unsigned char *held;           /* bytes that arrived while reading was paused */
  size_t held_len;
};

static aloop_transport *of_rop(struct aloop__op *op) {
  return (aloop_transport *)((char *)op - offsetof(aloop_transport, rop));
}
static aloop_transport *of_wop(struct aloop__op *op) {
  return (aloop_transport *)((char *)op - offsetof(aloop_transport, wop));
}

static void on_read(aloop_loop *loop, struct aloop__op *op, int32_t res);
static void on_sent(aloop_loop *loop, struct aloop__op *op, int32_t res);

static void start_reading(aloop_transport *t) {
  if (t->reading || t->read_paused || t->closing || t->eof_received) return;
  t->reading = true;
  t->rop = (struct aloop__op){.kind = ALOOP__OP_RECV_STREAM, .fd = t->fd, .done = on_read};
  aloop__op_start(t->loop, &t->rop);
}

static void start_sending(aloop_transport *t) {
  struct chunk *c = t->wq;
  if (t->sending || !c || t->aborting) return;
  t->sending = true;
  t->wop = (struct aloop__op){.kind = ALOOP__OP_SEND, .fd = t->fd, .buf = c->data + c->off,
                              .len = c->len - c->off, .done = on_sent};
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
  if (t->proto->connection_lost) t->proto->connection_lost(t, t->lost_err, t->ctx);
  free(t->held);
  free(t);
}

/* Once closing and both operations are done (and, for a graceful close, the queue is sent): close
 * the fd and tell the protocol on the next iteration. */
static void maybe_finish(aloop_transport *t) {
  if (!t->made || !t->closing || t->lost_scheduled || t->reading || t->sending) return;
  if (t->wq && !t->aborting) return;
  t->lost_scheduled = true;
  free_queue(t);
  aloop_close(t->loop, t->fd);
  if (aloop_call_soon(t->loop, lost, t, NULL) < 0) lost(t->loop, t); /* out of memory: now */
}

void aloop_transport_abort(aloop_transport *t) {
  if (t->aborting) return;
  t->closing = t->aborting = true;
  if (t->reading) aloop__op_cancel(t->loop, &t->rop);
  if (t->sending) aloop__op_cancel(t->loop, &t->wop);
  maybe_finish(t);
}

static void fail(aloop_transport *t, int err) {
  if (!t->lost_err) t->lost_err = err;
  aloop_transport_abort(t);
}

void aloop_transport_close(aloop_transport *t) {
  if (t->closing) return;
  t->closing = true;
  if (t->reading) aloop__op_cancel(t->loop, &t->rop);
  maybe_finish(t);
}

bool aloop_transport_is_closing(const aloop_transport *t) { return t->closing; }

static int hold(aloop_transport *t, const void *data, size_t n) {
  unsigned char *held = realloc(t->held, t->held_len + n);
  if (!held) return -ENOMEM;
  memcpy(held + t->held_len, data, n);
  t->held = held;
  t->held_len += n;
  return 0;
}

static void on_read(aloop_loop *loop, struct aloop__op *op, int32_t res) {
  (void)loop;
  aloop_transport *t = of_rop(op);
  if (!op->more) t->reading = false;
  if (res > 0) {
    if (t->closing) {
      /* closed: what still arrives is dropped, as asyncio does */
    } else if (t->read_paused) { /* arrived while a pause was on its way to the kernel */
      if (hold(t, op->buf, (size_t)res) < 0) fail(t, -ENOMEM);
    } else if (t->proto->data_received) {
      t->proto->data_received(t, op->buf, (size_t)res, t->ctx);
    }
  } else if (res == 0) {
    t->eof_received = true;
    if (!t->closing && !(t->proto->eof_received && t->proto->eof_received(t, t->ctx)))
      aloop_transport_close(t);
  } else if (res != -ECANCELED) {
    fail(t, res);
  }
  if (!t->reading) start_reading(t); /* a stream op that ended early (io_uring re-arm) */
  maybe_finish(t);
}

static void maybe_resume_writing(aloop_transport *t) {
  if (!t->write_paused || t->wq_bytes > t->low) return;
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
  struct chunk *c = t->wq;
  c->off += (size_t)res;
  t->wq_bytes -= (size_t)res;
  if (c->off == c->len) {
    if (!(t->wq = c->next)) t->wq_last = NULL;
    free(c);
  }
  if (t->wq) {
    start_sending(t);
  } else if (t->eof_requested && !t->eof_sent) {
    t->eof_sent = true;
    shutdown(t->fd, SHUT_WR);
  }
  maybe_resume_writing(t);
  maybe_finish(t);
}

static int enqueue(aloop_transport *t, const unsigned char *data, size_t n) {
  struct chunk *tail = t->wq_last;
  if (tail && tail->cap - tail->len >= n) { /* beyond what an in-flight send covers: safe */
    memcpy(tail->data + tail->len, data, n);
    tail->len += n;
  } else {
    size_t cap = n > CHUNK_MIN ? n : CHUNK_MIN;
    struct chunk *c = malloc(sizeof *c + cap);
    if (!c) return -ENOMEM;
    *c = (struct chunk){.len = n, .cap = cap};
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
  if (t->closing || t->eof_requested) return -EPIPE;
  size_t total = 0, sent = 0;
  for (int i = 0; i < iovcnt; i++) total += iov[i].iov_len;
  if (!total) return 0;
  if (!t->wq && !t->sending) { /* nothing queued: straight to the socket, no extra iteration */
    struct msghdr msg = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)iovcnt};
    ssize_t n;
    do n = sendmsg(t->fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
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
  if (!t->write_paused && t->wq_bytes > t->high) {
    t->write_paused = true;
    if (t->proto->pause_writing) t->proto->pause_writing(t, t->ctx);
  }
  return 0;
}

int aloop_transport_write(aloop_transport *t, const void *data, size_t n) {
  struct iovec iov = {(void *)data, n};
  return aloop_transport_writev(t, &iov, 1);
}

int aloop_transport_write_eof(aloop_transport *t) {
  if (t->closing) return -EPIPE;
  if (t->eof_requested) return 0;
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
  if (t->read_paused || t->closing || !t->held_len) return;
  unsigned char *held = t->held;
  size_t n = t->held_len;
  t->held = NULL;
  t->held_len = 0;
  if (t->proto->data_received) t->proto->data_received(t, held, n, t->ctx);
  free(held);
  start_reading(t);
}

void aloop_transport_pause_reading(aloop_transport *t) {
  if (t->read_paused || t->closing) return;
  t->read_paused = true;
  if (t->reading) aloop__op_cancel(t->loop, &t->rop);
}

void aloop_transport_resume_reading(aloop_transport *t) {
  if (!t->read_paused || t->closing) return;
  t->read_paused = false;
  if (t->held_len)
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

size_t aloop_transport_get_write_buffer_size(const aloop_transport *t) { return t->wq_bytes; }
int aloop_transport_fd(const aloop_transport *t) { return t->fd; }
aloop_loop *aloop_transport_loop(const aloop_transport *t) { return t->loop; }

static int name_of(int fd, aloop_sockaddr *out, int (*fn)(int, struct sockaddr *, socklen_t *)) {
  out->len = sizeof out->addr;
  return fn(fd, (struct sockaddr *)&out->addr, &out->len) < 0 ? -errno : 0;
}
int aloop_transport_peername(const aloop_transport *t, aloop_sockaddr *out) {
  return name_of(t->fd, out, getpeername);
}
int aloop_transport_sockname(const aloop_transport *t, aloop_sockaddr *out) {
  return name_of(t->fd, out, getsockname);
}

static void made(aloop_loop *loop, void *arg) {
  (void)loop;
  aloop_transport *t = arg;
  t->made = true;
  if (t->proto->connection_made) t->proto->connection_made(t, t->ctx);
  start_reading(t);
  maybe_finish(t);
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
  aloop_transport_set_write_buffer_limits(t, 0, 0);
  return t;
}
