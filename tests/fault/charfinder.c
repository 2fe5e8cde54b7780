/* Scenarios for charfinder's request paths: an HTTP connection (cf_http) fed pipelined requests
 * with its responses caught by a sink that allocates nothing, the TCP line protocol's answer
 * (cf_line_answer), and the TCP server itself over loopback. Every answer is compared with the
 * one made without failures (cf_prepare): it must be the same, or say that memory ran out. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "charfinder/servers.h"
#include "scenarios.h"

static cf_index *ix;
static struct cf_config cfg;

/* ---- HTTP -------------------------------------------------------------------------------------- */

static const char http_requests[] =
    "GET /?query=cat+face HTTP/1.1\r\nHost: x\r\n\r\n"
    "GET /api/search?query=chess%20black&start=1&stop=5 HTTP/1.1\r\nHost: x\r\n\r\n"
    "GET /charfinder.js HTTP/1.1\r\nHost: x\r\n\r\n"
    "GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n";
enum { HTTP_RESPONSES = 4, SINK_MAX = 1 << 20 };

struct response {
  int status;
  const char *body;
  size_t len;
};

static struct {
  char data[SINK_MAX];
  size_t len;
  int closed;
} sink;
static char ref_data[SINK_MAX];
static struct response ref[HTTP_RESPONSES];

static void sink_write(void *ctx, const struct iovec *iov, int iovcnt) {
  (void)ctx;
  if (sink.closed) fault_violation("cf_http wrote after closing");
  for (int i = 0; i < iovcnt; i++) {
    size_t n = iov[i].iov_len < SINK_MAX - sink.len ? iov[i].iov_len : SINK_MAX - sink.len;
    memcpy(sink.data + sink.len, iov[i].iov_base, n);
    sink.len += n;
  }
}

static void sink_close(void *ctx) {
  (void)ctx;
  sink.closed++;
}

/* Split what the sink got into responses (at most max); -1 if one is malformed. */
static int parse_responses(const char *p, size_t n, struct response *out, int max) {
  int count = 0;
  const char *end = p + n;
  while (p < end && count < max) {
    const char *head_end = memmem(p, (size_t)(end - p), "\r\n\r\n", 4);
    if (!head_end || end - p < 13 || memcmp(p, "HTTP/1.1 ", 9)) return -1;
    const char *cl = memmem(p, (size_t)(head_end - p), "\r\nContent-Length: ", 18);
    if (!cl) return -1;
    size_t len = strtoul(cl + 18, NULL, 10);
    const char *body = head_end + 4;
    if ((size_t)(end - body) < len) return -1;
    out[count++] = (struct response){atoi(p + 9), body, len};
    p = body + len;
  }
  return p == end ? count : -1;
}

static void http_exchange(void) {
  sink.len = 0;
  sink.closed = 0;
  cf_http *h = cf_http_new(&cfg, (cf_http_sink){sink_write, sink_close, NULL, NULL}, "fault");
  if (!fault_got("cf_http_new", h)) return;
  size_t n = sizeof http_requests - 1, used = cf_http_feed(h, http_requests, n);
  if (used != n) fault_violation("cf_http_feed took %zu of %zu bytes", used, n);
  cf_http_eof(h);
  cf_http_free(h);
}

void scenario_cf_http(void) {
  http_exchange();
  struct response got[HTTP_RESPONSES + 1];
  int count = parse_responses(sink.data, sink.len, got, HTTP_RESPONSES + 1);
  if (count < 0) {
    fault_violation("a malformed response in %zu bytes written: %.80s", sink.len, sink.data);
    return;
  }
  for (int i = 0; i < count; i++) {
    if (got[i].status == 500 && i == count - 1 && sink.closed) {
      fault_current->enomem = true; /* out of memory, said so, and closed */
    } else if (i >= HTTP_RESPONSES || got[i].status != ref[i].status || got[i].len != ref[i].len ||
               memcmp(got[i].body, ref[i].body, ref[i].len)) {
      fault_violation("response %d: status %d and %zu bytes, not %d and %zu as without failures",
                      i, got[i].status, got[i].len, i < HTTP_RESPONSES ? ref[i].status : 0,
                      i < HTTP_RESPONSES ? ref[i].len : 0);
      return;
    }
  }
  fault_current->complete = count == HTTP_RESPONSES && got[count - 1].status != 500;
}

/* ---- the TCP line protocol's answer ---------------------------------------------------------------- */

static const char *const lines[] = {"cat face\r\n", "chess\n", "  \n", "qqqqzz\n", "\x03\r\n"};
enum { LINES = sizeof lines / sizeof *lines };
static struct {
  enum cf_line_action act;
  cf_buf out, query;
  size_t count;
} line_ref[LINES];

