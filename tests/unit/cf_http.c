/* charfinder's HTTP connection (cf_http) fed bytes directly, its responses collected from a memory
 * sink: the page, the JSON API, the script, every error code, keep-alive, pipelining, requests cut
 * into pieces, escaping, parsing held back while the writer is backed up, 100 Continue, and the
 * time bounds on a test clock. Every request fed through feed() is also fed, on fresh connections
 * that have seen the same bytes before it, cut in many ways (a byte at a time, in halves, at each
 * boundary of short ones...): the answer must not depend on how the bytes arrived. */
#include "../cf_scratch.h"
#include "../run_suite.h"
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "charfinder/servers.h"

static cf_index *ix;
static struct cf_config cfg;

enum { SECOND = 1000000000, TIMEOUT = SECOND };

struct sink {
  cf_buf out;
  int closed;
  bool fill_up; /* each write fills the writer's buffer, as a slow reader makes it */
};
static struct sink sink;
static cf_http *h;
static int64_t clock_ns = 1000 * (int64_t)SECOND; /* the test clock: moves only when told */

static void sink_write(void *ctx, const struct iovec *iov, int iovcnt) {
  struct sink *s = ctx;
  ck_assert_msg(!s->closed, "written after close");
  for (int i = 0; i < iovcnt; i++) cf_buf_add(&s->out, iov[i].iov_base, iov[i].iov_len);
  if (s->fill_up) cf_http_pause(h, true); /* what the transport's pause_writing does */
}
static void sink_close(void *ctx) { ((struct sink *)ctx)->closed++; }
static int64_t sink_now(void *ctx) {
  (void)ctx;
  return clock_ns;
}

static cf_http *connection(struct sink *s) {
  cf_http *c = cf_http_new(&cfg, (cf_http_sink){sink_write, sink_close, s, sink_now}, "test");
  ck_assert_ptr_nonnull(c);
  return c;
}

/* Every byte fed to h through feed(): a fresh connection fed these first is in h's state. */
static cf_buf history;

/* A new connection in h, with an empty sink. */
static void reconnect(void) {
  cf_http_free(h);
  cf_buf_free(&sink.out);
  sink = (struct sink){{0}, 0, false};
  history.len = 0;
  h = connection(&sink);
}

static void setup(void) {
  char err[512];
  ix = cf_index_open(scratch_index, CF_UNICODE_DATA, NULL, err, sizeof err);
  ck_assert_msg(ix != NULL, "%s", err);
  cfg = (struct cf_config){.index = ix, .timeout = TIMEOUT};
  sink = (struct sink){{0}, 0, false};
  history = (cf_buf){0};
  h = connection(&sink);
}

static void teardown(void) {
  cf_http_free(h);
  cf_buf_free(&sink.out);
  cf_buf_free(&history);
  cf_index_close(ix);
}

/* What a connection wrote, without Date headers (they follow the wall clock), into out. */
static void without_dates(const char *s, size_t n, cf_buf *out) {
  out->len = 0;
  for (size_t i = 0; i < n;) {
    const char *eol = memchr(s + i, '\n', n - i);
    size_t end = eol ? (size_t)(eol - s) + 1 : n;
    if (end - i < 6 || memcmp(s + i, "Date: ", 6)) cf_buf_add(out, s + i, end - i);
    i = end;
  }
}

/* Feed req[0..n) to a fresh connection that has seen the history, in pieces of `piece` bytes, or
 * (piece 0) cut once at `cut`; what it writes and whether it closes must be want and closed. */
