/* Socket operations as futures (asyncio's loop.sock_*), each one request over the operations layer.
 * The request owns the op and a reference to its future; cancelling the future cancels the op, and
 * the future is done only when the op's one completion came back. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <sys/un.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core.h"
#include "sendfile.h"

struct sock_req {
  struct aloop__op op;
  aloop_future *future;
  const char *send_buf; /* sendall: the caller's bytes, total and progress */
  size_t total, sent;
  aloop_sockaddr *from;  /* recvfrom: where the caller wants the sender */
  struct msghdr msg;     /* sendto: the datagram and its address */
  struct iovec iov;
  aloop_sockaddr to;
};

static void req_finish(aloop_loop *loop, struct sock_req *r, int64_t outcome) {
  (void)loop;
  aloop__future_finish(r->future, outcome, NULL);
  aloop_future_release(r->future);
  free(r);
}

static void cancel_req(aloop_future *f, void *arg) { aloop__op_cancel(aloop_future_loop(f), arg); }

static aloop_future *start(aloop_loop *loop, struct sock_req *r, const char *origin,
                           void (*done)(aloop_loop *, struct aloop__op *, int32_t)) {
  aloop_future *f = aloop_future_new(loop, origin);
  if (!f) {
    free(r);
    return NULL;
  }
  r->future = aloop_future_ref(f);
  r->op.done = done;
  aloop__future_set_work(f, cancel_req, &r->op);
  aloop__op_start(loop, &r->op);
  return f;
}

static struct sock_req *new_req(int fd, enum aloop__op_kind kind) {
  struct sock_req *r = calloc(1, sizeof *r);
  if (r) {
    r->op.kind = (uint8_t)kind;
    r->op.fd = fd;
  }
  return r;
}

static void simple_done(aloop_loop *loop, struct aloop__op *op, int32_t res) {
  req_finish(loop, (struct sock_req *)op, res);
}

aloop_future *aloop_sock_recv_into(aloop_loop *loop, int fd, void *buf, size_t n) {
  struct sock_req *r = new_req(fd, ALOOP__OP_RECV);
  if (!r) return NULL;
  r->op.buf = buf;
  r->op.len = n;
  return start(loop, r, "sock_recv", simple_done);
}

aloop_future *aloop_sock_recv(aloop_loop *loop, int fd, size_t n) {
  void *buf = malloc(n ? n : 1);
  aloop_future *f = buf ? aloop_sock_recv_into(loop, fd, buf, n) : NULL;
  if (!f) {
    free(buf);
    return NULL;
  }
  aloop_future_set_data(f, buf, free);
  return f;
}

static void sendall_done(aloop_loop *loop, struct aloop__op *op, int32_t res) {
  struct sock_req *r = (struct sock_req *)op;
  if (res < 0) {
    req_finish(loop, r, res);
    return;
  }
  r->sent += (size_t)res;
  if (r->sent == r->total) {
    req_finish(loop, r, (int64_t)r->total);
    return;
  }
  if (aloop__future_cancel_requested(r->future)) { /* between two sends: nothing in flight */
    req_finish(loop, r, -ECANCELED);
    return;
  }
  op->buf = (void *)(r->send_buf + r->sent);
  op->len = r->total - r->sent;
  aloop__op_start(loop, op);
}

aloop_future *aloop_sock_sendall(aloop_loop *loop, int fd, const void *buf, size_t n) {
  struct sock_req *r = new_req(fd, ALOOP__OP_SEND);
  if (!r) return NULL;
  r->send_buf = buf;
  r->total = n;
  r->op.buf = (void *)buf;
  r->op.len = n;
  if (n == 0) { /* nothing to send: done, without a zero-length syscall */
    aloop_future *f = aloop_future_new(loop, "sock_sendall");
    if (f) aloop__future_finish(f, 0, NULL);
    free(r);
    return f;
  }
  return start(loop, r, "sock_sendall", sendall_done);
}

/* sock_sendfile: native chunks (SENDFILE), or in the fallback a read of the file into the
 * transfer's buffer (FILE_READ) and SEND operations for it; one operation at a time, on r->op.
 * Operations may complete inside aloop__op_start on a readiness driver, so the next one is
 * started by a loop, never by recursion (a fast reader would otherwise deepen the stack per
 * chunk, in a task's small one). */