static bool same(const cf_buf *a, const cf_buf *b) {
  return a->len == b->len && (!a->len || !memcmp(a->data, b->data, a->len));
}

void scenario_cf_line(void) {
  int answered = 0;
  for (int i = 0; i < LINES; i++) {
    cf_buf out = {0}, query = {0};
    size_t count;
    enum cf_line_action act = cf_line_answer(ix, lines[i], strlen(lines[i]), &out, &count, &query);
    static const cf_buf oom = {"out of memory\r\n", 15, 15, false};
    if (out.failed || query.failed || same(&out, &oom)) {
      fault_current->enomem = true;
    } else if (act != line_ref[i].act || !same(&out, &line_ref[i].out) ||
               !same(&query, &line_ref[i].query) || count != line_ref[i].count) {
      fault_violation("line %d: a different answer than without failures", i);
    } else {
      answered++;
    }
    cf_buf_free(&out);
    cf_buf_free(&query);
  }
  fault_current->complete = answered == LINES;
}

/* ---- the TCP server over loopback -------------------------------------------------------------------- */

static aloop_loop *tcp_loop;
static int tcp_port;
static cf_buf tcp_ref; /* the prompt, the answer to "cat face", the next prompt */

static int64_t tcp_client(void *arg) {
  (void)arg;
  aloop_future *f = aloop_open_connection(tcp_loop, "127.0.0.1", tcp_port, 0);
  int64_t rc = aloop_await_keep(f);
  aloop_stream *s = rc == 0 ? aloop_future_take_data(f) : NULL;
  aloop_future_release(f);
  if (!s) return rc < 0 ? rc : -EPROTO;
  static char got[64 * 1024];
  size_t len = 0;
  if ((rc = aloop_stream_write(s, "cat face\r\n", 10)) == 0) rc = aloop_stream_write_eof(s);
  while (rc >= 0 && len < sizeof got) { /* everything until the server closes */
    rc = aloop_await(aloop_stream_read(s, got + len, sizeof got - len));
    if (rc <= 0) break;
    len += (size_t)rc;
  }
  aloop_await(aloop_stream_close(s));
  if (rc < 0) return rc;
  if (len != tcp_ref.len || memcmp(got, tcp_ref.data, len)) return len < tcp_ref.len ? -ECONNRESET : -EPROTO;
  return 0;
}

void scenario_cf_tcp(void) {
  aloop_loop *loop = tcp_loop = fault_loop();
  if (!loop) return;
  aloop_future *f = cf_tcp_serve(loop, &cfg, "127.0.0.1", 0);
  int64_t rc = fault_await_keep(loop, f, "cf_tcp_serve");
  aloop_server *server = rc == 0 ? aloop_future_data(f) : NULL;
  fault_saw("cf_tcp_serve", rc);
  aloop_future_release(f);
  if (!server) {
    fault_free_loop(loop);
    return;
  }
  tcp_port = aloop_server_port(server);
  rc = fault_await(loop, aloop_task_spawn(loop, tcp_client, NULL, NULL), "the TCP client");
  if (rc == -EPROTO) fault_violation("the TCP client got a different answer than without failures");
  else fault_after("the TCP client", rc);
  aloop_server_close(server);
  int64_t closed = fault_await(loop, aloop_server_wait_closed(server), "wait_closed");
  fault_saw("wait_closed", closed);
  aloop_server_free(server);
  fault_free_loop(loop);
  fault_current->complete = rc == 0 && closed == 0;
}

/* ---- references ----------------------------------------------------------------------------------- */

bool cf_prepare(const char *index_path) {
  char err[512];
  if (!ix && !(ix = cf_index_open(index_path, CF_UNICODE_DATA, NULL, err, sizeof err))) {
    fprintf(stderr, "cannot open the index: %s\n", err);
    return false;
  }
  cfg = (struct cf_config){.index = ix, .timeout = INT64_C(10000000000)};
  static struct fault_run unused;
  fault_current = &unused;
  http_exchange();
  memcpy(ref_data, sink.data, sink.len);
  if (parse_responses(ref_data, sink.len, ref, HTTP_RESPONSES) != HTTP_RESPONSES) {
    fprintf(stderr, "the HTTP exchange does not give %d responses\n", HTTP_RESPONSES);
    return false;
  }
  for (int i = 0; i < LINES; i++)
    line_ref[i].act = cf_line_answer(ix, lines[i], strlen(lines[i]), &line_ref[i].out,
                                     &line_ref[i].count, &line_ref[i].query);
  tcp_ref.len = 0;
  cf_buf_lit(&tcp_ref, CF_PROMPT);
  cf_buf_add(&tcp_ref, line_ref[0].out.data, line_ref[0].out.len);
  cf_buf_lit(&tcp_ref, CF_PROMPT);
  fault_current = NULL;
  return !tcp_ref.failed;
}
