/* charfinder's two servers on an aloop loop, and the pure functions that answer their requests
 * (which the tests and fuzz targets call directly, without sockets). */
#ifndef ALOOP_CHARFINDER_SERVERS_H
#define ALOOP_CHARFINDER_SERVERS_H

#include <sys/uio.h>

#include "aloop.h"
#include "charfinder.h"

struct cf_config {
  const cf_index *index;
  FILE *log;             /* one line per query; NULL: quiet */
  /* ns: how long an HTTP connection may stay idle between requests; how long a request's head
   * (HTTP) or line (TCP) may take from its first byte, and an HTTP body from the end of its head;
   * how long a client may leave our answers unread before it is dropped. */
  int64_t timeout;
  size_t max_connections; /* per server; 0: no limit (aloop_server_options.max_connections) */
  aloop_tls_context *tls;  /* the HTTP server speaks TLS with it (HTTPS); NULL: plain */
  struct cf_http_conn *http_conns; /* the HTTP server's open connections (http.c keeps it) */
  aloop_loop *loop; /* the TCP server's (cf_tcp_serve sets it): its tasks' clock and timers */
};

/* ---- TCP: the line protocol ----------------------------------------------------------------------- */

#define CF_PROMPT "?> "
enum { CF_LINE_LIMIT = 64 * 1024 };

enum cf_line_action {
  CF_LINE_PROMPT, /* an empty query: nothing but the next prompt */
  CF_LINE_ANSWER, /* out holds the result lines and the status, each ending in CRLF */
  CF_LINE_CLOSE,  /* a control character (or undecodable bytes): end the session */
};
/* What to do with one line as received (newline included): *q and *qlen get the query, decoded
 * (undecodable bytes are the query "\0", as the original's UnicodeDecodeError handler makes
 * them) and stripped. */
enum cf_line_action cf_line_parse(const char *line, size_t n, const char **q, size_t *qlen);
/* Answer one line whole. *count: the matches; query (may be NULL) gets repr() of the query for
 * the log. The server streams big answers instead (tcp.c); this is the same answer in one piece. */
enum cf_line_action cf_line_answer(const cf_index *ix, const char *line, size_t n, cf_buf *out,
                                   size_t *count, cf_buf *query);

/* Start the TCP server (aloop streams): the future's data is the aloop_server. */
aloop_future *cf_tcp_serve(aloop_loop *loop, struct cf_config *cfg, const char *host,
                           int port);

/* ---- HTTP ------------------------------------------------------------------------------------------ */

typedef struct cf_http cf_http;
/* Where an HTTP connection's bytes go: write them (a response's head and body, in one call so
 * that they leave in one send), or close after what was written; and its clock (ns, monotonic;
 * NULL: always 0), which dates the phases whose time is bounded. */
typedef struct cf_http_sink {
  void (*write)(void *ctx, const struct iovec *iov, int iovcnt);
  void (*close)(void *ctx);
  void *ctx;
  int64_t (*now)(void *ctx);
} cf_http_sink;

/* One HTTP connection's state, independent of any socket. */
cf_http *cf_http_new(const struct cf_config *cfg, cf_http_sink sink, const char *peer);
/* Parse bytes from the peer, writing each response to the sink in order. Returns how many bytes
 * were consumed: less than n when parsing paused (cf_http_pause) or the connection is closing. */
size_t cf_http_feed(cf_http *h, const char *data, size_t n);
/* The peer sent its last byte. */
void cf_http_eof(cf_http *h);
/* When the connection's current bound runs out, on the sink's clock: the timeout after the last
 * answer (idle), after a request's first byte (its head) or after the end of its head (its body);
 * INT64_MAX while parsing is held back (cf_http_pause) or the connection is closing. Bytes that
 * trickle in do not move it. */
int64_t cf_http_deadline(const cf_http *h);
/* The deadline passed: 408 when a request is under way (or none came yet), else close quietly. */
void cf_http_timeout(cf_http *h);
/* Hold back parsing (the sink's writes are backed up) / let it go on (the client read: the
 * current phase's time starts again). */
void cf_http_pause(cf_http *h, bool paused);
/* The server is shutting down: close now if no request is under way, else after answering it. */
void cf_http_finish(cf_http *h);
/* The peer's address as given to cf_http_new. */
const char *cf_http_peer(const cf_http *h);
void cf_http_free(cf_http *h);

aloop_future *cf_http_serve(aloop_loop *loop, struct cf_config *cfg, const char *host, int port);
/* Shutting down: every open HTTP connection finishes what it is answering and closes; idle
 * kept-alive ones (a browser's) close at once instead of waiting out the grace period. */
void cf_http_finish_all(struct cf_config *cfg);

#endif
