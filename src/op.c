/* Operations (see op.h): native submission for what the driver completes itself, and for the rest
 * the readiness path, written once for every readiness driver: try the syscall, park on EAGAIN,
 * retry in order when the fd is ready; file operations, which readiness cannot serve, go to the
 * executor instead. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core.h"

static bool reads(const struct aloop__op *op) {
  return op->kind != ALOOP__OP_SEND && op->kind != ALOOP__OP_SENDMSG &&
         op->kind != ALOOP__OP_CONNECT && op->kind != ALOOP__OP_SENDFILE;
}

/* recvmsg(2) of one datagram into len bytes of buf, its sender into op->addr. */
static ssize_t recv_datagram(struct aloop__op *op, void *buf, size_t len) {
  aloop__op_recvmsg_header(op, buf, len);
  ssize_t n = recvmsg(op->fd, &op->msg, MSG_DONTWAIT);
  if (n >= 0) {
    op->addrlen = op->msg.msg_namelen;
    op->truncated = op->msg.msg_flags & MSG_TRUNC;
  }
  return n;
}

static bool is_stream(const struct aloop__op *op) {
  return op->kind == ALOOP__OP_RECV_STREAM || op->kind == ALOOP__OP_RECVMSG_STREAM;
}

/* The syscall of each kind, non-blocking, as a result or negative errno. `first` distinguishes
 * connect's initial call from the check once the socket is writable. */
