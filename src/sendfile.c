/* File transfers (sendfile.h): the part every sender of a file shares, whatever it sends through.
 * It must never write to a socket or touch a transport: the transport and the socket operations
 * do their own writing and flow control. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "sendfile.h"

/* Bytes one native operation asks for at most: 1 GiB fits its int32_t result and io_uring's
 * per-request limit, and the socket takes less per call anyway. */
#define CHUNK_MAX (1u << 30)

/* ALOOP_SENDFILE=copy forces the fallback everywhere (so that tests run both ways on any kernel);
 * "native" (or anything else, or nothing) is the default. Read per transfer, not per chunk. */
static bool copy_forced(void) {
  const char *mode = getenv("ALOOP_SENDFILE");
  return mode && !strcmp(mode, "copy");
}

int aloop__transfer_init(struct aloop__transfer *x, int fd, off_t offset, size_t count,
                         bool native) {
  struct stat st;
  if (offset < 0) return -EINVAL;
  if (fstat(fd, &st) < 0) return -errno;
  if (!S_ISREG(st.st_mode)) return -EINVAL;
  *x = (struct aloop__transfer){.left = count ? count : UINT64_MAX,
                                .copy = !native || copy_forced()};
  aloop__sendfile_init(&x->sf, fd, offset);
  aloop__ignore_sigpipe(); /* sendfile(2) and splice(2) have no MSG_NOSIGNAL */
  return 0;
}

void aloop__transfer_op(struct aloop__transfer *x, struct aloop__op *op, int sock) {
  *op = (struct aloop__op){.kind = ALOOP__OP_SENDFILE, .fd = sock, .buf = &x->sf,
                           .len = x->left < CHUNK_MAX ? (size_t)x->left : CHUNK_MAX};
}

bool aloop__transfer_sent(struct aloop__transfer *x, size_t n) {
  if (n == 0 || n >= x->left) x->done = true;
  if (n > x->left) n = (size_t)x->left;
  x->total += n;
  if (x->left != UINT64_MAX) x->left -= n;
  x->sf.offset += (int64_t)n;
  return x->done;
}

bool aloop__transfer_fall_back(struct aloop__transfer *x, int err) {
  if (x->total || x->copy || (err != -EINVAL && err != -ENOSYS && err != -EOPNOTSUPP))
    return false;
  x->copy = true;
  return true;
}

int aloop__transfer_read_op(struct aloop__transfer *x, struct aloop__op *op, size_t max) {
  if (!x->buf && !(x->buf = malloc(ALOOP__COPY_CHUNK))) return -ENOMEM;
  size_t want = max && max < ALOOP__COPY_CHUNK ? max : ALOOP__COPY_CHUNK;
  if (want > x->left) want = (size_t)x->left;
  *op = (struct aloop__op){.kind = ALOOP__OP_FILE_READ, .fd = x->sf.fd, .len = 1};
  op->iov = (struct iovec){x->buf, want};
  op->buf = &op->iov; /* FILE_READ takes an iovec array and its length */
  op->file_args.offset = x->sf.offset;
  return 0;
}

void aloop__transfer_fini(struct aloop__transfer *x) {
  free(x->buf);
  x->buf = NULL;
  aloop__sendfile_release(&x->sf);
}
