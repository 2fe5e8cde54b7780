/* charfinder's HTTP connection (cf_http) fed bytes directly, its responses collected from a memory
 * sink: the page, the JSON API, the script, every error code, keep-alive, pipelining, requests cut
 * into pieces, escaping, and parsing held back while the writer is backed up. */
#include "../cf_scratch.h"
#include "../run_suite.h"
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "charfinder/servers.h"

static cf_index *ix;
static struct cf_config cfg;

struct sink {
  cf_buf out;
  int closed;
  bool fill_up; /* each write fills the writer's buffer, as a slow reader makes it */
};
static struct sink sink;
static cf_http *h;

static void sink_write(void *ctx, const struct iovec *iov, int iovcnt) {
  struct sink *s = ctx;
  ck_assert_msg(!s->closed, "written after close");
  for (int i = 0; i < iovcnt; i++) cf_buf_add(&s->out, iov[i].iov_base, iov[i].iov_len);
  if (s->fill_up) cf_http_pause(h, true); /* what the transport's pause_writing does */
}
static void sink_close(void *ctx) { ((struct sink *)ctx)->closed++; }

static void setup(void) {
  char err[512];
  ix = cf_index_open(scratch_index, CF_UNICODE_DATA, NULL, err, sizeof err);
  ck_assert_msg(ix != NULL, "%s", err);
  cfg = (struct cf_config){.index = ix, .idle_timeout = 1000000000};
  sink = (struct sink){{0}, 0, false};
  h = cf_http_new(&cfg, (cf_http_sink){sink_write, sink_close, &sink}, "test");
  ck_assert_ptr_nonnull(h);
}

static void teardown(void) {
  cf_http_free(h);
  cf_buf_free(&sink.out);
  cf_index_close(ix);
}

static void feed(const char *req) {
  size_t n = strlen(req);
  ck_assert_uint_eq(cf_http_feed(h, req, n), n);
}

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
  /* A request arriving a byte at a time. */
  sink.out.len = 0;
  const char *req = "GET /?query=cat HTTP/1.1\r\nHost: x\r\n\r\n";
  for (size_t i = 0; req[i]; i++) ck_assert_uint_eq(cf_http_feed(h, req + i, 1), 1);
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

START_TEST(test_oversized_heads_and_urls_are_431_and_414) {
  cf_buf req = {0};
  cf_buf_adds(&req, "GET / HTTP/1.1\r\nHost: x\r\n");
  for (int i = 0; i < 400; i++) cf_buf_printf(&req, "X-Filler-%d: %040d\r\n", i, i);
  cf_buf_adds(&req, "\r\n");
  ck_assert_uint_eq(cf_http_feed(h, req.data, req.len), req.len);
  ck_assert_int_eq(status_of(0), 431);
  ck_assert_int_eq(sink.closed, 1);
  cf_buf_free(&req);

  cf_http_free(h);
  sink.out.len = 0;
  sink.closed = 0;
  h = cf_http_new(&cfg, (cf_http_sink){sink_write, sink_close, &sink}, "test");
  cf_buf_adds(&req, "GET /?query=");
  for (int i = 0; i < 10000; i++) cf_buf_adds(&req, "a");
  cf_buf_adds(&req, " HTTP/1.1\r\n\r\n");
  ck_assert_uint_eq(cf_http_feed(h, req.data, req.len), req.len);
  ck_assert_int_eq(status_of(0), 414);
  ck_assert_int_eq(sink.closed, 1);
  cf_buf_free(&req);
}
END_TEST

START_TEST(test_the_idle_timeout_is_408_mid_request_and_silent_between_requests) {
  feed("GET /?query=cat HTTP/1.1\r\nHo");
  ck_assert_int_eq(responses(), 0);
  cf_http_timeout(h);
  ck_assert_int_eq(status_of(0), 408);
  ck_assert_int_eq(sink.closed, 1);

  cf_http_free(h);
  sink.out.len = 0;
  sink.closed = 0;
  h = cf_http_new(&cfg, (cf_http_sink){sink_write, sink_close, &sink}, "test");
  feed("GET /?query=cat HTTP/1.1\r\nHost: x\r\n\r\n");
  cf_http_timeout(h); /* a kept-alive connection with nothing under way */
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

  cf_http_free(h);
  sink.out.len = 0;
  sink.closed = 0;
  h = cf_http_new(&cfg, (cf_http_sink){sink_write, sink_close, &sink}, "test");
  feed("GET /?query=cat HTTP/1.1\r\nHo");
  cf_http_finish(h); /* a request under way: answered, with Connection: close */
  ck_assert_int_eq(sink.closed, 0);
  feed("st: x\r\n\r\n");
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
  tcase_add_test(tc, test_the_idle_timeout_is_408_mid_request_and_silent_between_requests);
  tcase_add_test(tc, test_parsing_waits_while_the_writer_is_backed_up);
  tcase_add_test(tc, test_finishing_closes_idle_connections_now_and_busy_ones_after_their_answer);
  suite_add_tcase(suite, tc);
  return scratch_end(run_suite(suite));
}