static void same_when_cut(const char *req, size_t n, size_t piece, size_t cut, const cf_buf *want,
                          int closed) {
  struct sink s = {{0}, 0, false};
  cf_http *c = connection(&s);
  if (history.len) ck_assert_uint_eq(cf_http_feed(c, history.data, history.len), history.len);
  size_t before = s.out.len;
  int closed_before = s.closed;
  for (size_t at = 0; at < n;) {
    size_t k = piece ? (piece < n - at ? piece : n - at) : at < cut ? cut - at : n - at;
    ck_assert_uint_eq(cf_http_feed(c, req + at, k), k);
    at += k;
  }
  cf_buf got = {0};
  without_dates(s.out.data ? s.out.data + before : "", s.out.len - before, &got);
  ck_assert_msg(got.len == want->len && (!got.len || !memcmp(got.data, want->data, got.len)),
                "cut %s %zu, a different answer:\n%.300s\nnot:\n%.300s",
                piece ? "into pieces of" : "at", piece ? piece : cut, got.data ? got.data : "",
                want->data ? want->data : "");
  ck_assert_int_eq(s.closed - closed_before, closed);
  cf_buf_free(&got);
  cf_buf_free(&s.out);
  cf_http_free(c);
}

/* A request whose answer must not depend on the cuts: those tried. */
enum { EVERY_CUT_UP_TO = 160 }; /* requests this short are also cut at each boundary */
static const size_t pieces[] = {1, 2, 3, 7, 64, 1000, 8192};

/* Feed req to h whole (the answer the test looks at), then check every way of cutting it. */
static void feed_n(const char *req, size_t n) {
  size_t before = sink.out.len;
  int closed_before = sink.closed;
  ck_assert_uint_eq(cf_http_feed(h, req, n), n);
  cf_buf want = {0};
  without_dates(sink.out.data ? sink.out.data + before : "", sink.out.len - before, &want);
  int closed = sink.closed - closed_before;
  for (size_t i = 0; i < sizeof pieces / sizeof *pieces; i++)
    if (pieces[i] < n) same_when_cut(req, n, pieces[i], 0, &want, closed);
  same_when_cut(req, n, 0, n / 2, &want, closed);
  for (size_t cut = 1; n <= EVERY_CUT_UP_TO && cut < n; cut++)
    same_when_cut(req, n, 0, cut, &want, closed);
  cf_buf_free(&want);
  cf_buf_add(&history, req, n);
}

static void feed(const char *req) { feed_n(req, strlen(req)); }

/* The i-th response (0-based) in what was written: its start, or NULL. */
static const char *response(int i) {
  const char *p = sink.out.data;
  for (int k = 0; p; k++) {
    p = strstr(p, "HTTP/1.1 ");
    if (!p || k == i) return p;
    p++;
  }
  return NULL;
}

static int status_of(int i) {
  const char *r = response(i);
  ck_assert_msg(r != NULL, "no response %d in:\n%s", i, sink.out.data ? sink.out.data : "");
  return atoi(r + 9);
}

static int responses(void) {
  int n = 0;
  while (response(n)) n++;
  return n;
}

static bool has(const char *text) { return sink.out.data && strstr(sink.out.data, text); }

