/* TLS on transports and streams (OpenSSL 3), as asyncio's ssl= arguments and start_tls. Included
 * by aloop.h.
 *
 * TLS is a layer inside the transport, over memory BIOs: the transport reads and writes records
 * through the same operations as plain bytes, so it works on every driver, and the protocol above
 * sees plain bytes with the same calls, flow control, end of stream and close. With TLS:
 *  - connection_made runs once the handshake is done; a handshake that fails (or times out)
 *    ends in connection_lost(err) without connection_made, so the protocol can free its ctx;
 *    a client's aloop_create_connection_with / aloop_open_connection_with future fails instead
 *    (the protocol hears nothing then).
 *  - Bytes written before the handshake is done wait for it (counted in the write buffer size).
 *  - aloop_transport_write_eof sends close_notify and shuts the socket's writing side; reading
 *    goes on. A close_notify from the peer is its end of stream (eof_received).
 *  - aloop_transport_close sends what is queued, then close_notify, then closes; a peer that does
 *    not read it within the shutdown timeout is cut off.
 *  - TLS 1.2 and 1.3 only; renegotiation is refused. Errors say why in words (the loop's error
 *    handler for a server's connections, the future's message for a client): "certificate
 *    verify failed: certificate has expired", "hostname mismatch", "wrong version number" (plain
 *    text to a TLS port)...
 * The record layer stays in user space: kernel TLS needs the socket itself as OpenSSL's BIO. */
#ifndef ALOOP_TLS_H
#define ALOOP_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct aloop_tls_context aloop_tls_context;

/* asyncio's defaults: 60 s to finish a handshake, 30 s for the peer to take our close_notify. */
#define ALOOP_TLS_HANDSHAKE_TIMEOUT_NS INT64_C(60000000000)
#define ALOOP_TLS_SHUTDOWN_TIMEOUT_NS INT64_C(30000000000)

/* A server's context: its certificate chain and private key (PEM files; the chain starts with
 * the server's own certificate). NULL on failure, with words in why (n bytes). The caller owns
 * the context; connections hold a reference of their own (aloop_tls_context_free is safe while
 * they run). */
ALOOP_API aloop_tls_context *aloop_tls_server_context(const char *cert_chain_file,
                                                      const char *key_file, char *why, size_t n);
/* A client's context: the peer's certificate is verified against ca_file (PEM), or the system's
 * store when ca_file is NULL, and its name against the server_hostname of each connection. */
ALOOP_API aloop_tls_context *aloop_tls_client_context(const char *ca_file, char *why, size_t n);
/* Client only: skip verification (tests, or a peer known by other means). */
ALOOP_API void aloop_tls_context_set_verify(aloop_tls_context *c, bool verify);
/* ALPN: protocols in order of preference ("h2", "http/1.1"); a client offers them, a server
 * picks its first one the client offers (none in common: the handshake goes on without).
 * 0, -EINVAL (empty, or a name longer than 255 bytes) or -ENOMEM. */
ALOOP_API int aloop_tls_context_set_alpn(aloop_tls_context *c, const char *const *protocols,
                                         size_t count);
/* Server only: SNI. fn gets the name the client asked for and returns the context to serve it
 * with (another server context, borrowed: it must outlive the connections), or NULL to keep c.
 * The chosen context's certificate and ALPN protocols apply from then on. */
typedef aloop_tls_context *(*aloop_tls_sni_fn)(const char *server_name, void *arg);
ALOOP_API void aloop_tls_context_set_sni(aloop_tls_context *c, aloop_tls_sni_fn fn, void *arg);
/* Timeouts for connections made from now on; 0 keeps the default. */
ALOOP_API void aloop_tls_context_set_timeouts(aloop_tls_context *c, int64_t handshake_ns,
                                              int64_t shutdown_ns);
/* The OpenSSL SSL_CTX, for what this API does not cover (ciphers, client certificates...). */
ALOOP_API void *aloop_tls_context_ssl_ctx(aloop_tls_context *c);
/* Drop the caller's reference. */
ALOOP_API void aloop_tls_context_free(aloop_tls_context *c);

/* Upgrade an open connection (STARTTLS): from now on the transport speaks TLS, as the server
 * (server_side) or as a client checking server_hostname (NULL: no name check, and no SNI). The
 * future is done (0) when the handshake is, or fails with its error in words; the protocol stays
 * and is not told connection_made again. Bytes already received and not delivered are dropped
 * (the peer must not send TLS before we ask). NULL (errno) if it cannot start: -EINVAL for a
 * pipe or a transport that already speaks TLS, -EPIPE once closing. */
ALOOP_API aloop_future *aloop_start_tls(aloop_transport *t, aloop_tls_context *c, bool server_side,
                                        const char *server_hostname);

/* About a TLS connection (NULL on a plain one): the protocol ALPN chose (NULL if none; the
 * string stays valid until the next call on this thread), the version once the handshake is done
 * ("TLSv1.3"), the name a client asked for (SNI), and OpenSSL's SSL object. */
ALOOP_API const char *aloop_transport_tls_alpn(const aloop_transport *t);
ALOOP_API const char *aloop_transport_tls_version(const aloop_transport *t);
ALOOP_API const char *aloop_transport_tls_server_name(const aloop_transport *t);
ALOOP_API void *aloop_transport_tls_ssl(const aloop_transport *t);

/* Connecting with options: TLS (a client context; server_hostname defaults to host, an IP
 * address is checked as one) and, for streams, the reader's limit. */
typedef struct aloop_connect_options {
  size_t size;                 /* sizeof(aloop_connect_options) */
  aloop_tls_context *tls;      /* NULL: plain */
  const char *server_hostname; /* NULL: host; "" : no name check and no SNI */
  size_t limit;                /* aloop_open_connection_with: the reader's limit (0: default) */
} aloop_connect_options;

/* aloop_create_connection / aloop_open_connection with options: the future is done once the
 * connection is open and, with TLS, its handshake is done. */
ALOOP_API aloop_future *aloop_create_connection_with(aloop_loop *loop, const aloop_protocol *proto,
                                                     void *ctx, const char *host, int port,
                                                     const aloop_connect_options *opts);
ALOOP_API aloop_future *aloop_open_connection_with(aloop_loop *loop, const char *host, int port,
                                                   const aloop_connect_options *opts);

#ifdef __cplusplus
}
#endif
#endif
