/* A file transfer's bookkeeping, shared by the transport's sendfile and aloop_sock_sendfile: which
 * bytes of the file are left, the operation that sends the next chunk of them natively (op.h's
 * ALOOP__OP_SENDFILE), and the fallback that reads them into a buffer for ordinary writes. It
 * never writes to the socket itself: the caller owns the writing. */
#ifndef ALOOP_SENDFILE_H
#define ALOOP_SENDFILE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "op.h"

/* The fallback's chunk: 64 KiB, the transport's high mark, so a copy never holds more than one
 * queue's worth beyond what it has written. */
#define ALOOP__COPY_CHUNK (64 * 1024)

struct aloop__transfer {
  struct aloop__sendfile sf; /* the native operation's buf: the file and the next offset */
  uint64_t left;             /* bytes still to send (UINT64_MAX: up to the end of the file) */
  uint64_t total;            /* bytes sent (or, copying, read and handed on) so far */
  bool done;                 /* count reached, or the file ended */
  bool copy;                 /* the fallback: reads of the file into buf, then ordinary writes */
  unsigned char *buf;        /* the fallback's ALOOP__COPY_CHUNK bytes, made on first use */
};

/* Check fd (a regular file: -EINVAL otherwise, or fstat's error) and offset (>= 0), and start a
 * transfer of count bytes from offset (count 0: up to the end of the file). native: whether the
 * caller can send natively at all (else the fallback; ALOOP_SENDFILE=copy also forces it). */
int aloop__transfer_init(struct aloop__transfer *x, int fd, off_t offset, size_t count, bool native);
/* Set op up to send the next chunk natively to sock (kind, fd, buf, len; the caller sets done). */
void aloop__transfer_op(struct aloop__transfer *x, struct aloop__op *op, int sock);
/* n bytes more went out (0: the file ended); whether the transfer is done. */
bool aloop__transfer_sent(struct aloop__transfer *x, size_t n);
/* A native chunk failed with err: if nothing was sent yet and the error says the kernel cannot
 * send this file natively (EINVAL, ENOSYS, EOPNOTSUPP), switch to the fallback and return true,
 * as asyncio falls back when sendfile is not available. */
bool aloop__transfer_fall_back(struct aloop__transfer *x, int err);
/* The fallback: set op up to read the file's next chunk (at most `max` bytes; 0: a whole chunk)
 * into x->buf, as a FILE_READ operation, so that no read of the file blocks the loop: the kernel
 * completes it on io_uring, an executor thread on select and libev (asyncio's fallback reads on
 * its executor too). The caller sets op->done, starts it, and hands a count it got to
 * aloop__transfer_sent (0: the file ended). Returns 0, or -ENOMEM for the buffer (made on first
 * use). Call it only while the transfer is not done. */
int aloop__transfer_read_op(struct aloop__transfer *x, struct aloop__op *op, size_t max);
/* Free what the transfer holds; no operation of it may be in flight. */
void aloop__transfer_fini(struct aloop__transfer *x);

#endif
