/* File operations as futures (include/aloop/file.h), each one request over the operations layer,
 * which hands it to a driver that completes it (io_uring) or to the executor. The request owns the
 * op, the copies of paths and iovec arrays, and a reference to its future; the future is done only
 * when the op's one completion came back, so no caller's buffer is touched after it. This file
 * never blocks: every syscall on a file happens in the kernel's hands or on an executor thread. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "core.h"

struct file_req {
  struct aloop__op op;
  aloop_future *future;
  bool by_path;        /* open, stat: the file is named by path (else by fd) */
  char *path;          /* a copy of it (a request may read it after the call returned) */
  struct iovec *iov;   /* readv, writev: a copy of the caller's array */
  struct statx stx;    /* fstat, stat: the kernel's answer, turned into *out at the end */
  struct stat *out;
};

/* What the operation was, for the message of an error. */
static void describe(const struct file_req *r, char *out, size_t n) {
  static const char *const verbs[] = {
      [ALOOP__OP_FILE_OPEN] = "open",   [ALOOP__OP_FILE_READ] = "read",
      [ALOOP__OP_FILE_WRITE] = "write", [ALOOP__OP_FILE_FSYNC] = "fsync",
      [ALOOP__OP_FILE_STATX] = "stat",  [ALOOP__OP_FILE_CLOSE] = "close"};
  const char *verb = verbs[r->op.kind];
  if (r->by_path)
    snprintf(out, n, "cannot %s %s", verb, r->path ? r->path : "(a NULL path)");
  else
    snprintf(out, n, "cannot %s fd %d", verb, r->op.fd);
}

static void stat_from_statx(const struct statx *x, struct stat *st) {
  memset(st, 0, sizeof *st);
  st->st_dev = makedev(x->stx_dev_major, x->stx_dev_minor);
  st->st_ino = x->stx_ino;
  st->st_mode = x->stx_mode;
  st->st_nlink = x->stx_nlink;
  st->st_uid = x->stx_uid;
  st->st_gid = x->stx_gid;
  st->st_rdev = makedev(x->stx_rdev_major, x->stx_rdev_minor);
  st->st_size = (off_t)x->stx_size;
  st->st_blksize = (blksize_t)x->stx_blksize;
  st->st_blocks = (blkcnt_t)x->stx_blocks;
  st->st_atim = (struct timespec){x->stx_atime.tv_sec, x->stx_atime.tv_nsec};
  st->st_mtim = (struct timespec){x->stx_mtime.tv_sec, x->stx_mtime.tv_nsec};
  st->st_ctim = (struct timespec){x->stx_ctime.tv_sec, x->stx_ctime.tv_nsec};
}

static void req_free(struct file_req *r) {
  free(r->path);
  free(r->iov);
  free(r);
}

/* The outcome of a completion: a cancel that came too late leaves the result, except that an
 * opened fd nobody will take is closed, and a sleeping read the kernel interrupted for it is a
 * cancellation. */
static int32_t outcome_of(struct file_req *r, int32_t res) {
  if (!aloop__future_cancel_requested(r->future)) return res;
  if (res == -EINTR) return -ECANCELED;
  if (r->op.kind == ALOOP__OP_FILE_OPEN && res >= 0) {
    close(res);
    return -ECANCELED;
  }
  return res;
}

static void file_done(aloop_loop *loop, struct aloop__op *op, int32_t res) {
  (void)loop;
  struct file_req *r = (struct file_req *)op;
  res = outcome_of(r, res);
  char message[PATH_MAX + 64] = "";
  if (res >= 0 && op->kind == ALOOP__OP_FILE_STATX) stat_from_statx(&r->stx, r->out);
  if (res < 0 && res != -ECANCELED) {
    describe(r, message, sizeof message - 64);
    size_t len = strlen(message);
    snprintf(message + len, sizeof message - len, ": %s", aloop_strerror(res));
  }
  aloop__future_finish(r->future, res, message[0] ? message : NULL);
  aloop_future_release(r->future);
  req_free(r);
}

static void cancel_req(aloop_future *f, void *arg) { aloop__op_cancel(aloop_future_loop(f), arg); }

static struct file_req *new_req(enum aloop__op_kind kind, int fd) {
  struct file_req *r = calloc(1, sizeof *r);
  if (r) {
    r->op.kind = (uint8_t)kind;
    r->op.fd = fd;
    r->op.file_args.offset = ALOOP_FILE_POSITION;
  }
  return r;
}

/* A future for r, or NULL (ENOMEM). With err < 0, r is not started: the future fails at once, in
 * words, as the syscall would have. */
static aloop_future *start(aloop_loop *loop, struct file_req *r, const char *origin, int err) {
  aloop_future *f = r ? aloop_future_new(loop, origin) : NULL;
  if (!f) {
    if (r) req_free(r);
    return NULL;
  }
  r->future = aloop_future_ref(f);
  r->op.done = file_done;
  if (err < 0) {
    file_done(loop, &r->op, err);
    return f;
  }
  aloop__future_set_work(f, cancel_req, &r->op);
  aloop__op_start(loop, &r->op);
  return f;
}

