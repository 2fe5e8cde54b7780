/* The TCP server: Fluent Python's tcp_charfinder.py on aloop streams, one task per client, with its
 * one bug fixed (the original prompts forever once the client has gone: end of stream ends the
 * session here). Time is bounded where a client could hold us without end: a line must arrive
 * whole within the timeout from its first byte (a client idle at the prompt may stay, as a person
 * at a telnet prompt does), and a client that reads none of its answer for the timeout is
 * dropped. */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "servers.h"

enum cf_line_action cf_line_parse(const char *line, size_t n, const char **q, size_t *qlen) {
  *q = cf_utf8_valid(line, n) ? line : "\0";
  *qlen = *q == line ? n : 1;
  cf_strip(q, qlen);
  if (*qlen == 0) return CF_LINE_PROMPT;
  return (unsigned char)(*q)[0] < 0x20 ? CF_LINE_CLOSE : CF_LINE_ANSWER;
}

/* Result lines from r.ids[*next] on, each with CRLF, until out holds at least `until` bytes or the
 * result ends; *next moves past them. */
static void add_lines(const cf_index *ix, const cf_result *r, size_t *next, cf_buf *out,
                      size_t until) {
  for (; *next < r->count && out->len < until; (*next)++) {
    cf_describe(ix, r->ids[*next], out);
    cf_buf_add(out, "\r\n", 2);
  }
}

enum cf_line_action cf_line_answer(const cf_index *ix, const char *line, size_t n, cf_buf *out,
                                   size_t *count, cf_buf *query) {
  const char *q;
  size_t qlen, next = 0;
  enum cf_line_action act = cf_line_parse(line, n, &q, &qlen);
  *count = 0;
  if (query) cf_repr(ix, q, qlen, query);
  if (act != CF_LINE_ANSWER) return act;
  cf_result r;
  if (cf_find(ix, q, qlen, &r) < 0) {
    cf_buf_lit(out, "out of memory\r\n");
    return CF_LINE_ANSWER;
  }
  add_lines(ix, &r, &next, out, SIZE_MAX);
  *count = r.count;
  cf_result_free(&r);
  cf_status(ix, q, qlen, *count, out);
  cf_buf_add(out, "\r\n", 2);
  return CF_LINE_ANSWER;
}

static void log_query(const struct cf_config *cfg, const char *peer, const cf_buf *query,
                      size_t count) {
  if (!cfg->log) return;
  fprintf(cfg->log, "tcp %s: %s, %zu result%s\n", peer, query->data ? query->data : "''", count,
          count == 1 ? "" : "s");
  fflush(cfg->log);
}

/* Wait until what was written has drained to the low mark. A client that takes none of it for
 * the timeout is stuck (-ETIMEDOUT); one that reads, however slowly, goes on. */
static int64_t drain(aloop_stream *s, aloop_loop *loop, int64_t timeout) {
  for (;;) {
    aloop_transport *t = aloop_stream_transport(s);
    size_t before = t ? aloop_transport_get_write_buffer_size(t) : 0;
    aloop_future *d = aloop_stream_drain(s);
    if (!d) return -ENOMEM;
    int64_t rc = aloop_await(aloop_wait_for(loop, d, timeout));
    aloop_future_release(d);
    if (rc != -ETIMEDOUT) return rc;
    if (!(t = aloop_stream_transport(s))) return -EPIPE;
    if (aloop_transport_get_write_buffer_size(t) >= before) return -ETIMEDOUT;
  }
}

/* The answer to q, then the next prompt: the result lines go out in pieces of about ANSWER_PIECE
 * bytes, waiting for each to drain, so that a client asking for all 98,000 CJK ideographs costs a
 * bounded buffer, not 4 MB; the last piece, the status and the prompt leave in one write. The
 * number of matches, or the connection's error. With the write buffer's high mark at WRITE_HIGH,
 * what is queued and the piece being formatted stay within 64 KiB however slow the client. */