START_TEST(test_the_page_without_a_query_asks_for_words) {
  feed("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  ck_assert_int_eq(status_of(0), 200);
  ck_assert(has("Content-Type: text/html; charset=UTF-8\r\n"));
  ck_assert(has("<p id=\"status\">Enter words describing characters.</p>"));
  ck_assert(has("<a href=\"/?query=bismillah\" title=\"find &quot;bismillah&quot;\">bismillah</a>"));
  ck_assert(has("<script src=\"/charfinder.js\"></script>"));
  ck_assert_int_eq(sink.closed, 0);
  /* Content-Length is the body's length. */
  const char *body = strstr(sink.out.data, "\r\n\r\n") + 4;
  ck_assert_uint_eq(strlen(body), (size_t)atol(strstr(sink.out.data, "Content-Length: ") + 16));
}
END_TEST

START_TEST(test_the_page_shows_rows_status_and_the_query) {
  feed("GET /?query=cat+face HTTP/1.1\r\nHost: x\r\n\r\n");
  ck_assert_int_eq(status_of(0), 200);
  ck_assert(has("value=\"cat face\""));
  ck_assert(has("<p id=\"status\">10 matches for &#39;cat face&#39;</p>"));
  ck_assert(has("<tr><td>U+1F431</td><th>\U0001F431</th><td>CAT FACE</td></tr>"));
  ck_assert(!has("id=\"more\""));
}
END_TEST

START_TEST(test_a_big_answer_shows_200_rows_and_the_script_loads_the_rest) {
  feed("GET /?query=cjk HTTP/1.1\r\nHost: x\r\n\r\n");
  ck_assert_int_eq(status_of(0), 200);
  int rows = 0;
  for (const char *p = sink.out.data; (p = strstr(p, "<tr>")); p++) rows++;
  ck_assert_int_eq(rows, 200);
  ck_assert(has("data-shown=\"200\""));
  ck_assert(has("<p id=\"more\">200 of "));
  ck_assert_uint_lt(sink.out.len, 64 * 1024); /* not a multi-megabyte page */
  sink.out.len = 0;
  feed("GET /charfinder.js HTTP/1.1\r\nHost: x\r\n\r\n");
  ck_assert_int_eq(status_of(0), 200);
  ck_assert(has("Content-Type: text/javascript"));
  ck_assert(has("/api/search?query="));
  ck_assert(has("IntersectionObserver"));
}
END_TEST

START_TEST(test_the_api_pages_through_results_as_json) {
  feed("GET /api/search?query=chess%20black&start=2&stop=4 HTTP/1.1\r\nHost: x\r\n\r\n");
  ck_assert_int_eq(status_of(0), 200);
  ck_assert(has("Content-Type: application/json\r\n"));
  ck_assert(has("{\"query\":\"chess black\",\"count\":33,\"start\":2,\"stop\":4,\"items\":["
                "{\"code\":\"U+265C\",\"char\":\"\u265c\",\"name\":\"BLACK CHESS ROOK\"},"
                "{\"code\":\"U+265D\",\"char\":\"\u265d\",\"name\":\"BLACK CHESS BISHOP\"}]}"));
  sink.out.len = 0;
  feed("GET /api/search?query=cjk&start=98000 HTTP/1.1\r\nHost: x\r\n\r\n");
  ck_assert(has("\"start\":98000,\"stop\":98200,"));
  sink.out.len = 0;
  feed("GET /api/search?query=cjk&stop=100000 HTTP/1.1\r\nHost: x\r\n\r\n");
  ck_assert(has("\"start\":0,\"stop\":1000,")); /* at most 1000 items per response */
  sink.out.len = 0;
  feed("GET /api/search?query=%22%5C HTTP/1.1\r\nHost: x\r\n\r\n");
  ck_assert(has("{\"query\":\"\\\"\\\\\",\"count\":0,"));
  sink.out.len = 0;
  feed("GET /api/search?query=line+separator HTTP/1.1\r\nHost: x\r\n\r\n");
  ck_assert(has("\"char\":\"\\u2028\""));
}
END_TEST

START_TEST(test_user_text_is_escaped_in_the_page) {
  feed("GET /?query=%3Cscript%3Ealert(1)%3C/script%3E%22%27%26 HTTP/1.1\r\nHost: x\r\n\r\n");
  ck_assert_int_eq(status_of(0), 200);
  ck_assert(!has("<script>alert"));
  ck_assert(has("value=\"&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#39;&amp;\""));
  ck_assert(has("data-query=\"&lt;script&gt;"));
  /* Characters that are markup are escaped in the rows too. */
  sink.out.len = 0;
  feed("GET /?query=less-than+sign HTTP/1.1\r\nHost: x\r\n\r\n");
  ck_assert(has("<tr><td>U+003C</td><th>&lt;</th><td>LESS-THAN SIGN</td></tr>"));
}
END_TEST

START_TEST(test_keep_alive_pipelining_and_pieces) {
  /* Three requests in one read: three answers, in order, on one connection. */
  feed("GET /api/search?query=digit+one&stop=1 HTTP/1.1\r\nHost: x\r\n\r\n"
       "GET /api/search?query=digit+two&stop=1 HTTP/1.1\r\nHost: x\r\n\r\n"
       "HEAD /?query=cat HTTP/1.1\r\nHost: x\r\n\r\n");
  ck_assert_int_eq(responses(), 3);
  const char *one = strstr(sink.out.data, "DIGIT ONE"), *two = strstr(sink.out.data, "DIGIT TWO");
  ck_assert(one && two && one < two);
  ck_assert(!has("<html")); /* HEAD: headers only */
  ck_assert_int_eq(sink.closed, 0);
  /* A request arriving a byte at a time (feed() tries that too, and more). */
  sink.out.len = 0;
  const char *req = "GET /?query=cat HTTP/1.1\r\nHost: x\r\n\r\n";
  for (size_t i = 0; req[i]; i++) ck_assert_uint_eq(cf_http_feed(h, req + i, 1), 1);
  cf_buf_adds(&history, req);
  ck_assert_int_eq(responses(), 1);
  ck_assert_int_eq(status_of(0), 200);
  /* HTTP/1.0 without keep-alive, and Connection: close, end the connection after the answer. */
  sink.out.len = 0;
  feed("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  ck_assert(has("Connection: close\r\n"));
  ck_assert_int_eq(sink.closed, 1);
}
END_TEST

START_TEST(test_http_1_0_closes_after_the_answer) {
  feed("GET /?query=cat HTTP/1.0\r\n\r\n");
  ck_assert_int_eq(status_of(0), 200);
  ck_assert_int_eq(sink.closed, 1);
}
END_TEST

START_TEST(test_errors_have_codes_short_bodies_and_close_when_they_must) {
  feed("GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n");
  ck_assert_int_eq(status_of(0), 404);
  ck_assert(has("Content-Type: text/plain"));
  feed("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc");
  ck_assert_int_eq(status_of(1), 405);
  ck_assert(has("Allow: GET, HEAD\r\n"));
  feed("GET /?query=%zz HTTP/1.1\r\nHost: x\r\n\r\n");
  ck_assert_int_eq(status_of(2), 400);
  feed("GET /?query=%ff%fe HTTP/1.1\r\nHost: x\r\n\r\n");
  ck_assert_int_eq(status_of(3), 400);
  feed("GET /api/search?query=cat&start=-1 HTTP/1.1\r\nHost: x\r\n\r\n");
  ck_assert_int_eq(status_of(4), 400);
  feed("GET /api/search?query=cat&stop=ten HTTP/1.1\r\nHost: x\r\n\r\n");
  ck_assert_int_eq(status_of(5), 400);
  ck_assert_int_eq(sink.closed, 0); /* all of these leave the connection usable */
  feed("GET /?query=cat HTTP/1.1\r\nHost: x\r\n\r\n");
  ck_assert_int_eq(status_of(6), 200);
  /* Garbage: 400, Connection: close, and nothing after it is read. */
  feed("BLAH BLAH\r\n\r\nGET / HTTP/1.1\r\n\r\n");
  ck_assert_int_eq(status_of(7), 400);
  ck_assert_int_eq(responses(), 8);
  ck_assert_int_eq(sink.closed, 1);
  ck_assert(has("Connection: close\r\n"));
}
END_TEST

/* "GET <a URL of url bytes> HTTP/1.1", one header, a blank line: head bytes in all. */
static void limit_request(cf_buf *req, size_t url, size_t head) {
  req->len = 0;
  cf_buf_adds(req, "GET /?query=");
  while (req->len < 4 + url) cf_buf_adds(req, "b");
  cf_buf_adds(req, " HTTP/1.1\r\nX: ");
  while (req->len < head - 4) cf_buf_adds(req, "y");
  cf_buf_adds(req, "\r\n\r\n");
}

START_TEST(test_oversized_heads_and_urls_are_431_and_414) {
  cf_buf req = {0};
  cf_buf_adds(&req, "GET / HTTP/1.1\r\nHost: x\r\n");
  for (int i = 0; i < 400; i++) cf_buf_printf(&req, "X-Filler-%d: %040d\r\n", i, i);
  cf_buf_adds(&req, "\r\n");
  feed_n(req.data, req.len);
  ck_assert_int_eq(status_of(0), 431);
  ck_assert_int_eq(sink.closed, 1);

  /* A 100 KB URL is 414 however it arrives (it was 431 in one read: past the parser's own
   * limit before the URL's end was seen). */
  reconnect();
  req.len = 0;
  cf_buf_adds(&req, "GET /?query=");
  for (int i = 0; i < 100 * 1000; i++) cf_buf_adds(&req, "a");
  cf_buf_adds(&req, " HTTP/1.1\r\n\r\n");
  feed_n(req.data, req.len);
  ck_assert_int_eq(status_of(0), 414);
  ck_assert_int_eq(sink.closed, 1);

  /* At the limits exactly (an 8 KiB URL, a 16 KiB head): served; a byte more in either is
   * refused. */
  static const struct {
    size_t url, head;
    int status;
  } limits[] = {{8192, 16384, 200}, {8193, 16384, 414}, {8192, 16385, 431}};
  for (size_t i = 0; i < sizeof limits / sizeof *limits; i++) {
    reconnect();
    limit_request(&req, limits[i].url, limits[i].head);
    feed_n(req.data, req.len);
    ck_assert_msg(status_of(0) == limits[i].status, "URL %zu, head %zu: %d", limits[i].url,
                  limits[i].head, status_of(0));
  }
  cf_buf_free(&req);
}
END_TEST

START_TEST(test_a_body_over_the_limit_is_413_however_it_arrives) {
  /* Announced: refused as soon as the head is in. */
  feed("GET /?query=cat HTTP/1.1\r\nHost: x\r\nContent-Length: 70000\r\n\r\nabc");
  ck_assert_int_eq(status_of(0), 413);
  ck_assert_int_eq(sink.closed, 1);
  /* Chunked: refused at the byte that passes 64 KiB. */
  reconnect();
  cf_buf req = {0};
  cf_buf_adds(&req, "GET /?query=cat HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
  for (int i = 0; i < 17; i++) {
    cf_buf_adds(&req, "1000\r\n");
    for (int k = 0; k < 0x1000; k++) cf_buf_adds(&req, "z");
    cf_buf_adds(&req, "\r\n");
  }
  cf_buf_adds(&req, "0\r\n\r\n");
  feed_n(req.data, req.len);
  ck_assert_int_eq(status_of(0), 413);
  ck_assert_int_eq(responses(), 1);
  ck_assert_int_eq(sink.closed, 1);
  cf_buf_free(&req);
}
END_TEST

START_TEST(test_http_versions_other_than_1_are_505) {
  static const char *const requests[] = {
      "GET / HTTP/9.9\r\nHost: x\r\n\r\n", "GET / HTTP/2.0\r\nHost: x\r\n\r\n",
      "GET / HTTP/0.9\r\n\r\n", "POST / HTTP/3.1\r\nContent-Length: 2\r\n\r\nab"};
  for (size_t i = 0; i < sizeof requests / sizeof *requests; i++) {
    reconnect();
    feed(requests[i]);
    ck_assert_msg(status_of(0) == 505, "%s", requests[i]);
    ck_assert(has("505 HTTP Version Not Supported"));
    ck_assert_int_eq(responses(), 1);
    ck_assert_int_eq(sink.closed, 1);
  }
  reconnect(); /* 1.0 and 1.1 are served */
  feed("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  feed("GET / HTTP/1.0\r\n\r\n");
  ck_assert_int_eq(status_of(0), 200);
  ck_assert_int_eq(status_of(1), 200);
}
END_TEST

static const char continue_line[] = "HTTP/1.1 100 Continue\r\n\r\n";

START_TEST(test_expect_100_continue_is_answered_at_once) {
  /* A request we will read: 100 Continue as soon as its head is in, the answer after its body. */
  feed("GET /?query=cat+face HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
  ck_assert_str_eq(sink.out.data, continue_line);
  feed("hello");
  ck_assert_int_eq(status_of(1), 200);
  ck_assert(has("10 matches for &#39;cat face&#39;"));
  ck_assert_int_eq(sink.closed, 0);
  /* Names and values in any case, chunked bodies too. */
  sink.out.len = 0;
  feed("GET /api/search?query=cat HTTP/1.1\r\nEXPECT:  100-Continue \r\n"
       "Transfer-Encoding: chunked\r\n\r\n");
  ck_assert_str_eq(sink.out.data, continue_line);
  feed("2\r\nhi\r\n0\r\n\r\n");
  ck_assert_int_eq(status_of(1), 200);
  /* Nothing to wait for without a body, and HTTP/1.0 clients know nothing of it: no 100. */
  sink.out.len = 0;
  feed("GET /?query=cat HTTP/1.1\r\nExpect: 100-continue\r\n\r\n");
  ck_assert_int_eq(status_of(0), 200);
  ck_assert_int_eq(responses(), 1);
  reconnect();
  feed("GET /?query=cat HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n");
  ck_assert_int_eq(responses(), 0);
  feed("ok");
  ck_assert_int_eq(status_of(0), 200);
  /* Other expectations and headers that only look alike are not it. */
  reconnect();
  feed("GET / HTTP/1.1\r\nExpect: 100-continued\r\nX-Expect: 100-continue\r\n"
       "Expects: 100-continue\r\nContent-Length: 2\r\n\r\n");
  ck_assert_int_eq(responses(), 0);
  feed("ok");
  ck_assert_int_eq(status_of(0), 200);
}
END_TEST

START_TEST(test_expect_100_continue_is_refused_at_once_when_the_body_would_be_in_vain) {
  static const struct {
    const char *head;
    int status;
  } refused[] = {
      {"POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n", 405},
      {"PUT /?query=cat HTTP/1.1\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n", 405},
      {"GET /nowhere HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n", 404},
      {"GET / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 100000\r\n\r\n", 413},
      {"GET http://[::1 HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n", 400},
  };
  for (size_t i = 0; i < sizeof refused / sizeof *refused; i++) {
    reconnect();
    feed(refused[i].head);
    ck_assert_msg(status_of(0) == refused[i].status, "%s: %d", refused[i].head, status_of(0));
    ck_assert_msg(!has("100 Continue"), "%s", refused[i].head);
    ck_assert_int_eq(responses(), 1);
    ck_assert(has("Connection: close\r\n")); /* the body is not read: nothing after it either */
    ck_assert_int_eq(sink.closed, 1);
  }
}
END_TEST

START_TEST(test_the_idle_timeout_is_408_mid_request_and_silent_between_requests) {
  feed("GET /?query=cat HTTP/1.1\r\nHo");
  ck_assert_int_eq(responses(), 0);
  cf_http_timeout(h);
  ck_assert_int_eq(status_of(0), 408);
  ck_assert_int_eq(sink.closed, 1);

  reconnect();
  feed("GET /?query=cat HTTP/1.1\r\nHost: x\r\n\r\n");
  cf_http_timeout(h); /* a kept-alive connection with nothing under way */
  ck_assert_int_eq(responses(), 1);
  ck_assert_int_eq(sink.closed, 1);
}
END_TEST

START_TEST(test_a_head_must_arrive_within_the_timeout_from_its_first_byte) {
  int64_t opened = clock_ns;
  ck_assert_int_eq(cf_http_deadline(h), opened + TIMEOUT); /* idle: from the connection */
  clock_ns += TIMEOUT / 2;
  const char *req = "GET /?query=cat HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaa";
  int64_t first = clock_ns;
  for (size_t i = 0; req[i]; i++) { /* a byte every 100 ms: each one moves nothing */
    ck_assert_uint_eq(cf_http_feed(h, req + i, 1), 1);
    ck_assert_int_eq(cf_http_deadline(h), first + TIMEOUT);
    clock_ns += SECOND / 10;
  }
  ck_assert_int_ge(clock_ns, cf_http_deadline(h));
  cf_http_timeout(h);
  ck_assert_int_eq(status_of(0), 408);
  ck_assert_int_eq(sink.closed, 1);
  ck_assert_int_eq(cf_http_deadline(h), INT64_MAX); /* closing: nothing more to time */
}
END_TEST

START_TEST(test_a_body_must_arrive_within_the_timeout_from_the_end_of_its_head) {
  feed("GET /?query=cat HTTP/1.1\r\nHost: x\r\nContent-Len");
  clock_ns += SECOND / 2;
  feed("gth: 50\r\n\r\n");
  int64_t head_done = clock_ns;
  ck_assert_int_eq(cf_http_deadline(h), head_done + TIMEOUT);
  for (int i = 0; i < 20; i++) {
    clock_ns += SECOND / 10;
    ck_assert_uint_eq(cf_http_feed(h, "b", 1), 1);
    ck_assert_int_eq(cf_http_deadline(h), head_done + TIMEOUT);
  }
  cf_http_timeout(h);
  ck_assert_int_eq(status_of(0), 408);
}
END_TEST

START_TEST(test_an_idle_connection_is_timed_from_its_last_answer) {
  feed("GET /?query=cat HTTP/1.1\r\nHost: x\r\n\r\n");
  int64_t answered = clock_ns;
  ck_assert_int_eq(cf_http_deadline(h), answered + TIMEOUT);
  /* Blank lines between requests are no request: they move nothing either. */
  clock_ns += SECOND / 2;
  ck_assert_uint_eq(cf_http_feed(h, "\r\n", 2), 2);
  ck_assert_int_eq(cf_http_deadline(h), answered + TIMEOUT);
  /* A request's first byte starts its own bound. */
  ck_assert_uint_eq(cf_http_feed(h, "G", 1), 1);
  ck_assert_int_eq(cf_http_deadline(h), clock_ns + TIMEOUT);
  ck_assert_uint_eq(cf_http_feed(h, "ET / HTTP/1.1\r\n\r\n", 17), 17);
  ck_assert_int_eq(status_of(1), 200);
  ck_assert_int_eq(cf_http_deadline(h), clock_ns + TIMEOUT);
  /* While the writer is backed up, the transport times the client's reading instead; when it
   * has read, its idle time starts again. */
  cf_http_pause(h, true);
  ck_assert_int_eq(cf_http_deadline(h), INT64_MAX);
  clock_ns += 5 * (int64_t)SECOND;
  cf_http_pause(h, false);
  ck_assert_int_eq(cf_http_deadline(h), clock_ns + TIMEOUT);
  clock_ns += TIMEOUT;
  cf_http_timeout(h);
  ck_assert_int_eq(responses(), 2); /* closed quietly */
  ck_assert_int_eq(sink.closed, 1);
}
END_TEST

START_TEST(test_an_upgrade_is_answered_as_a_plain_request_then_closed) {
  feed("GET /?query=cat HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
       "\x81\x85 not http");
  ck_assert_int_eq(status_of(0), 200);
  ck_assert_int_eq(responses(), 1);
  ck_assert_int_eq(sink.closed, 1);
}
END_TEST

START_TEST(test_parsing_waits_while_the_writer_is_backed_up) {
  const char *two = "GET /?query=cat HTTP/1.1\r\nHost: x\r\n\r\n"
                    "GET /?query=dog HTTP/1.1\r\nHost: x\r\n\r\n";
  size_t n = strlen(two), first = n / 2;
  cf_http_pause(h, true);
  ck_assert_uint_eq(cf_http_feed(h, two, n), 0); /* paused: nothing taken */
  ck_assert_int_eq(responses(), 0);
  /* Writable again, but the first answer fills the buffer: parsing stops right after it and the
   * second request stays with the caller. */
  cf_http_pause(h, false);
  sink.fill_up = true;
  ck_assert_uint_eq(cf_http_feed(h, two, n), first);
  ck_assert_int_eq(responses(), 1);
  sink.fill_up = false;
  cf_http_pause(h, false);
  ck_assert_uint_eq(cf_http_feed(h, two + first, n - first), n - first);
  ck_assert_int_eq(responses(), 2);
  ck_assert(strstr(response(1), "for &#39;dog&#39;") != NULL);
}
END_TEST

START_TEST(test_finishing_closes_idle_connections_now_and_busy_ones_after_their_answer) {
  feed("GET /?query=cat HTTP/1.1\r\nHost: x\r\n\r\n");
  cf_http_finish(h); /* idle between requests: closed at once */
  ck_assert_int_eq(sink.closed, 1);
  ck_assert_int_eq(responses(), 1);

  reconnect();
  feed("GET /?query=cat HTTP/1.1\r\nHo");
  cf_http_finish(h); /* a request under way: answered, with Connection: close */
  ck_assert_int_eq(sink.closed, 0);
  ck_assert_uint_eq(cf_http_feed(h, "st: x\r\n\r\n", 11), 11); /* not replayable: finishing */
  ck_assert_int_eq(status_of(0), 200);
  ck_assert(has("Connection: close\r\n"));
  ck_assert_int_eq(sink.closed, 1);
}
END_TEST

int main(void) {
  if (!scratch_begin(true)) return EXIT_FAILURE;
  Suite *suite = suite_create("charfinder http");
  TCase *tc = tcase_create("http");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_the_page_without_a_query_asks_for_words);
  tcase_add_test(tc, test_the_page_shows_rows_status_and_the_query);
  tcase_add_test(tc, test_a_big_answer_shows_200_rows_and_the_script_loads_the_rest);
  tcase_add_test(tc, test_the_api_pages_through_results_as_json);
  tcase_add_test(tc, test_user_text_is_escaped_in_the_page);
  tcase_add_test(tc, test_keep_alive_pipelining_and_pieces);
  tcase_add_test(tc, test_http_1_0_closes_after_the_answer);
  tcase_add_test(tc, test_errors_have_codes_short_bodies_and_close_when_they_must);
  tcase_add_test(tc, test_oversized_heads_and_urls_are_431_and_414);
  tcase_add_test(tc, test_a_body_over_the_limit_is_413_however_it_arrives);
  tcase_add_test(tc, test_http_versions_other_than_1_are_505);
  tcase_add_test(tc, test_expect_100_continue_is_answered_at_once);
  tcase_add_test(tc, test_expect_100_continue_is_refused_at_once_when_the_body_would_be_in_vain);
  tcase_add_test(tc, test_the_idle_timeout_is_408_mid_request_and_silent_between_requests);
  tcase_add_test(tc, test_a_head_must_arrive_within_the_timeout_from_its_first_byte);
  tcase_add_test(tc, test_a_body_must_arrive_within_the_timeout_from_the_end_of_its_head);
  tcase_add_test(tc, test_an_idle_connection_is_timed_from_its_last_answer);
  tcase_add_test(tc, test_an_upgrade_is_answered_as_a_plain_request_then_closed);
  tcase_add_test(tc, test_parsing_waits_while_the_writer_is_backed_up);
  tcase_add_test(tc, test_finishing_closes_idle_connections_now_and_busy_ones_after_their_answer);
  suite_add_tcase(suite, tc);
  return scratch_end(run_suite(suite));
}
