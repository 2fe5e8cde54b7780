/* Socket operations, name resolution and the executor for blocking calls, as asyncio's
 * loop.sock_* / getaddrinfo / run_in_executor. Included by aloop.h.
 *
 * Each returns a future (one reference for the caller; see future.h), also when it could complete
 * at once: the syscall is tried first, and only waits if the socket is not ready. Sockets must be
 * non-blocking. Buffers passed in must stay valid until the future is done: cancelling is the way
 * to get them back early, and the future is done only once the driver has let go of them.
 *
 * A cancel can lose the race with the kernel: the operation may already have completed. Then
 * nothing is lost: a receive's bytes are delivered (the future completes with the count, not as
 * cancelled), and a connection accepted after its accept was cancelled is closed at once (the
 * future is cancelled), since whoever cancelled it has said nobody will serve it. A task that
 * is cancelled after its awaited operation completed gets that result from aloop_await (see
 * task.h), so an accepted fd always reaches code that can close it. */
#ifndef ALOOP_NET_H
#define ALOOP_NET_H

#include <sys/socket.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Outcome: bytes received (0 at end of stream) into buf. */
ALOOP_API aloop_future *aloop_sock_recv_into(aloop_loop *loop, int fd, void *buf, size_t n);
/* Outcome: bytes received (up to n, 0 at end of stream); the bytes are the future's data
 * (malloc'd; freed with the future unless taken). */
ALOOP_API aloop_future *aloop_sock_recv(aloop_loop *loop, int fd, size_t n);
/* Outcome: n once every byte is written, or the error that stopped it (the count written before
 * the error is lost, as in asyncio). */
ALOOP_API aloop_future *aloop_sock_sendall(aloop_loop *loop, int fd, const void *buf, size_t n);
/* Outcome: count bytes of the regular file fd from offset (count 0: up to the end of the file)
 * sent to the connected stream socket sock, as asyncio's loop.sock_sendfile: the total sent,
 * fewer than count only if the file ended first, or the error that stopped it (the count sent
 * before it is lost, as with sendall), with words. Native where the kernel can (sendfile(2);
 * io_uring: splice through a pipe), else read as aloop_file_read does (io_uring: the kernel's
 * read; select, libev: the executor) and sent (ALOOP_SENDFILE=copy forces that). The file's position is neither used nor changed; both fds stay the caller's. Nothing
 * else may send on sock meanwhile. A SIGPIPE disposition still at its default becomes "ignore"
 * (sendfile(2) and splice(2) have no MSG_NOSIGNAL): a peer that went away gives -EPIPE. */
ALOOP_API aloop_future *aloop_sock_sendfile(aloop_loop *loop, int sock, int fd, off_t offset,
                                            size_t count);
/* Outcome: the accepted fd (non-blocking, close-on-exec). Its peer address is the future's data,
 * an aloop_sockaddr. */
ALOOP_API aloop_future *aloop_sock_accept(aloop_loop *loop, int fd);
/* Outcome: 0 once connected. addr is copied. */
ALOOP_API aloop_future *aloop_sock_connect(aloop_loop *loop, int fd, const struct sockaddr *addr,
                                           socklen_t len);

typedef struct aloop_sockaddr {
  socklen_t len;
  struct sockaddr_storage addr;
} aloop_sockaddr;

/* An address in words: "127.0.0.1:8888", "[::1]:8888", "unix:/path" ("unix:" if unnamed).
 * Writes at most n bytes (NUL included; ALOOP_SOCKADDR_STRLEN always suffices for IP) and returns
 * out. */
#define ALOOP_SOCKADDR_STRLEN 64
ALOOP_API char *aloop_sockaddr_str(const aloop_sockaddr *addr, char *out, size_t n);

/* Run fn(arg) on the loop's thread pool (created on first use, at most ALOOP_EXECUTOR_THREADS
 * threads). The future's outcome is fn's return value, delivered on the loop's thread. Cancelling
 * a job that has not started removes it; one that runs is left to finish and its result dropped. */
#define ALOOP_EXECUTOR_THREADS 4
typedef int64_t (*aloop_job_fn)(void *arg);
ALOOP_API aloop_future *aloop_run_in_executor(aloop_loop *loop, aloop_job_fn fn, void *arg);

/* getaddrinfo(3) on the executor. Outcome 0 and the struct addrinfo list as the future's data
 * (freed with freeaddrinfo unless taken), or a negative error whose message is gai_strerror's.
 * hints may be NULL (any family, SOCK_STREAM). */
struct addrinfo;
ALOOP_API aloop_future *aloop_getaddrinfo(aloop_loop *loop, const char *host, const char *port,
                                          const struct addrinfo *hints);

#ifdef __cplusplus
}
#endif
#endif
