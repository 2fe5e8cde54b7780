/* Servers and outgoing connections over transports, as asyncio's loop.create_server and
 * loop.create_connection. Included by aloop.h.
 *
 * A server listens on one socket per address its host resolves to, accepts with the operations
 * layer (io_uring: one multishot accept per socket) and gives each connection a transport with the
 * server's protocol. When accepting runs out of fds (EMFILE, ENFILE) or memory, the server says so
 * once through the loop's error handler and pauses accepting for ALOOP_ACCEPT_PAUSE_NS, as asyncio
 * does: the waiting connections stay in the kernel's backlog, nothing is dropped, and every
 * connection already open carries on. */
#ifndef ALOOP_SERVER_H
#define ALOOP_SERVER_H

#ifdef __cplusplus
extern "C" {
#endif

typedef struct aloop_server aloop_server;

/* Makes the ctx each accepted connection's protocol gets (arg is the one given to the server).
 * NULL refuses the connection: it is closed at once. The protocol's connection_lost is the place
 * to free it. A NULL factory gives every connection `arg` itself. */
typedef void *(*aloop_ctx_factory)(void *arg);

typedef struct aloop_server_options {
  size_t size;        /* sizeof(aloop_server_options) */
  int backlog;        /* listen(2) backlog; 0: ALOOP_BACKLOG_DEFAULT */
  int family;         /* 0 (AF_UNSPEC): every address of host; AF_INET or AF_INET6 to choose */
  int reuse_address;  /* SO_REUSEADDR: 0 the default (on, as asyncio on Unix), > 0 on, < 0 off */
  int reuse_port;     /* SO_REUSEPORT, for several processes or loops on one port: > 0 on */
  size_t limit;       /* streams (aloop_start_server) only: the reader's limit; 0: the default */
  /* At most this many connections open at once (0: no limit). At the limit the server stops
   * accepting and the kernel's backlog holds the next ones until a connection is lost, as nginx's
   * worker_connections: a flood of clients cannot take every fd or starve the connections being
   * served. */
  size_t max_connections;
  /* TLS: every connection speaks it with this server context (aloop/tls.h), which the server
   * holds a reference to from the call on. NULL: plain. */
  struct aloop_tls_context *tls;
} aloop_server_options;

#define ALOOP_BACKLOG_DEFAULT 1024
/* Connections one listening socket accepts per loop iteration. The rest wait in the backlog for
 * the next iteration, after the connections already accepted had their turn: accepting never
 * starves the work it creates (10,000 connects per second would otherwise fill the loop with new
 * connections whose tasks never get to run). */
#define ALOOP_ACCEPT_BATCH 16
/* 1 s, as asyncio's accept retry delay: long enough for connections to finish and free fds. */
#define ALOOP_ACCEPT_PAUSE_NS INT64_C(1000000000)

/* Listen on host:port (host NULL or "": every interface; port 0: an ephemeral one, see
 * aloop_server_port). Name resolution runs on the executor. The future's outcome is 0 and its
 * data the aloop_server, which the caller then owns (aloop_server_free); or a negative error
 * with a message naming the address that failed (EADDRINUSE, EACCES, -ALOOP_EADDRINFO...).
 * proto must stay valid while the server or any of its connections lives. */
ALOOP_API aloop_future *aloop_create_server(aloop_loop *loop, const aloop_protocol *proto,
                                            aloop_ctx_factory factory, void *arg, const char *host,
                                            int port, const aloop_server_options *opts);
/* The same on a Unix stream socket at path (an existing socket file there is replaced). */
ALOOP_API aloop_future *aloop_create_unix_server(aloop_loop *loop, const aloop_protocol *proto,
                                                 aloop_ctx_factory factory, void *arg,
                                                 const char *path, const aloop_server_options *opts);

/* Connect to host:port, trying each address it resolves to in turn, and give the connection a
 * transport with proto and ctx. Outcome 0 with the transport as the future's data (borrowed: it
 * lives until its connection_lost), or the last address's error. */
ALOOP_API aloop_future *aloop_create_connection(aloop_loop *loop, const aloop_protocol *proto,
                                                void *ctx, const char *host, int port);
ALOOP_API aloop_future *aloop_create_unix_connection(aloop_loop *loop, const aloop_protocol *proto,
                                                     void *ctx, const char *path);

/* The listening fds (up to max into fds); returns how many there are. */
ALOOP_API size_t aloop_server_sockets(const aloop_server *server, int *fds, size_t max);
/* The port of the first listening socket (what port 0 turned into), or a negative errno. */
ALOOP_API int aloop_server_port(const aloop_server *server);
/* Connections accepted and not yet lost. */
ALOOP_API size_t aloop_server_connections(const aloop_server *server);
ALOOP_API bool aloop_server_is_serving(const aloop_server *server);

/* Stop accepting and close the listening sockets; open connections go on. Idempotent. */
ALOOP_API void aloop_server_close(aloop_server *server);
/* A future done (0) once the server is closed and its last connection is gone (for
 * aloop_start_server: and the connection's task has returned). */
ALOOP_API aloop_future *aloop_server_wait_closed(aloop_server *server);
/* A future done (0) when the server is closed; cancelling it closes the server (as asyncio's
 * serve_forever). */
ALOOP_API aloop_future *aloop_server_serve_forever(aloop_server *server);
/* Close every open connection gracefully (queued bytes are sent) / at once. */
ALOOP_API void aloop_server_close_clients(aloop_server *server);
ALOOP_API void aloop_server_abort_clients(aloop_server *server);
/* Close the server, abort its connections, and free it once they are gone (the futures above
 * still complete). The pointer is invalid afterwards. */
ALOOP_API void aloop_server_free(aloop_server *server);

#ifdef __cplusplus
}
#endif
#endif