static int32_t attempt(aloop_loop *loop, struct aloop__op *op, bool first) {
  ssize_t n;
  do {
    switch (op->kind) {
    case ALOOP__OP_ACCEPT:
      op->addrlen = sizeof op->addr;
      n = accept4(op->fd, (struct sockaddr *)&op->addr, &op->addrlen, SOCK_NONBLOCK | SOCK_CLOEXEC);
      break;
    case ALOOP__OP_RECV:
      n = recv(op->fd, op->buf, op->len, MSG_DONTWAIT);
      break;
    case ALOOP__OP_RECV_STREAM: /* into the loop's read buffer, lent for the callback */
      op->buf = loop->read_buf;
      if (op->room) op->len = op->room(op);
      size_t want = op->len && op->len < ALOOP__READ_BUFFER ? op->len : ALOOP__READ_BUFFER;
      n = op->file ? read(op->fd, op->buf, want) : recv(op->fd, op->buf, want, MSG_DONTWAIT);
      break;
    case ALOOP__OP_RECVMSG:
      n = recv_datagram(op, op->buf, op->len);
      break;
    case ALOOP__OP_RECVMSG_STREAM: /* as RECV_STREAM: the loop's buffer holds any UDP datagram */
      op->buf = loop->read_buf;
      n = recv_datagram(op, op->buf, ALOOP__DATAGRAM_MAX);
      break;
    case ALOOP__OP_SEND:
      n = send(op->fd, op->buf, op->len, MSG_DONTWAIT | MSG_NOSIGNAL);
      break;
    case ALOOP__OP_SENDMSG:
      if (op->file) {
        const struct msghdr *msg = op->buf;
        n = writev(op->fd, msg->msg_iov, (int)msg->msg_iovlen);
      } else {
        n = sendmsg(op->fd, op->buf, MSG_DONTWAIT | MSG_NOSIGNAL);
      }
      break;
    case ALOOP__OP_SENDFILE: { /* from the offset given: the file's position stays */
      const struct aloop__sendfile *sf = op->buf;
      off_t at = (off_t)sf->offset;
      n = sendfile(op->fd, sf->fd, &at, op->len);
      break;
    }
    case ALOOP__OP_WAITID: {
      siginfo_t *si = op->buf;
      memset(si, 0, sizeof *si);
      n = waitid((idtype_t)P_PIDFD, (id_t)op->fd, si, WEXITED | WNOHANG);
      if (n == 0 && si->si_pid == 0) n = -1, errno = EAGAIN; /* still running */
      break;
    }
    case ALOOP__OP_CONNECT:
      if (first) {
        n = connect(op->fd, (struct sockaddr *)&op->addr, op->addrlen);
        if (n < 0 && errno == EINPROGRESS) errno = EAGAIN;
      } else {
        int err = 0;
        socklen_t len = sizeof err;
        n = getsockopt(op->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (n == 0 && err) n = -1, errno = err;
      }
      break;
    default:
      return -EINVAL;
    }
  } while (n < 0 && errno == EINTR);
  if (n < 0) return errno == EWOULDBLOCK ? -EAGAIN : -errno;
  return n > INT32_MAX ? INT32_MAX : (int32_t)n;
}

static struct aloop__op_queue *queue_of(struct aloop__fd *f, const struct aloop__op *op) {
  struct aloop__op_queue *q = reads(op) ? &f->read_ops : &f->write_ops;
  if (!q->head) q->tail = &q->head; /* fd records start zeroed */
  return q;
}

static void finish(aloop_loop *loop, struct aloop__op *op, int32_t res) {
  if ((op->state == OP_SUBMITTED || op->state == OP_CANCELLING) && !aloop__op_is_file(op->kind))
    aloop__fd_record(loop, op->fd)->native_ops--;
  op->state = OP_IDLE;
  op->more = false; /* the operation's last completion */
  loop->live_ops--;
  op->done(loop, op, res);
}

static void park(aloop_loop *loop, struct aloop__fd *f, struct aloop__op_queue *q,
                 struct aloop__op *op) {
  if (loop->drv->max_fd && op->fd >= loop->drv->max_fd) { /* select cannot wait on it */
    finish(loop, op, -ALOOP_EFDLIMIT);
    return;
  }
  op->state = OP_PARKED;
  op->next = NULL;
  bool first = !q->head;
  *q->tail = op;
  q->tail = &op->next;
  if (first) aloop__fd_update_interest(loop, op->fd, f, false);
}

bool aloop__op_native(const aloop_loop *loop, enum aloop__op_kind kind) {
  return loop->op_kinds & ALOOP__OP_BIT(kind);
}

/* ---- file operations on the executor --------------------------------------------------------- */

/* The blocking syscall of a file operation, on an executor thread: its result or a negative errno.
 * It reads only the op, which nobody changes while a thread has it (OP_OFFLOADED). Counts fit the
 * int32_t of `done`: the kernel moves at most MAX_RW_COUNT (2 GiB - 4 KiB) per call. */
static int64_t file_syscall(void *arg) {
  struct aloop__op *op = arg;
  const struct iovec *iov = op->buf;
  int iovcnt = (int)op->len;
  int64_t at = op->file_args.offset;
  ssize_t n;
  do {
    switch (op->kind) {
    case ALOOP__OP_FILE_OPEN:
      n = openat(AT_FDCWD, op->buf, op->file_args.flags, (mode_t)op->file_args.mode);
      break;
    case ALOOP__OP_FILE_READ:
      n = at < 0 ? readv(op->fd, iov, iovcnt) : preadv(op->fd, iov, iovcnt, at);
      break;
    case ALOOP__OP_FILE_WRITE:
      n = at < 0 ? writev(op->fd, iov, iovcnt) : pwritev(op->fd, iov, iovcnt, at);
      break;
    case ALOOP__OP_FILE_FSYNC:
      n = (op->file_args.flags & ALOOP__FSYNC_DATA) ? fdatasync(op->fd) : fsync(op->fd);
      break;
    case ALOOP__OP_FILE_STATX:
      n = statx(op->fd, op->buf, op->file_args.flags, STATX_BASIC_STATS, op->file_args.stx);
      break;
    case ALOOP__OP_FILE_CLOSE: /* never retried: after EINTR the fd is gone all the same */
      return close(op->fd) < 0 && errno != EINTR ? -errno : 0;
    default:
      return -EINVAL;
    }
  } while (n < 0 && errno == EINTR);
  return n < 0 ? -errno : n;
}

/* A file operation's job, back on the loop thread. */
struct offload {
  struct aloop__job job;
  aloop_loop *loop;
  struct aloop__op *op;
};

static void offload_finished(struct aloop__job *job) {
  struct offload *o = (struct offload *)job;
  struct aloop__op *op = o->op;
  aloop_loop *loop = o->loop;
  int32_t res = (int32_t)job->result;
  op->file_args.job = NULL;
  free(o);
  finish(loop, op, res); /* a cancel that came while it ran lost the race: the result stands */
}

/* aloop_free with the job still queued: the op's owner is being freed with the loop. */
static void offload_discard(struct aloop__job *job) { free(job); }

/* ALOOP_FILE_NOWAIT=0 sends every file read to the executor, as on a kernel or filesystem
 * without RWF_NOWAIT (so that tests run that path on any machine). Read per operation: tests
 * switch it between runs on one loop. */
static bool nowait_allowed(void) {
  const char *v = getenv("ALOOP_FILE_NOWAIT");
  return !v || strcmp(v, "0") != 0;
}

/* A read at an offset that the page cache can serve whole is made at once, on the loop's thread:
 * preadv2 with RWF_NOWAIT copies what is cached and never waits for the disk (EAGAIN instead).
 * It costs no thread hand-off, which for a cached file costs more than the copy. A short count
 * stands only where the file ends (0 at or past it: RWF_NOWAIT says EAGAIN, never 0, for what is
 * not cached); anything else (a miss, part of the request cached, a filesystem without
 * RWF_NOWAIT) goes to the executor, which makes the read again in full. */
static bool read_at_once(aloop_loop *loop, struct aloop__op *op) {
  if (op->kind != ALOOP__OP_FILE_READ || op->file_args.offset < 0 || !nowait_allowed())
    return false;
  const struct iovec *iov = op->buf;
  size_t want = 0;
  for (size_t i = 0; i < op->len; i++) want += iov[i].iov_len;
  if (want > INT32_MAX) return false;
  ssize_t n = preadv2(op->fd, iov, (int)op->len, op->file_args.offset, RWF_NOWAIT);
  if (n < 0) return false;
  struct stat st;
  if (n > 0 && (size_t)n < want &&
      (fstat(op->fd, &st) < 0 || op->file_args.offset + n < (int64_t)st.st_size))
    return false;
  finish(loop, op, (int32_t)n);
  return true;
}

static void offload(aloop_loop *loop, struct aloop__op *op) {
  if (read_at_once(loop, op)) return;
  struct offload *o = calloc(1, sizeof *o);
  if (!o) {
    finish(loop, op, -ENOMEM);
    return;
  }
  o->job = (struct aloop__job){.fn = file_syscall, .arg = op, .finished = offload_finished,
                               .cleanup = offload_discard};
  o->loop = loop;
  o->op = op;
  op->state = OP_OFFLOADED;
  op->file_args.job = &o->job;
  int err = aloop__executor_start(loop, &o->job);
  if (err < 0) {
    op->file_args.job = NULL;
    free(o);
    finish(loop, op, err);
  }
}

/* Drop an offloaded op no thread took yet; one that runs finishes by itself. */
static void offload_cancel(aloop_loop *loop, struct aloop__op *op) {
  struct aloop__job *job = op->file_args.job;
  if (!job || !aloop__executor_unqueue(loop, job)) return;
  op->file_args.job = NULL;
  free(job);
  finish(loop, op, -ECANCELED);
}

/* ---- starting and cancelling ------------------------------------------------------------------ */

/* The fd's record, for operations that keep per-fd state (parked queues here, per-fd requests in
 * a completion driver), or NULL with *err set. File operations keep none: their fd may be any
 * number (no record is made for it), or AT_FDCWD for those that name a path. */
static struct aloop__fd *record_for(aloop_loop *loop, const struct aloop__op *op, int *err) {
  *err = 0;
  if (aloop__op_is_file(op->kind)) return NULL; /* file.c checked the fd */
  if (op->fd < 0) {
    *err = -EBADF;
    return NULL;
  }
  struct aloop__fd *f = aloop__fd_record(loop, op->fd);
  if (!f) *err = -ENOMEM;
  return f;
}

void aloop__op_start(aloop_loop *loop, struct aloop__op *op) {
  loop->live_ops++;
  bool native = aloop__op_native(loop, op->kind);
  int err;
  struct aloop__fd *f = record_for(loop, op, &err);
  if (err < 0) {
    finish(loop, op, err);
    return;
  }
  op->more = false;
  if (native) {
    op->state = OP_SUBMITTED;
    if (f) f->native_ops++;
    err = loop->drv->submit(loop, loop->drv_state, op);
    if (err != -EOPNOTSUPP) {
      if (err < 0) finish(loop, op, err);
      return;
    }
    op->state = OP_IDLE;
    if (f) f->native_ops--; /* declined: the readiness path below, or the executor */
  }
  if (aloop__op_is_file(op->kind)) {
    offload(loop, op);
    return;
  }
  struct aloop__op_queue *q = queue_of(f, op);
  if (is_stream(op)) { /* nothing to try first: it waits for data anyway */
    /* One read buffer per loop, lent to one callback at a time: reads run one after another. */
    if (!loop->read_buf && !(loop->read_buf = malloc(ALOOP__READ_BUFFER))) {
      finish(loop, op, -ENOMEM);
      return;
    }
    park(loop, f, q, op);
    return;
  }
  /* Behind other parked ops of the same direction it waits its turn, to keep the order (connect
   * must make its one connect() call in any case). */
  int32_t res = (q->head && op->kind != ALOOP__OP_CONNECT) ? -EAGAIN : attempt(loop, op, true);
  if (res != -EAGAIN) {
    finish(loop, op, res);
    return;
  }
  park(loop, f, q, op);
}

static void unlink_parked(struct aloop__op_queue *q, struct aloop__op *op) {
  for (struct aloop__op **p = &q->head; *p; p = &(*p)->next) {
    if (*p != op) continue;
    *p = op->next;
    if (!*p) q->tail = p;
    return;
  }
}

void aloop__op_cancel(aloop_loop *loop, struct aloop__op *op) {
  if (op->state == OP_PARKED) {
    struct aloop__fd *f = aloop__fd_record(loop, op->fd);
    struct aloop__op_queue *q = queue_of(f, op);
    unlink_parked(q, op);
    if (!q->head) aloop__fd_update_interest(loop, op->fd, f, false);
    finish(loop, op, -ECANCELED);
  } else if (op->state == OP_SUBMITTED) {
    op->state = OP_CANCELLING;
    loop->drv->cancel(loop, loop->drv_state, op);
  } else if (op->state == OP_OFFLOADED) {
    offload_cancel(loop, op);
  }
}

void aloop__ops_ready(aloop_loop *loop, int fd, struct aloop__fd *f, unsigned revents) {
  struct aloop__op_queue *q = (revents & ALOOP__READ) ? &f->read_ops : &f->write_ops;
  struct aloop__op *op;
  unsigned datagrams = 0;
  while ((op = q->head)) {
    int32_t res = attempt(loop, op, false);
    if (res == -EAGAIN) break;
    if (op->kind == ALOOP__OP_RECV_STREAM && res > 0) {
      /* One read per wake-up and the op stays parked: a fast sender cannot starve the others. */
      op->more = true;
      op->done(loop, op, res);
      break;
    }
    if (op->kind == ALOOP__OP_RECVMSG_STREAM && res >= 0) {
      /* A datagram (0 bytes is one too): the op stays parked, and reading goes on up to a batch
       * per wake-up. `done` may have cancelled it: the loop looks at the queue's head again. */
      op->more = true;
      op->done(loop, op, res);
      if (++datagrams == ALOOP__DATAGRAM_BATCH) break;
      continue;
    }
    op->more = false;
    q->head = op->next;
    if (!q->head) {
      q->tail = &q->head;
      /* Interest goes only if nothing parks again before the next poll (see fd.c). */
      aloop__fd_update_interest(loop, fd, f, false);
    }
    finish(loop, op, res); /* may start and park new ops on this queue: they are tried next */
  }
}

void aloop__ops_fail(aloop_loop *loop, int fd, struct aloop__fd *f, int err) {
  struct aloop__op_queue *queues[] = {&f->read_ops, &f->write_ops};
  for (size_t i = 0; i < 2; i++) {
    struct aloop__op *op;
    while ((op = queues[i]->head)) {
      queues[i]->head = op->next;
      if (!queues[i]->head) queues[i]->tail = &queues[i]->head;
      finish(loop, op, err);
    }
  }
  aloop__fd_update_interest(loop, fd, f, false);
}

void aloop__ops_cancel_native(aloop_loop *loop, int fd) {
  struct aloop__fd *f = aloop__fd_record(loop, fd);
  if (loop->drv->cancel_fd && f) loop->drv->cancel_fd(loop, loop->drv_state, fd, f->native_ops);
}

void aloop__op_done(aloop_loop *loop, struct aloop__op *op, int32_t res) { finish(loop, op, res); }

void aloop__decline_op_kinds(aloop_loop *loop, uint32_t kinds) { loop->op_kinds &= ~kinds; }
void aloop__sendfile_init(struct aloop__sendfile *sf, int fd, int64_t offset) {
  *sf = (struct aloop__sendfile){.fd = fd, .offset = offset, .splice.pipe = {-1, -1}};
}

void aloop__sendfile_release(struct aloop__sendfile *sf) {
  for (int i = 0; i < 2; i++)
    if (sf->splice.pipe[i] >= 0) close(sf->splice.pipe[i]);
  sf->splice.pipe[0] = sf->splice.pipe[1] = -1;
}

/* Left at its default, SIGPIPE kills the process instead of failing the write with EPIPE. So, as
 * Python and Node do, a process that writes through aloop without MSG_NOSIGNAL ignores it, unless
 * the application chose a disposition of its own. */
void aloop__ignore_sigpipe(void) {
  static atomic_flag done = ATOMIC_FLAG_INIT;
  if (atomic_flag_test_and_set(&done)) return;
  struct sigaction old;
  if (sigaction(SIGPIPE, NULL, &old) == 0 && old.sa_handler == SIG_DFL && !(old.sa_flags & SA_SIGINFO))
    signal(SIGPIPE, SIG_IGN);
}
