/* The TCP server: Fluent Python's tcp_charfinder.py on aloop streams, one task per client, with its
 * one bug fixed (the original prompts forever once the client has gone: end of stream ends the
 * session here). */
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

/* The answer to q, then the next prompt: the result lines go out in pieces of about ANSWER_PIECE
 * bytes, waiting for each to drain, so that a client asking for all 98,000 CJK ideographs costs a
 * bounded buffer, not 4 MB; the last piece, the status and the prompt leave in one write. The
 * number of matches, or the connection's error. */
enum { ANSWER_PIECE = 32 * 1024 };
static int64_t answer(aloop_stream *s, const cf_index *ix, const char *q, size_t qlen, cf_buf *out) {
  cf_result r;
  size_t next = 0;
  out->len = 0;
  if (cf_find(ix, q, qlen, &r) < 0) return -ENOMEM;
  for (add_lines(ix, &r, &next, out, ANSWER_PIECE); next < r.count;
       add_lines(ix, &r, &next, out, ANSWER_PIECE)) {
    aloop_stream_write(s, out->data, out->len);
    out->len = 0;
    int64_t rc = aloop_await(aloop_stream_drain(s));
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

static void peer_of(aloop_stream *s, char *out, size_t n) {
  aloop_sockaddr addr;
  if (aloop_transport_peername(aloop_stream_transport(s), &addr) < 0 ||
      !aloop_sockaddr_str(&addr, out, n))
    snprintf(out, n, "?");
}

static int64_t serve_client(aloop_stream *s, void *arg) {
  const struct cf_config *cfg = arg;
  char peer[ALOOP_SOCKADDR_STRLEN];
  peer_of(s, peer, sizeof peer);
  char line[CF_LINE_LIMIT + 1]; /* the limit, plus room for readline's NUL */
  cf_buf out = {0}, query = {0};
  int64_t n = 0;
  aloop_stream_write(s, CF_PROMPT, sizeof CF_PROMPT - 1);
  for (;;) {
    if ((n = aloop_await(aloop_stream_drain(s))) < 0) break;
    if ((n = aloop_await(aloop_stream_readline(s, line, sizeof line))) <= 0) {
      if (n == -ALOOP_ELIMIT) {
        static const char msg[] = "line too long: the limit is 65536 bytes; closing\r\n";
        aloop_stream_write(s, msg, sizeof msg - 1);
        if (cfg->log) {
          fprintf(cfg->log, "tcp %s: line over %d bytes, closed\n", peer, CF_LINE_LIMIT);
          fflush(cfg->log);
        }
        n = 0;
      }
      break; /* 0: end of stream, the session is over */
    }
    const char *q;
    size_t qlen;
    enum cf_line_action act = cf_line_parse(line, (size_t)n, &q, &qlen);
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
    int64_t count = answer(s, cfg->index, q, qlen, &out);
    if (count < 0) {
      n = count;
      break;
    }
    log_query(cfg, peer, &query, (size_t)count);
  }
  cf_buf_free(&out);
  cf_buf_free(&query);
  aloop_future *closed = aloop_stream_close(s);
  aloop_future_release(closed);
  /* A client that vanished is routine, not a server error. */
  return n == -ECONNRESET || n == -EPIPE || n == -ECANCELED ? 0 : n;
}

aloop_future *cf_tcp_serve(aloop_loop *loop, const struct cf_config *cfg, const char *host,
                           int port) {
  aloop_server_options opts = {.size = sizeof opts, .limit = CF_LINE_LIMIT};
  return aloop_start_server(loop, serve_client, (void *)cfg, host, port, &opts);
}