struct sendfile_req {
  struct aloop__op op;
  aloop_future *future;
  struct aloop__transfer x;
  int sock;
  size_t pos, avail;   /* the fallback: the buffer's bytes sent, and read */
  int64_t outcome;     /* set once finished */
  bool finished, running, again;
};

static void sendfile_req_free(struct sendfile_req *r) {
  char why[128];
  snprintf(why, sizeof why, "sock_sendfile: failed after %llu bytes: %s",
           (unsigned long long)r->x.total, aloop_strerror((int)r->outcome));
  aloop__future_finish(r->future, r->outcome, r->outcome < 0 ? why : NULL);
  aloop_future_release(r->future);
  aloop__transfer_fini(&r->x);
  free(r);
}

static void sendfile_finish(struct sendfile_req *r, int64_t outcome) {
  r->finished = true;
  r->outcome = outcome;
  if (!r->running) sendfile_req_free(r);
}

static void sendfile_req_done(aloop_loop *loop, struct aloop__op *op, int32_t res);

/* Start the next operation: a native chunk, the rest of the buffer, or a read of the next one. */
static void sendfile_next(aloop_loop *loop, struct sendfile_req *r) {
  if (aloop__future_cancel_requested(r->future)) { /* between two operations: nothing in flight */
    sendfile_finish(r, -ECANCELED);
    return;
  }
  if (!r->x.copy) {
    aloop__transfer_op(&r->x, &r->op, r->sock);
  } else if (r->pos < r->avail) {
    r->op = (struct aloop__op){.kind = ALOOP__OP_SEND, .fd = r->sock, .buf = r->x.buf + r->pos,
                               .len = r->avail - r->pos};
  } else if (r->x.done) {
    sendfile_finish(r, (int64_t)r->x.total);
    return;
  } else {
    int err = aloop__transfer_read_op(&r->x, &r->op, 0);
    if (err < 0) {
      sendfile_finish(r, err);
      return;
    }
  }
  r->op.done = sendfile_req_done;
  aloop__op_start(loop, &r->op);
}

static void sendfile_run(aloop_loop *loop, struct sendfile_req *r) {
  if (r->running) {
    r->again = true;
    return;
  }
  r->running = true;
  do {
    r->again = false;
    sendfile_next(loop, r);
  } while (r->again && !r->finished);
  r->running = false;
  if (r->finished) sendfile_req_free(r);
}

static void sendfile_req_done(aloop_loop *loop, struct aloop__op *op, int32_t res) {
  struct sendfile_req *r = (struct sendfile_req *)op;
  if (res < 0 && op->kind == ALOOP__OP_SENDFILE && aloop__transfer_fall_back(&r->x, res)) {
    sendfile_run(loop, r);
  } else if (res < 0) {
    sendfile_finish(r, res);
  } else if (op->kind == ALOOP__OP_FILE_READ) {
    aloop__transfer_sent(&r->x, (size_t)res); /* 0: the file ended */
    r->pos = 0;
    r->avail = (size_t)res;
    sendfile_run(loop, r);
  } else if (op->kind == ALOOP__OP_SEND) {
    r->pos += (size_t)res;
    sendfile_run(loop, r);
  } else if (aloop__transfer_sent(&r->x, (size_t)res)) {
    sendfile_finish(r, (int64_t)r->x.total);
  } else {
    sendfile_run(loop, r);
  }
}

static void cancel_sendfile(aloop_future *f, void *arg) {
  (void)f;
  struct sendfile_req *r = arg;
  aloop__op_cancel(aloop_future_loop(f), &r->op); /* its completion finishes the request */
}

aloop_future *aloop_sock_sendfile(aloop_loop *loop, int sock, int fd, off_t offset, size_t count) {
  struct sendfile_req *r = calloc(1, sizeof *r);
  aloop_future *f = r ? aloop_future_new(loop, "sock_sendfile") : NULL;
  if (!f) {
    free(r);
    errno = ENOMEM;
    return NULL;
  }
  int err = aloop__transfer_init(&r->x, fd, offset, count, true);
  if (err < 0) {
    free(r);
    aloop_future_set_error(f, err, "sock_sendfile: %s", offset < 0 ? "the offset is negative"
                           : err == -EINVAL ? "not a regular file" : "cannot use the file");
    return f;
  }
  r->future = aloop_future_ref(f);
  r->sock = sock;
  aloop__future_set_work(f, cancel_sendfile, r);
  sendfile_run(loop, r);
  return f;
}

