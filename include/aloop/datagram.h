/* Datagrams, as asyncio's loop.create_datagram_endpoint, DatagramTransport and DatagramProtocol,
 * and the socket operations loop.sock_recvfrom / loop.sock_sendto. Included by aloop.h.
 *
 *   static void echo(aloop_datagram_transport *t, const void *data, size_t n,
 *                    const aloop_sockaddr *from, void *ctx) {
 *     aloop_datagram_sendto(t, data, n, from);
 *   }
 *   static const aloop_datagram_protocol proto = {.datagram_received = echo};
 *   aloop_datagram_options o = {.size = sizeof o, .local_host = "127.0.0.1", .local_port = 9999};
 *   aloop_future *f = aloop_create_datagram_endpoint(loop, &proto, NULL, &o);
 *
 * One implementation for every driver, over operations: on io_uring one multishot recvmsg serves
 * a burst of datagrams; on select and libev the core reads up to a batch of datagrams (64) per
 * wake-up, so one busy socket cannot starve the others. A datagram is delivered whole or not at
 * all: one longer than ALOOP_DATAGRAM_MAX (only Unix datagrams can be) is dropped and
 * error_received hears -EMSGSIZE.
 *
 * Errors, as asyncio: what the network says about datagrams (an ICMP port unreachable on a
 * connected socket: -ECONNREFUSED; host or network unreachable; a datagram too long to send) goes
 * to error_received and the transport stays open. Only a fault of the socket itself (it was closed
 * behind the loop's back, out of memory) ends it, through connection_lost with the error. */
#ifndef ALOOP_DATAGRAM_H
#define ALOOP_DATAGRAM_H

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct aloop_datagram_transport aloop_datagram_transport;

/* The longest datagram delivered whole: 64 KiB, more than any UDP payload (IPv4: 65,507 bytes). */
#define ALOOP_DATAGRAM_MAX (64 * 1024)

/* The protocol: every member may be NULL. ctx is the pointer given with it. */
typedef struct aloop_datagram_protocol {
  void (*connection_made)(aloop_datagram_transport *t, void *ctx);
  /* One datagram (n may be 0). data and from are lent for the call only. from is the sender
   * (a Unix socket that is not bound has an address of family AF_UNIX and no path). */
  void (*datagram_received)(aloop_datagram_transport *t, const void *data, size_t n,
                            const aloop_sockaddr *from, void *ctx);
  /* A send or receive failed (negative errno): the datagram concerned is lost, the transport
   * stays open. */
  void (*error_received)(aloop_datagram_transport *t, int err, void *ctx);
  /* The last call: err is 0 after close/abort, else why the transport failed. The transport is
   * freed when it returns. */
  void (*connection_lost)(aloop_datagram_transport *t, int err, void *ctx);
  void (*pause_writing)(aloop_datagram_transport *t, void *ctx);  /* buffer above the high mark */
  void (*resume_writing)(aloop_datagram_transport *t, void *ctx); /* back at the low mark */
} aloop_datagram_protocol;

/* Where the endpoint's socket is bound and connected. Zero-initialise it and set size; then:
 *   - IP: local_host and/or local_port bind (local_host NULL or "" with a port: every interface;
 *     port 0: an ephemeral one); remote_host connects, to remote_port, so that sendto may omit
 *     the address and only that peer's datagrams arrive. Hosts are resolved on the executor
 *     (numeric ones are not looked up); the first address that works is used, with a local
 *     address of the remote's family.
 *   - Unix: local_path binds (a stale socket file there is replaced), remote_path connects.
 *     Paths and hosts cannot be mixed.
 *   - use_sock: an existing datagram socket instead (sock; made non-blocking, and the transport's
 *     from now on, closed with it), with no address above.
 * With nothing bound or connected, family says which socket to make (AF_INET, AF_INET6). */
typedef struct aloop_datagram_options {
  size_t size;              /* sizeof(aloop_datagram_options) */
  const char *local_host;
  int local_port;
  const char *remote_host;
  int remote_port;
  const char *local_path;   /* AF_UNIX */
  const char *remote_path;  /* AF_UNIX */
  int family;               /* 0: from the addresses; AF_INET or AF_INET6 to choose */
  int reuse_port;           /* > 0: SO_REUSEPORT, for several sockets on one port */
  int allow_broadcast;      /* > 0: SO_BROADCAST, to send to broadcast addresses */
  bool use_sock;            /* take sock (below) instead of making a socket */
  int sock;
} aloop_datagram_options;