bool aloop_file_native(const aloop_loop *loop) {
  return aloop__op_native(loop, ALOOP__OP_FILE_READ);
}

/* A path copied into r; 0, -EFAULT for NULL, or -ENOMEM. */
static int take_path(struct file_req *r, const char *path) {
  r->by_path = true;
  if (!path) return -EFAULT;
  r->path = strdup(path);
  r->op.buf = r->path;
  return r->path ? 0 : -ENOMEM;
}

aloop_future *aloop_file_open(aloop_loop *loop, const char *path, int flags, mode_t mode) {
  struct file_req *r = new_req(ALOOP__OP_FILE_OPEN, AT_FDCWD);
  if (!r) return NULL;
  r->op.file_args.flags = flags | O_CLOEXEC;
  r->op.file_args.mode = mode;
  int err = take_path(r, path);
  if (err == -ENOMEM) {
    req_free(r);
    return NULL;
  }
  return start(loop, r, "file_open", err);
}

/* A read or write of iovcnt buffers of iov (copied unless it is r's own op.iov). */
static aloop_future *read_write(aloop_loop *loop, struct file_req *r, const struct iovec *iov,
                                int iovcnt, int64_t offset, const char *origin) {
  if (!r) return NULL;
  int err = 0;
  if (iovcnt < 1 || iovcnt > IOV_MAX || !iov || offset < ALOOP_FILE_POSITION) err = -EINVAL;
  if (r->op.fd < 0) err = -EBADF;
  if (err == 0 && iov != &r->op.iov) {
    if (!(r->iov = malloc((size_t)iovcnt * sizeof *iov))) {
      req_free(r);
      return NULL;
    }
    memcpy(r->iov, iov, (size_t)iovcnt * sizeof *iov);
    iov = r->iov;
  }
  r->op.buf = (void *)iov;
  r->op.len = err ? 0 : (size_t)iovcnt;
  r->op.file_args.offset = offset;
  return start(loop, r, origin, err);
}

aloop_future *aloop_file_read(aloop_loop *loop, int fd, void *buf, size_t n, int64_t offset) {
  struct file_req *r = new_req(ALOOP__OP_FILE_READ, fd);
  if (r) r->op.iov = (struct iovec){buf, n};
  return read_write(loop, r, r ? &r->op.iov : NULL, 1, offset, "file_read");
}

aloop_future *aloop_file_write(aloop_loop *loop, int fd, const void *buf, size_t n,
                               int64_t offset) {
  struct file_req *r = new_req(ALOOP__OP_FILE_WRITE, fd);
  if (r) r->op.iov = (struct iovec){(void *)buf, n};
  return read_write(loop, r, r ? &r->op.iov : NULL, 1, offset, "file_write");
}

aloop_future *aloop_file_readv(aloop_loop *loop, int fd, const struct iovec *iov, int iovcnt,
                               int64_t offset) {
  return read_write(loop, new_req(ALOOP__OP_FILE_READ, fd), iov, iovcnt, offset, "file_readv");
}

aloop_future *aloop_file_writev(aloop_loop *loop, int fd, const struct iovec *iov, int iovcnt,
                                int64_t offset) {
  return read_write(loop, new_req(ALOOP__OP_FILE_WRITE, fd), iov, iovcnt, offset, "file_writev");
}

aloop_future *aloop_file_fsync(aloop_loop *loop, int fd, bool datasync) {
  struct file_req *r = new_req(ALOOP__OP_FILE_FSYNC, fd);
  if (r) r->op.file_args.flags = datasync ? ALOOP__FSYNC_DATA : 0;
  return start(loop, r, "file_fsync", fd < 0 ? -EBADF : 0);
}

/* statx of r's path relative to r->op.fd, with flags, into *out once done. */
static aloop_future *stat_req(aloop_loop *loop, struct file_req *r, int flags, struct stat *out,
                              int err) {
  if (!r) return NULL;
  r->op.file_args.flags = flags;
  r->op.file_args.stx = &r->stx;
  r->out = out;
  if (!out && err == 0) err = -EFAULT;
  return start(loop, r, "file_stat", err);
}

aloop_future *aloop_file_fstat(aloop_loop *loop, int fd, struct stat *out) {
  struct file_req *r = new_req(ALOOP__OP_FILE_STATX, fd);
  if (r) r->op.buf = (void *)""; /* the fd itself (AT_EMPTY_PATH) */
  return stat_req(loop, r, AT_EMPTY_PATH, out, fd < 0 ? -EBADF : 0);
}

aloop_future *aloop_file_stat(aloop_loop *loop, const char *path, struct stat *out) {
  struct file_req *r = new_req(ALOOP__OP_FILE_STATX, AT_FDCWD);
  if (!r) return NULL;
  int err = take_path(r, path);
  if (err == -ENOMEM) {
    req_free(r);
    return NULL;
  }
  return stat_req(loop, r, 0, out, err);
}

aloop_future *aloop_file_close(aloop_loop *loop, int fd) {
  return start(loop, new_req(ALOOP__OP_FILE_CLOSE, fd), "file_close", fd < 0 ? -EBADF : 0);
}
