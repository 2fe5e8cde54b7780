/* Streams, as asyncio's StreamReader/StreamWriter: a connection read and written from a task in
 * straight-line code. Included by aloop.h.
 *
 *   static int64_t client(aloop_stream *s, void *arg) {
 *     char line[1024];
 *     int64_t n;
 *     while ((n = aloop_await(aloop_stream_readline(s, line, sizeof line))) > 0) {
 *       aloop_stream_write(s, line, (size_t)n);
 *       if ((n = aloop_await(aloop_stream_drain(s))) < 0) break;
 *     }
 *     return n;     // < 0: reported with the peer's address, and this connection closed
 *   }
 *   aloop_start_server(loop, client, NULL, "127.0.0.1", 8888, NULL);
 *
 * One aloop_stream is both reader and writer. Reads fill buffers the caller owns; the bytes must
 * stay valid until the future is done (cancelling gives them back early). At most one read waits
 * at a time (-EBUSY otherwise). The reader keeps at most its limit buffered (more only for a
 * readexactly longer than it): reads take no more than the room below the limit, and there the
 * transport stops reading until half of it is taken, so a fast sender never makes memory grow.
 * A read that waits with nothing buffered gets the bytes straight into its buffer. */
#ifndef ALOOP_STREAM_H
#define ALOOP_STREAM_H

#ifdef __cplusplus
extern "C" {
#endif

typedef struct aloop_stream aloop_stream;

/* 64 KiB, as asyncio's: the longest line readline accepts, and the buffering target. */
#define ALOOP_STREAM_LIMIT_DEFAULT (64 * 1024)

/* A connection's task. It runs once per connection; when it returns, the stream is closed (if
 * the task did not) and freed. A return < 0 other than -ECANCELED is reported through the loop's
 * error handler with the peer's address and the task's message, and the connection is aborted. */
typedef int64_t (*aloop_stream_fn)(aloop_stream *stream, void *arg);

/* A server whose every connection runs client(stream, arg) as a task. As aloop_create_server
 * (opts->limit sets the reader's limit). */
ALOOP_API aloop_future *aloop_start_server(aloop_loop *loop, aloop_stream_fn client, void *arg,
                                           const char *host, int port,
                                           const aloop_server_options *opts);
ALOOP_API aloop_future *aloop_start_unix_server(aloop_loop *loop, aloop_stream_fn client,
                                                void *arg, const char *path,
                                                const aloop_server_options *opts);

/* Connect; outcome 0 and the aloop_stream as the future's data, which the caller then owns (end
 * it with aloop_stream_close). limit 0: the default. */
ALOOP_API aloop_future *aloop_open_connection(aloop_loop *loop, const char *host, int port,
                                              size_t limit);
ALOOP_API aloop_future *aloop_open_unix_connection(aloop_loop *loop, const char *path,
                                                   size_t limit);

/* Streams over pipes (stdin, stdout, a child process's pipes, FIFOs, ttys), as
 * aloop_connect_read_pipe / aloop_connect_write_pipe: a read pipe's stream reads (its writes
 * answer -EBADF), a write pipe's stream writes, drains and closes (its reads answer 0 at once).
 * It owns fd; NULL with errno (fd closed). End it with aloop_stream_close. */
ALOOP_API aloop_stream *aloop_open_read_pipe(aloop_loop *loop, int fd, size_t limit);
ALOOP_API aloop_stream *aloop_open_write_pipe(aloop_loop *loop, int fd);

/* ---- reading: each outcome is a byte count or a negative error ------------------------------- */

/* Up to n bytes, as soon as any are there; 0 at end of stream. */
ALOOP_API aloop_future *aloop_stream_read(aloop_stream *stream, void *buf, size_t n);
/* Exactly n bytes. If the stream ends first: -ALOOP_EINCOMPLETE, with a message saying how many
 * arrived; those stay buffered (aloop_stream_buffered, aloop_stream_read get them). */
ALOOP_API aloop_future *aloop_stream_readexactly(aloop_stream *stream, void *buf, size_t n);
/* Bytes up to and including the separator, into buf (a NUL follows them if there is room).
 * A line longer than the limit or than cap, whichever is smaller, is -ALOOP_ELIMIT, with a message
 * saying which; nothing is consumed, so the bytes can still be read with aloop_stream_read. If the
 * stream ends before a separator: -ALOOP_EINCOMPLETE (the bytes stay buffered). Separators are
 * 1 to ALOOP_STREAM_SEPARATOR_MAX bytes and cap at least 1 (else -EINVAL). */
#define ALOOP_STREAM_SEPARATOR_MAX 16
ALOOP_API aloop_future *aloop_stream_readuntil(aloop_stream *stream, const void *separator,
                                               size_t separator_len, void *buf, size_t cap);
/* readuntil "\n", except at end of stream: the last, unterminated line is returned as it is, and
 * then 0 (as asyncio's readline). */
ALOOP_API aloop_future *aloop_stream_readline(aloop_stream *stream, void *buf, size_t cap);
/* True once the peer has ended the stream and every byte has been read. */
ALOOP_API bool aloop_stream_at_eof(const aloop_stream *stream);
ALOOP_API size_t aloop_stream_buffered(const aloop_stream *stream);

/* ---- writing ------------------------------------------------------------------------------------ */

/* As aloop_transport_write/writev/write_eof: never wait; 0, -EPIPE once closing, -ENOMEM. */
ALOOP_API int aloop_stream_write(aloop_stream *stream, const void *data, size_t n);
ALOOP_API int aloop_stream_writelines(aloop_stream *stream, const struct iovec *iov, int iovcnt);
ALOOP_API int aloop_stream_write_eof(aloop_stream *stream);
/* Done (0) at once while the write buffer is below the high mark; else once it has drained to the
 * low mark. The connection's error if it was lost. */
ALOOP_API aloop_future *aloop_stream_drain(aloop_stream *stream);
/* Flush what is written, then close. Returns a future done once the connection is closed
 * (asyncio's wait_closed): 0, or the error the connection ended with. The stream must not be used
 * after this call. */
ALOOP_API aloop_future *aloop_stream_close(aloop_stream *stream);
/* The transport underneath, for its extra info (aloop_transport_peername, _sockname, _fd) and
 * flow control limits. Borrowed; do not close it directly. */
ALOOP_API aloop_transport *aloop_stream_transport(aloop_stream *stream);

#ifdef __cplusplus
}
#endif
#endif