/* Make the socket and its transport; connection_made runs on the next iteration. Outcome 0 and
 * the transport as the future's data (borrowed: it lives until its connection_lost), or a
 * negative error with a message naming the address that failed (-EINVAL for options that
 * contradict each other, -ALOOP_EADDRINFO, EADDRINUSE...). On failure a `sock` given is closed.
 * proto must stay valid while the transport lives. opts may not be NULL. */
ALOOP_API aloop_future *aloop_create_datagram_endpoint(aloop_loop *loop,
                                                       const aloop_datagram_protocol *proto,
                                                       void *ctx,
                                                       const aloop_datagram_options *opts);
/* A transport over sock, a datagram socket already bound or connected as wanted (made
 * non-blocking; the transport's from now on), at once: what create_datagram_endpoint does with
 * use_sock, for a caller that made the socket itself and cannot wait for a future (as
 * aloop_transport_new for streams). connection_made runs on the next iteration. NULL with errno
 * (EINVAL: not a datagram socket; ENOMEM), sock closed. */
ALOOP_API aloop_datagram_transport *aloop_datagram_transport_new(aloop_loop *loop, int sock,
                                                                 const aloop_datagram_protocol *proto,
                                                                 void *ctx);

/* Send one datagram (copied as needed) to `to`, or to the connected peer if to is NULL. Never
 * waits: with nothing queued it is sent at once, else queued behind the others. Returns 0 (also
 * when the send failed: error_received hears why, as in asyncio), -EPIPE once closing, -ENOMEM,
 * -EDESTADDRREQ if to is NULL and the socket is not connected, -EISCONN if to is given on a
 * connected socket and is not its peer. */
ALOOP_API int aloop_datagram_sendto(aloop_datagram_transport *t, const void *data, size_t n,
                                    const aloop_sockaddr *to);
/* Stop receiving, send what is queued, then close; connection_lost(0) follows. */
ALOOP_API void aloop_datagram_close(aloop_datagram_transport *t);
/* Close now, dropping what is queued; connection_lost(0) follows. */
ALOOP_API void aloop_datagram_abort(aloop_datagram_transport *t);
ALOOP_API bool aloop_datagram_is_closing(const aloop_datagram_transport *t);

/* Flow control, as the stream transport: bytes of queued datagrams; pause_writing above high,
 * resume_writing once at or below low. high 0: ALOOP_WRITE_HIGH_DEFAULT; low 0: high / 4. */
ALOOP_API int aloop_datagram_set_write_buffer_limits(aloop_datagram_transport *t, size_t high,
                                                     size_t low);
ALOOP_API size_t aloop_datagram_get_write_buffer_size(const aloop_datagram_transport *t);

ALOOP_API int aloop_datagram_fd(const aloop_datagram_transport *t);
ALOOP_API aloop_loop *aloop_datagram_loop(const aloop_datagram_transport *t);
/* Our own address / the connected peer's (-ENOTCONN if not connected): 0 or a negative errno. */
ALOOP_API int aloop_datagram_sockname(const aloop_datagram_transport *t, aloop_sockaddr *out);
ALOOP_API int aloop_datagram_peername(const aloop_datagram_transport *t, aloop_sockaddr *out);

/* ---- socket operations (see net.h for what they share) ------------------------------------- */

/* One datagram into buf. Outcome: its length (0 for an empty datagram: there is no end of
 * stream), with the sender in *from (may be NULL; it must stay valid until the future is done,
 * as buf). A datagram longer than n is cut to n bytes, the rest lost, as recvfrom(2) does.
 * asyncio's sock_recvfrom_into has no counterpart: this one already reads into the caller's
 * buffer, and a recvfrom that allocates would only add a copy. */
ALOOP_API aloop_future *aloop_sock_recvfrom(aloop_loop *loop, int fd, void *buf, size_t n,
                                            aloop_sockaddr *from);
/* One datagram to `to` (copied; NULL: the connected peer). Outcome: n once sent whole (a datagram
 * is never sent in parts), or the error. */
ALOOP_API aloop_future *aloop_sock_sendto(aloop_loop *loop, int fd, const void *buf, size_t n,
                                          const aloop_sockaddr *to);

#ifdef __cplusplus
}
#endif
#endif