enum { ANSWER_PIECE = 16 * 1024, WRITE_HIGH = 48 * 1024 };
static int64_t answer(aloop_stream *s, const struct cf_config *cfg, const char *q, size_t qlen,
                      cf_buf *out) {
  const cf_index *ix = cfg->index;
  cf_result r;
  size_t next = 0;
  out->len = 0;
  if (cf_find(ix, q, qlen, &r) < 0) return -ENOMEM;
  for (add_lines(ix, &r, &next, out, ANSWER_PIECE); next < r.count;
       add_lines(ix, &r, &next, out, ANSWER_PIECE)) {
    aloop_stream_write(s, out->data, out->len);
    out->len = 0;
    int64_t rc = drain(s, cfg->loop, cfg->timeout);
    if (rc < 0) {
      cf_result_free(&r);
      return rc;
    }
  }
  int64_t count = (int64_t)r.count;
  cf_result_free(&r);
  cf_status(ix, q, qlen, (size_t)count, out);
  cf_buf_lit(out, "\r\n" CF_PROMPT);
  aloop_stream_write(s, out->data, out->len);
  return out->failed ? -ENOMEM : count;
}

/* Lines as they arrive: the bytes of the line under way (and of any after it), and when its first
 * byte came, which bounds how long the rest may take. */
struct lines {
  char buf[CF_LINE_LIMIT];
  size_t len;     /* bytes held */
  size_t taken;   /* the line handed out last: dropped before the next is looked for */
  int64_t since;  /* when the first byte held arrived; -1: nothing held */
};

/* The next line, newline included (the last one may lack it at end of stream): its length, 0 at
 * end of stream, -ALOOP_ELIMIT for a line over CF_LINE_LIMIT bytes, -ETIMEDOUT when it did not
 * arrive whole within the timeout from its first byte, or the connection's error. */
static int64_t next_line(aloop_stream *s, struct lines *l, aloop_loop *loop, int64_t timeout) {
  if (l->taken) { /* the bytes after the last line were here already: their time starts now */
    if (l->len > l->taken) memmove(l->buf, l->buf + l->taken, l->len - l->taken);
    l->len -= l->taken;
    l->taken = 0;
    l->since = l->len ? aloop_time(loop) : -1;
  }
  for (;;) {
    const char *nl = l->len ? memchr(l->buf, '\n', l->len) : NULL;
    if (nl) return (int64_t)(l->taken = (size_t)(nl - l->buf) + 1);
    if (l->len == sizeof l->buf) return -ALOOP_ELIMIT;
    aloop_future *rd = aloop_stream_read(s, l->buf + l->len, sizeof l->buf - l->len);
    int64_t n;
    if (l->since < 0) { /* nothing of a line yet: idle at the prompt, for as long as it likes */
      n = aloop_await(rd);
    } else {
      int64_t left = l->since + timeout - aloop_time(loop);
      if (left <= 0 || !rd) {
        aloop_future_release(rd);
        return rd ? -ETIMEDOUT : -ENOMEM;
      }
      n = aloop_await(aloop_wait_for(loop, rd, left));
      aloop_future_release(rd);
    }
    if (n < 0) return n;
    if (n == 0) /* end of stream: what is held is the last line, unterminated */
      return (int64_t)(l->taken = l->len);
    if (l->since < 0) l->since = aloop_time(loop);
    l->len += (size_t)n;
  }
}

/* The peer's address; "?" if the connection is gone already (a client that connected and reset
 * before its task ran leaves the stream without a transport). */
static void peer_of(aloop_stream *s, char *out, size_t n) {
  aloop_transport *t = aloop_stream_transport(s);
  aloop_sockaddr addr;
  if (!t || aloop_transport_peername(t, &addr) < 0 || !aloop_sockaddr_str(&addr, out, n))
    snprintf(out, n, "?");
}

/* One line for the log, when there is a log. */
static void log_line(const struct cf_config *cfg, const char *peer, const char *what) {
  if (!cfg->log) return;
  fprintf(cfg->log, "tcp %s: %s\n", peer, what);
  fflush(cfg->log);
}

/* Why we end a session ourselves. */
enum ending {
  LINE_TOO_LONG, /* over CF_LINE_LIMIT bytes: told, then closed */
  LINE_TOO_SLOW, /* not whole within the timeout from its first byte: told, then closed */
  NOT_READ,      /* the client took none of its answer for the timeout: aborted, as nothing more
                    can reach it and closing would wait for a flush that never comes */
};

