/* Transports and protocols, as asyncio's: the loop calls the protocol's functions as bytes arrive,
 * and the transport takes bytes to write without ever blocking. Included by aloop.h.
 *
 * One implementation for every driver, over operations: on io_uring reads complete in the kernel,
 * on select and libev the core reads on readiness; writes are tried at once when nothing is queued
 * and only the rest is queued, with pause_writing/resume_writing at the buffer limits. */
#ifndef ALOOP_TRANSPORT_H
#define ALOOP_TRANSPORT_H

#include <stdbool.h>
#include <sys/types.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct aloop_transport aloop_transport;

/* The protocol: every member may be NULL. ctx is the pointer given with it. */
typedef struct aloop_protocol {
  void (*connection_made)(aloop_transport *t, void *ctx);
  /* data is lent for the call only. */
  void (*data_received)(aloop_transport *t, const void *data, size_t n, void *ctx);
  /* The peer will send no more. Return true to keep the transport open (to go on writing);
   * false (or NULL) closes it. */
  bool (*eof_received)(aloop_transport *t, void *ctx);
  /* The last call: err is 0 after close/abort/end of stream, else why the connection failed
   * (negative errno). The transport is freed when it returns. */
  void (*connection_lost)(aloop_transport *t, int err, void *ctx);
  void (*pause_writing)(aloop_transport *t, void *ctx);  /* buffer above the high mark */
  void (*resume_writing)(aloop_transport *t, void *ctx); /* back below the low mark */
  /* A buffered protocol (asyncio's BufferedProtocol) sets both of these instead of
   * data_received: the transport asks where the next bytes go, reads or copies them there, then
   * says how many came. get_buffer returns a buffer of *n bytes (at least 1; sizehint is what
   * the transport has or would like) that stays the protocol's; NULL fails the connection with
   * -ENOBUFS. The transport may ask again before buffer_updated: the last answer is the one used.
   * No read ever takes more than the room given, so a protocol that bounds its room bounds what
   * a peer can make it hold. */
  void *(*get_buffer)(aloop_transport *t, size_t sizehint, size_t *n, void *ctx);
  void (*buffer_updated)(aloop_transport *t, size_t n, void *ctx);
} aloop_protocol;

/* A transport over a connected, non-blocking stream socket; it owns fd from now on.
 * connection_made runs on the next iteration. NULL with errno on failure (fd is then closed). */
ALOOP_API aloop_transport *aloop_transport_new(aloop_loop *loop, int fd, const aloop_protocol *proto,
                                               void *ctx);

/* Transports over a pipe, a FIFO or a character device such as a tty (asyncio's
 * connect_read_pipe / connect_write_pipe): read(2) and write(2), with the same flow control, end
 * of stream and close as a socket's. One direction each: a read pipe's writes and a write pipe's
 * reads answer -EBADF; write_eof on a write pipe closes it once its queue is written (the reader
 * then sees the end). A write pipe notices its reader going away at once, as asyncio's does:
 * connection_lost gets 0 if nothing was waiting to be written, else -EPIPE (a tty is not watched:
 * there the next write fails with -EPIPE).
 * The transport owns fd and makes it non-blocking; the first write pipe makes the process ignore
 * SIGPIPE if its disposition is still the default (else a vanished reader would kill it).
 * -EINVAL (as errno, fd closed) for a regular file or a directory. */
ALOOP_API aloop_transport *aloop_connect_read_pipe(aloop_loop *loop, int fd,
                                                   const aloop_protocol *proto, void *ctx);
ALOOP_API aloop_transport *aloop_connect_write_pipe(aloop_loop *loop, int fd,
                                                    const aloop_protocol *proto, void *ctx);

/* Queue bytes (copied as needed). 0, or -EPIPE once closing or after write_eof, -EBUSY while a
 * file is being sent (aloop_transport_sendfile), -ENOMEM.
 * Errors of the connection itself come through connection_lost, as in asyncio. */