static void accept_done(aloop_loop *loop, struct aloop__op *op, int32_t res) {
  struct sock_req *r = (struct sock_req *)op;
  if (res >= 0 && aloop__future_cancel_requested(r->future)) {
    /* The cancel lost the race with the kernel: nobody will take this connection (net.h). */
    close(res);
    res = -ECANCELED;
  }
  if (res >= 0) {
    aloop_sockaddr *peer = malloc(sizeof *peer);
    if (peer) {
      peer->len = op->addrlen;
      memcpy(&peer->addr, &op->addr, sizeof peer->addr);
      aloop_future_set_data(r->future, peer, free);
    }
  }
  req_finish(loop, r, res);
}

aloop_future *aloop_sock_accept(aloop_loop *loop, int fd) {
  struct sock_req *r = new_req(fd, ALOOP__OP_ACCEPT);
  if (!r) return NULL;
  r->op.addrlen = sizeof r->op.addr;
  return start(loop, r, "sock_accept", accept_done);
}

aloop_future *aloop_sock_connect(aloop_loop *loop, int fd, const struct sockaddr *addr,
                                 socklen_t len) {
  if (len > sizeof(struct sockaddr_storage)) {
    errno = EINVAL;
    return NULL;
  }
  struct sock_req *r = new_req(fd, ALOOP__OP_CONNECT);
  if (!r) return NULL;
  memcpy(&r->op.addr, addr, len);
  r->op.addrlen = len;
  return start(loop, r, "sock_connect", simple_done);
}

static void recvfrom_done(aloop_loop *loop, struct aloop__op *op, int32_t res) {
  struct sock_req *r = (struct sock_req *)op;
  if (res >= 0 && r->from) {
    r->from->len = op->addrlen <= sizeof r->from->addr ? op->addrlen : sizeof r->from->addr;
    memcpy(&r->from->addr, &op->addr, r->from->len);
  }
  req_finish(loop, r, res);
}

aloop_future *aloop_sock_recvfrom(aloop_loop *loop, int fd, void *buf, size_t n,
                                  aloop_sockaddr *from) {
  struct sock_req *r = new_req(fd, ALOOP__OP_RECVMSG);
  if (!r) return NULL;
  r->op.buf = buf;
  r->op.len = n;
  r->from = from;
  return start(loop, r, "sock_recvfrom", recvfrom_done);
}

aloop_future *aloop_sock_sendto(aloop_loop *loop, int fd, const void *buf, size_t n,
                                const aloop_sockaddr *to) {
  if (to && to->len > sizeof to->addr) {
    errno = EINVAL;
    return NULL;
  }
  struct sock_req *r = new_req(fd, ALOOP__OP_SENDMSG);
  if (!r) return NULL;
  if (to) r->to = *to;
  r->iov = (struct iovec){(void *)buf, n};
  r->msg = (struct msghdr){.msg_name = to ? &r->to.addr : NULL, .msg_namelen = to ? to->len : 0,
                           .msg_iov = &r->iov, .msg_iovlen = 1};
  r->op.buf = &r->msg;
  return start(loop, r, "sock_sendto", simple_done);
}

char *aloop_sockaddr_str(const aloop_sockaddr *a, char *out, size_t n) {
  char ip[INET6_ADDRSTRLEN] = "?";
  const struct sockaddr_in *in4 = (const struct sockaddr_in *)&a->addr;
  const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&a->addr;
  const struct sockaddr_un *un = (const struct sockaddr_un *)&a->addr;
  switch (a->len ? a->addr.ss_family : AF_UNSPEC) {
  case AF_INET:
    inet_ntop(AF_INET, &in4->sin_addr, ip, sizeof ip);
    snprintf(out, n, "%s:%u", ip, ntohs(in4->sin_port));
    break;
  case AF_INET6:
    inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof ip);
    snprintf(out, n, "[%s]:%u", ip, ntohs(in6->sin6_port));
    break;
  case AF_UNIX: {
    size_t path_len = a->len > offsetof(struct sockaddr_un, sun_path)
                          ? a->len - offsetof(struct sockaddr_un, sun_path) : 0;
    snprintf(out, n, "unix:%.*s", (int)strnlen(un->sun_path, path_len), un->sun_path);
    break;
  }
  default:
    snprintf(out, n, "(unknown address)");
  }
  return out;
}