static void end_session(aloop_stream *s, const struct cf_config *cfg, const char *peer,
                        enum ending why) {
  static const char too_long[] = "line too long: the limit is 65536 bytes; closing\r\n";
  static const char too_slow[] = "line not complete in time; closing\r\n";
  double timeout = (double)cfg->timeout / 1e9;
  char what[96];
  switch (why) {
  case LINE_TOO_LONG:
    aloop_stream_write(s, too_long, sizeof too_long - 1);
    snprintf(what, sizeof what, "line over %d bytes, closed", CF_LINE_LIMIT);
    break;
  case LINE_TOO_SLOW:
    aloop_stream_write(s, too_slow, sizeof too_slow - 1);
    snprintf(what, sizeof what, "line not complete %.3g s after its first byte, closed", timeout);
    break;
  case NOT_READ:
    if (aloop_stream_transport(s)) aloop_transport_abort(aloop_stream_transport(s));
    snprintf(what, sizeof what, "answer not read for %.3g s, dropped", timeout);
    break;
  }
  log_line(cfg, peer, what);
}

static int64_t serve_client(aloop_stream *s, void *arg) {
  const struct cf_config *cfg = arg;
  char peer[ALOOP_SOCKADDR_STRLEN];
  peer_of(s, peer, sizeof peer);
  struct lines lines = {.since = -1};
  cf_buf out = {0}, query = {0};
  int64_t n = 0;
  aloop_transport *t = aloop_stream_transport(s); /* NULL if the client is gone already */
  if (t) aloop_transport_set_write_buffer_limits(t, WRITE_HIGH, 0);
  aloop_stream_write(s, CF_PROMPT, sizeof CF_PROMPT - 1);
  for (;;) {
    if ((n = drain(s, cfg->loop, cfg->timeout)) < 0) break;
    if ((n = next_line(s, &lines, cfg->loop, cfg->timeout)) <= 0) {
      if (n == -ALOOP_ELIMIT || n == -ETIMEDOUT) {
        end_session(s, cfg, peer, n == -ETIMEDOUT ? LINE_TOO_SLOW : LINE_TOO_LONG);
        n = 0;
      }
      break; /* 0: end of stream, the session is over */
    }
    const char *q;
    size_t qlen;
    enum cf_line_action act = cf_line_parse(lines.buf, (size_t)n, &q, &qlen);
    if (act == CF_LINE_PROMPT) {
      aloop_stream_write(s, CF_PROMPT, sizeof CF_PROMPT - 1);
      continue;
    }
    query.len = 0;
    cf_repr(cfg->index, q, qlen, &query);
    if (act == CF_LINE_CLOSE) {
      log_query(cfg, peer, &query, 0);
      break;
    }
    int64_t count = answer(s, cfg, q, qlen, &out);
    if (count < 0) {
      n = count;
      break;
    }
    log_query(cfg, peer, &query, (size_t)count);
  }
  if (n == -ETIMEDOUT) { /* only drain() times out here */
    end_session(s, cfg, peer, NOT_READ);
    n = 0;
  }
  cf_buf_free(&out);
  cf_buf_free(&query);
  aloop_future *closed = aloop_stream_close(s);
  aloop_future_release(closed);
  /* A client that vanished is routine, not a server error. */
  return n == -ECONNRESET || n == -EPIPE || n == -ECANCELED ? 0 : n;
}

enum { READ_AHEAD = 4 * 1024 };

aloop_future *cf_tcp_serve(aloop_loop *loop, struct cf_config *cfg, const char *host,
                           int port) {
  cfg->loop = loop; /* a task's stream may outlive its transport: the loop is kept here */
  /* Lines are put together in the task's own buffer (struct lines), which bounds them: the
   * stream only holds what arrives while the task is busy, a few queries ahead. */
  aloop_server_options opts = {.size = sizeof opts, .limit = READ_AHEAD,
                               .max_connections = cfg->max_connections};
  return aloop_start_server(loop, serve_client, (void *)cfg, host, port, &opts);
}