ALOOP_API int aloop_transport_write(aloop_transport *t, const void *data, size_t n);
ALOOP_API int aloop_transport_writev(aloop_transport *t, const struct iovec *iov, int iovcnt);
/* Send count bytes of the regular file fd from offset (count 0: up to the end of the file), as
 * asyncio's loop.sendfile. The outcome is the count sent, fewer than count only if the file ended
 * first, once every byte is in the kernel's hands; or a negative errno with a message saying after
 * how many bytes and why. The file's position is neither used nor changed; fd stays the caller's,
 * and must stay open until the future is done.
 *   - It starts once what is queued has been sent, and until it is done the transport is the
 *     file's: write, writev and write_eof answer -EBUSY, and a second sendfile fails with -EBUSY.
 *     Reading goes on as usual.
 *   - A socket transport sends natively (sendfile(2) on select and libev; splice through a pipe
 *     on io_uring, where ALOOP_IO_URING=no-splice falls back to sendfile(2)); a pipe transport,
 *     or a file the kernel cannot send natively, is read into a 64 KiB buffer and written as
 *     writes are, never more than the high mark queued at once. The reads are aloop_file_read's
 *     (io_uring: the kernel's; select, libev: the executor's), so a slow disk never blocks the
 *     loop.
 *     ALOOP_SENDFILE=copy forces that path everywhere.
 *   - aloop_transport_close lets it finish, then closes (like queued writes); abort, or the
 *     connection failing (the peer reset it or went away), fails it with the connection's error
 *     (-ECONNABORTED for abort, else what connection_lost gets: -EPIPE, -ECONNRESET...).
 *   - An error reading the file fails it and leaves the connection open (the peer has part of
 *     the file: close it, as a rule). Cancelling the future stops after the chunk in flight; the
 *     connection stays open.
 * Fails at once (in the future) with -EBADF on a read pipe, -EPIPE once closing, -EINVAL if fd is
 * not a regular file or offset is negative. NULL only without memory. As for a write pipe, a
 * SIGPIPE disposition still at its default becomes "ignore" (sendfile(2) and splice(2) have no
 * MSG_NOSIGNAL). */
ALOOP_API aloop_future *aloop_transport_sendfile(aloop_transport *t, int fd, off_t offset,
                                                 size_t count);
/* Shut the writing side once everything queued is sent; reading goes on. */
ALOOP_API int aloop_transport_write_eof(aloop_transport *t);
/* Stop reading, send what is queued, then close; connection_lost(0) follows. */
ALOOP_API void aloop_transport_close(aloop_transport *t);
/* Close now, dropping what is queued; connection_lost(0) follows. */
ALOOP_API void aloop_transport_abort(aloop_transport *t);
/* What a callback does where Python would raise: report the failure through the loop's error
 * handler, with the peer's address ("connection 127.0.0.1:5000: <message>"), and abort this
 * connection; connection_lost gets err (< 0). Every other connection carries on. */
ALOOP_API void aloop_transport_fail(aloop_transport *t, int err, const char *fmt, ...)
    ALOOP_PRINTF(3, 4);
/* Hand the connection to another protocol (asyncio's set_protocol, as start_tls does): every
 * callback from now on goes to proto with ctx, a plain or a buffered one alike; bytes already
 * read are not lost, since reads land in the transport's own buffer first. */
ALOOP_API void aloop_transport_set_protocol(aloop_transport *t, const aloop_protocol *proto,
                                            void *ctx);
ALOOP_API void aloop_transport_pause_reading(aloop_transport *t);
ALOOP_API void aloop_transport_resume_reading(aloop_transport *t);
ALOOP_API bool aloop_transport_is_closing(const aloop_transport *t);

/* Flow control marks, asyncio's defaults: high 64 KiB, low high/4. high 0: the default. */
#define ALOOP_WRITE_HIGH_DEFAULT (64 * 1024)
ALOOP_API int aloop_transport_set_write_buffer_limits(aloop_transport *t, size_t high, size_t low);
ALOOP_API size_t aloop_transport_get_write_buffer_size(const aloop_transport *t);

ALOOP_API int aloop_transport_fd(const aloop_transport *t);
ALOOP_API aloop_loop *aloop_transport_loop(const aloop_transport *t);
/* The peer's / our own address: 0 or a negative errno. */
ALOOP_API int aloop_transport_peername(const aloop_transport *t, aloop_sockaddr *out);
ALOOP_API int aloop_transport_sockname(const aloop_transport *t, aloop_sockaddr *out);

#ifdef __cplusplus
}
#endif
#endif
