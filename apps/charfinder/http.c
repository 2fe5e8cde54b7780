/* The HTTP server: Fluent Python's http_charfinder.py (a page with a search form, a table of
 * results and links for sample words) on aloop transports, with Debian's libhttp-parser doing the
 * parsing. Beyond the original: everything user-supplied is HTML-escaped; the page shows the first
 * CF_PAGE_ROWS rows and a script loads more from /api/search as the user scrolls; HTTP/1.1
 * keep-alive and pipelining; a defined error for every bad request.
 *
 * cf_http (one connection's parser and responses) knows nothing of sockets: the transport glue at
 * the end feeds it bytes and gives it a sink to write to, and so can the tests and fuzz targets.
 *   a. Responses go out in request order because each is written whole from its request's
 *      message_complete callback; pipelined requests in one read are answered in one go.
 *   b. When the transport's buffer is above its high mark, parsing pauses (http_parser_pause) and
 *      the unparsed bytes wait in `pending` with reading stopped, so a client that pipelines
 *      thousands of requests and reads nothing cannot grow our memory.
 *   c. Errors that leave the request stream unreadable (bad syntax, oversized head, timeout) are
 *      answered with Connection: close and the connection closed; 404 and 405 keep it open.
 *   d. The answer depends on the bytes, never on how reads cut them: the parser is handed at most
 *      as many bytes as keep the URL, the head and the body within their limits plus one, so each
 *      limit is seen at the very byte that breaks it, before anything the parser finds later.
 *   e. Time is bounded per phase, not per byte: a connection may be idle for the timeout after
 *      its last answer, a request's head must arrive whole within the timeout from its first
 *      byte, and its body within the timeout from the end of the head. Trickling bytes in
 *      extends nothing. While our answers wait for the client to read, the transport glue
 *      watches for progress instead (a client that reads nothing for the timeout is aborted). */
#include <errno.h>
#include <http_parser.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "servers.h"

enum {
  CF_PAGE_ROWS = 200,     /* rows in the page; the rest come through the API */
  CF_API_MAX_ROWS = 1000, /* items in one API response at most */
  URL_MAX = 8 * 1024,     /* 414 beyond */
  HEAD_MAX = 16 * 1024,   /* request line and headers: 431 beyond */
  BODY_MAX = 64 * 1024,   /* 413 beyond (a GET has no business sending one) */
};

/* Where a connection is in its request stream; each phase has its own time bound (rule e). */
enum phase {
  IDLE, /* between requests (or before the first): since the last answer */
  HEAD, /* a request line and headers coming in: since its first byte */
  BODY, /* a request body coming in: since the end of the head */
};

/* Enough of the header being parsed to recognise Expect: 100-continue, however it is cut. */
enum { FIELD_KEEP = 8, VALUE_KEEP = 16 };
struct header {
  char field[FIELD_KEEP], value[VALUE_KEEP];
  size_t field_len, value_len; /* past the arrays' size: too long to be a name we look for */
  bool in_value;
};

struct cf_http {
  http_parser parser;
  const struct cf_config *cfg;
  cf_http_sink sink;
  char peer[ALOOP_SOCKADDR_STRLEN];
  char url[URL_MAX];
  size_t url_len, body_bytes;
  int error_status; /* set by a callback that stopped the parser */
  enum phase phase;
  int64_t since; /* when the current phase began (sink.now's clock) */
  struct header header;
  bool expect_continue; /* the request asked for 100 Continue before its body */
  bool any_request, paused, closing;
  bool finishing; /* shutting down: the next response is the last */
  cf_buf head, body;
};

static int64_t now(const cf_http *h) { return h->sink.now ? h->sink.now(h->sink.ctx) : 0; }

/* ---- responses ----------------------------------------------------------------------------------- */

static const struct {
  int code;
  const char *reason;
} statuses[] = {{200, "OK"},
                {400, "Bad Request"},
                {404, "Not Found"},
                {405, "Method Not Allowed"},
                {408, "Request Timeout"},
                {413, "Content Too Large"},
                {414, "URI Too Long"},
                {431, "Request Header Fields Too Large"},
                {500, "Internal Server Error"},
                {505, "HTTP Version Not Supported"}};

/* Why a request broke a limit, for the errors that stop the parser. */
static const struct {
  int code;
  const char *why;
} limit_errors[] = {{413, "a request body of more than 64 KiB"},
                    {414, "the URL is longer than 8 KiB"},
                    {431, "the request line and headers are longer than 16 KiB"},
                    {505, "only HTTP/1.x is served here"}};

static const char *limit_why(int code) {
  for (size_t i = 0; i < sizeof limit_errors / sizeof *limit_errors; i++)
    if (limit_errors[i].code == code) return limit_errors[i].why;
  return NULL;
}

static const char *reason_of(int code) {
  for (size_t i = 0; i < sizeof statuses / sizeof *statuses; i++)
    if (statuses[i].code == code) return statuses[i].reason;
  return "Error";
}

/* The Date header's value, formatted once a second. */
static const char *http_date(void) {
  static time_t cached;
  static char text[64];
  time_t now = time(NULL);
  if (now != cached) {
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(text, sizeof text, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    cached = now;
  }
  return text;
}

/* Send h->body with a status line and headers; close afterwards if asked or if the client did. */
static void send_response(cf_http *h, int code, const char *type, bool close, const char *extra) {
  if (h->body.failed) {
    code = 500, type = "text/plain; charset=UTF-8", close = true;
    cf_buf_free(&h->body);
    cf_buf_lit(&h->body, "500 Internal Server Error: out of memory\n");
  }
  close = close || h->finishing || !http_should_keep_alive(&h->parser);
  cf_buf *hd = &h->head;
  if (hd->failed) cf_buf_free(hd); /* page() uses it as scratch: a failure there must not stick */
  hd->len = 0;
  cf_buf_lit(hd, "HTTP/1.1 ");
  cf_buf_add_uint(hd, (unsigned)code);
  cf_buf_lit(hd, " ");
  cf_buf_adds(hd, reason_of(code));
  cf_buf_lit(hd, "\r\nServer: aloop-charfinder\r\nDate: ");
  cf_buf_adds(hd, http_date());
  cf_buf_lit(hd, "\r\nContent-Type: ");
  cf_buf_adds(hd, type);
  cf_buf_lit(hd, "\r\nContent-Length: ");
  cf_buf_add_uint(hd, h->body.len);
  cf_buf_lit(hd, "\r\n");
  if (extra) cf_buf_adds(hd, extra);
  cf_buf_adds(hd, close ? "Connection: close\r\n\r\n" : "\r\n");
  if (hd->failed) { /* no memory even for the head: a partial one would corrupt the stream */
    cf_buf_free(hd);
    h->body.len = 0;
    h->closing = true;
    h->sink.close(h->sink.ctx);
    return;
  }
  bool head_only = h->parser.method == HTTP_HEAD && !h->error_status;
  struct iovec iov[2] = {{h->head.data, h->head.len}, {h->body.data, h->body.len}};
  h->sink.write(h->sink.ctx, iov, head_only || !h->body.len ? 1 : 2);
  h->body.len = 0;
  if (close) {
    h->closing = true;
    h->sink.close(h->sink.ctx);
  }
}

static void send_error(cf_http *h, int code, const char *why, bool close, const char *extra) {
  h->body.len = 0;
  cf_buf_printf(&h->body, "%d %s: %s\n", code, reason_of(code), why);
  if (h->cfg->log) {
    fprintf(h->cfg->log, "http %s: %d %s\n", h->peer, code, why);
    fflush(h->cfg->log);
  }
  send_response(h, code, "text/plain; charset=UTF-8", close, extra);
}

/* ---- escaping ------------------------------------------------------------------------------------ */

static void add_html(cf_buf *out, const char *s, size_t n) {
  size_t from = 0;
  for (size_t i = 0; i < n; i++) {
    const char *rep = s[i] == '&'    ? "&amp;"
                      : s[i] == '<'  ? "&lt;"
                      : s[i] == '>'  ? "&gt;"
                      : s[i] == '"'  ? "&quot;"
                      : s[i] == '\'' ? "&#39;"
                                     : NULL;
    if (!rep) continue;
    cf_buf_add(out, s + from, i - from);
    cf_buf_adds(out, rep);
    from = i + 1;
  }
  cf_buf_add(out, s + from, n - from);
}

/* A JSON string's contents (valid UTF-8 in); U+2028/2029 escaped too, for scripts that eval. */
static void add_json(cf_buf *out, const char *s, size_t n) {
  size_t from = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    bool sep = c == 0xE2 && i + 2 < n && (unsigned char)s[i + 1] == 0x80 &&
               ((unsigned char)s[i + 2] == 0xA8 || (unsigned char)s[i + 2] == 0xA9);
    if (c >= 0x20 && c != '"' && c != '\\' && !sep) continue;
    cf_buf_add(out, s + from, i - from);
    if (c == '"' || c == '\\')
      cf_buf_printf(out, "\\%c", c);
    else if (sep)
      cf_buf_printf(out, "\\u%04x", (unsigned char)s[i + 2] == 0xA8 ? 0x2028 : 0x2029), i += 2;
    else
      cf_buf_printf(out, "\\u%04x", c);
    from = i + 1;
  }
  cf_buf_add(out, s + from, n - from);
}

/* ---- the query string ---------------------------------------------------------------------------- */

static int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* application/x-www-form-urlencoded decoding of s[0..n), in place (the result is never longer):
 * its new length, or -1 for a bad %-escape. */
static long form_decode(char *s, size_t n) {
  size_t out = 0;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (c == '+') {
      c = ' ';
    } else if (c == '%') {
      int hi = i + 2 < n ? hex_digit(s[i + 1]) : -1, lo = hi >= 0 ? hex_digit(s[i + 2]) : -1;
      if (lo < 0) return -1;
      c = (char)(hi << 4 | lo);
      i += 2;
    }
    s[out++] = c;
  }
  return (long)out;
}

struct params {
  const char *query; /* NULL: not given */
  size_t qlen;
  long start, stop; /* -1: not given */
};

static bool is(const char *key, long klen, const char *name) {
  return (size_t)klen == strlen(name) && !memcmp(key, name, (size_t)klen);
}

/* Decode the parameters we know (the first of each) in place in the query string qs, ignoring
 * others: no allocation per request. NULL, or what is wrong. */
static const char *parse_params(char *qs, size_t n, struct params *p) {
  p->start = p->stop = -1;
  for (size_t i = 0; i < n;) {
    size_t end = i;
    while (end < n && qs[end] != '&') end++;
    char *key = qs + i, *eq = memchr(key, '=', end - i);
    char *val = eq ? eq + 1 : qs + end;
    long klen = form_decode(key, eq ? (size_t)(eq - key) : end - i);
    long vlen = form_decode(val, (size_t)(qs + end - val));
    i = end + 1;
    if (klen < 0 || vlen < 0) return "bad %-escape in the query string";
    if (!cf_utf8_valid(val, (size_t)vlen)) return "a parameter is not valid UTF-8";
    if (is(key, klen, "query") && !p->query) {
      p->query = val;
      p->qlen = (size_t)vlen;
    } else if ((is(key, klen, "start") && p->start < 0) || (is(key, klen, "stop") && p->stop < 0)) {
      char digits[16] = "";
      char *e = NULL;
      if (vlen > 0 && vlen < 12) memcpy(digits, val, (size_t)vlen);
      long v = digits[0] >= '0' && digits[0] <= '9' ? strtol(digits, &e, 10) : -1;
      if (v < 0 || *e)
        return klen == 5 ? "start must be a whole number" : "stop must be a whole number";
      *(klen == 5 ? &p->start : &p->stop) = v;
    }
  }
  return NULL;
}

/* ---- pages --------------------------------------------------------------------------------------- */

static const char *const sample_words[] = {
    "bismillah", "Braille", "black",   "cat",    "chess", "circled", "digit",    "dot",
    "Ethiopic",  "face",    "hexagram", "Malayalam", "mark", "operator", "Roman", "symbol"};

static const char page_head[] =
    "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
    "<title>Charfinder</title>\n"
    "<style>body{font-family:sans-serif}th{font-size:150%;font-weight:normal;padding:0 1em}"
    "td{font-family:monospace}</style>\n</head>\n<body>\n<form action=\"/\">\n"
    "<input type=\"search\" name=\"query\" value=\"";

static const char script[] =
    "// Loads more rows of the result table from /api/search as the user scrolls to its end.\n"
    "(function () {\n"
    "  const table = document.getElementById('results');\n"
    "  const more = document.getElementById('more');\n"
    "  if (!table || !more) return;\n"
    "  const query = table.dataset.query, count = Number(table.dataset.count), page = 200;\n"
    "  let shown = Number(table.dataset.shown), loading = false;\n"
    "  async function load() {\n"
    "    if (loading || shown >= count) return;\n"
    "    loading = true;\n"
    "    try {\n"
    "      const res = await fetch('/api/search?query=' + encodeURIComponent(query) +\n"
    "                              '&start=' + shown + '&stop=' + (shown + page));\n"
    "      if (!res.ok) throw new Error('HTTP ' + res.status);\n"
    "      const data = await res.json();\n"
    "      for (const item of data.items) {\n"
    "        const row = table.insertRow();\n"
    "        row.insertCell().textContent = item.code;\n"
    "        const th = document.createElement('th');\n"
    "        th.textContent = item.char;\n"
    "        row.appendChild(th);\n"
    "        row.insertCell().textContent = item.name;\n"
    "      }\n"
    "      shown = data.items.length ? shown + data.items.length : count;\n"
    "      more.textContent = shown < count ? shown + ' of ' + count + ' shown; scroll for more.'\n"
    "                                       : 'All ' + count + ' shown.';\n"
    "    } catch (e) {\n"
    "      more.textContent = 'Could not load more rows: ' + e.message;\n"
    "      return;\n"
    "    } finally {\n"
    "      loading = false;\n"
    "    }\n"
    "    if (more.getBoundingClientRect().top < window.innerHeight) load();\n"
    "  }\n"
    "  new IntersectionObserver((entries) => {\n"
    "    if (entries.some((e) => e.isIntersecting)) load();\n"
    "  }).observe(more);\n"
    "})();\n";

static void add_row(const cf_index *ix, uint32_t id, cf_buf *out) {
  char name[CF_NAME_MAX], ch[4];
  uint32_t cp = cf_codepoint(ix, id);
  size_t nlen = cf_name(ix, id, name), clen = cf_utf8_put(cp, ch);
  cf_buf_lit(out, "<tr><td>");
  cf_buf_add_code(out, cp);
  cf_buf_lit(out, "</td><th>");
  add_html(out, ch, clen);
  cf_buf_lit(out, "</th><td>");
  cf_buf_add(out, name, nlen); /* names are A-Z, 0-9, space and hyphen */
  cf_buf_lit(out, "</td></tr>\n");
}

/* The form's tail and the sample-word links: the same on every page, made once. */
static const char *form_tail(void) {
  static cf_buf text;
  if (text.len) return text.data;
  cf_buf_lit(&text, "\" autofocus>\n<input type=\"submit\" value=\"find\">\nExamples: ");
  for (size_t i = 0; i < sizeof sample_words / sizeof *sample_words; i++)
    cf_buf_printf(&text, "%s<a href=\"/?query=%s\" title=\"find &quot;%s&quot;\">%s</a>",
                  i ? ", " : "", sample_words[i], sample_words[i], sample_words[i]);
  cf_buf_lit(&text, "\n</form>\n<p id=\"status\">");
  return text.failed ? "\">\n</form>\n<p id=\"status\">" : text.data;
}

static void page(cf_http *h, const char *q, size_t qlen) {
  const cf_index *ix = h->cfg->index;
  cf_buf *b = &h->body;
  cf_result r = {0};
  if (qlen && cf_find(ix, q, qlen, &r) < 0) b->failed = true;
  cf_buf_add(b, page_head, sizeof page_head - 1);
  add_html(b, q, qlen);
  cf_buf_adds(b, form_tail());
  if (qlen) {
    cf_buf *status = &h->head; /* free until the response is sent */
    status->len = 0;
    cf_status(ix, q, qlen, r.count, status);
    add_html(b, status->data, status->len);
    b->failed |= status->failed;
  } else {
    cf_buf_lit(b, "Enter words describing characters.");
  }
  size_t shown = r.count < CF_PAGE_ROWS ? r.count : CF_PAGE_ROWS;
  cf_buf_lit(b, "</p>\n<hr>\n<table id=\"results\" data-query=\"");
  add_html(b, q, qlen);
  cf_buf_printf(b, "\" data-count=\"%zu\" data-shown=\"%zu\">\n", r.count, shown);
  for (size_t i = 0; i < shown; i++) add_row(ix, r.ids[i], b);
  cf_buf_lit(b, "</table>\n");
  if (shown < r.count)
    cf_buf_printf(b, "<p id=\"more\">%zu of %zu shown; scroll for more.</p>\n", shown, r.count);
  cf_buf_lit(b, "<script src=\"/charfinder.js\"></script>\n</body>\n</html>\n");
  if (h->cfg->log) {
    cf_buf rq = {0};
    cf_repr(ix, q, qlen, &rq);
    fprintf(h->cfg->log, "http %s: page %s, %zu result%s\n", h->peer, rq.data ? rq.data : "''",
            r.count, r.count == 1 ? "" : "s");
    fflush(h->cfg->log);
    cf_buf_free(&rq);
  }
  cf_result_free(&r);
  send_response(h, 200, "text/html; charset=UTF-8", false, NULL);
}

static void api_search(cf_http *h, const char *q, size_t qlen, long start, long stop) {
  const cf_index *ix = h->cfg->index;
  cf_buf *b = &h->body;
  cf_result r = {0};
  if (qlen && cf_find(ix, q, qlen, &r) < 0) b->failed = true;
  if (start < 0) start = 0;
  if (stop < 0) stop = start + CF_PAGE_ROWS;
  if (stop > start + CF_API_MAX_ROWS) stop = start + CF_API_MAX_ROWS;
  size_t from, to;
  cf_slice(&r, start, stop, &from, &to);
  cf_buf_lit(b, "{\"query\":\"");
  add_json(b, q, qlen);
  cf_buf_printf(b, "\",\"count\":%zu,\"start\":%zu,\"stop\":%zu,\"items\":[", r.count, from, to);
  for (size_t i = from; i < to; i++) {
    char name[CF_NAME_MAX], ch[4];
    uint32_t cp = cf_codepoint(ix, r.ids[i]);
    size_t nlen = cf_name(ix, r.ids[i], name), clen = cf_utf8_put(cp, ch);
    cf_buf_adds(b, i > from ? ",{\"code\":\"" : "{\"code\":\"");
    cf_buf_add_code(b, cp);
    cf_buf_lit(b, "\",\"char\":\"");
    add_json(b, ch, clen);
    cf_buf_lit(b, "\",\"name\":\"");
    cf_buf_add(b, name, nlen);
    cf_buf_lit(b, "\"}");
  }
  cf_buf_lit(b, "]}\n");
  if (h->cfg->log) {
    cf_buf rq = {0};
    cf_repr(ix, q, qlen, &rq);
    fprintf(h->cfg->log, "http %s: api %s [%zu:%zu], %zu result%s\n", h->peer,
            rq.data ? rq.data : "''", from, to, r.count, r.count == 1 ? "" : "s");
    fflush(h->cfg->log);
    cf_buf_free(&rq);
  }
  cf_result_free(&r);
  send_response(h, 200, "application/json", false, NULL);
}

static bool path_is(const char *path, size_t n, const char *want) {
  return n == strlen(want) && !memcmp(path, want, n);
}

/* What a request's method and target ask for: one of our resources, or the error that refuses it
 * (known once the head is in, so a request that asked to be told before sending its body can be
 * refused at once). */
enum resource { R_REFUSED, R_PAGE, R_API, R_SCRIPT };
struct route {
  enum resource resource;
  int code; /* R_REFUSED: the status, why it is refused, an extra header, whether to close */
  const char *why, *extra;
  bool close;
  struct http_parser_url u;
};

static void route(cf_http *h, struct route *r) {
  *r = (struct route){.resource = R_REFUSED};
  if (h->parser.method != HTTP_GET && h->parser.method != HTTP_HEAD) {
    r->code = 405, r->why = "only GET and HEAD are served here", r->extra = "Allow: GET, HEAD\r\n";
    return;
  }
  http_parser_url_init(&r->u);
  if (http_parser_parse_url(h->url, h->url_len, 0, &r->u) != 0 ||
      !(r->u.field_set & (1 << UF_PATH))) {
    r->code = 400, r->why = "the request target is not a URL path", r->close = true;
    return;
  }
  const char *path = h->url + r->u.field_data[UF_PATH].off;
  size_t plen = r->u.field_data[UF_PATH].len;
  if (path_is(path, plen, "/charfinder.js"))
    r->resource = R_SCRIPT;
  else if (path_is(path, plen, "/"))
    r->resource = R_PAGE;
  else if (path_is(path, plen, "/api/search"))
    r->resource = R_API;
  else
    r->code = 404, r->why = "no such page; try / or /api/search?query=WORDS";
}

/* A whole request has arrived: answer it. */
static void respond(cf_http *h) {
  struct route r;
  route(h, &r);
  if (r.resource == R_REFUSED) {
    send_error(h, r.code, r.why, r.close, r.extra);
    return;
  }
  if (r.resource == R_SCRIPT) {
    cf_buf_add(&h->body, script, sizeof script - 1);
    send_response(h, 200, "text/javascript; charset=UTF-8", false,
                  "Cache-Control: max-age=3600\r\n");
    return;
  }
  struct params p = {0};
  const char *bad = r.u.field_set & (1 << UF_QUERY)
                        ? parse_params(h->url + r.u.field_data[UF_QUERY].off,
                                       r.u.field_data[UF_QUERY].len, &p)
                        : NULL;
  if (bad) {
    send_error(h, 400, bad, false, NULL);
    return;
  }
  const char *q = p.query ? p.query : "";
  size_t qlen = p.qlen;
  cf_strip(&q, &qlen);
  if (r.resource == R_PAGE)
    page(h, q, qlen);
  else
    api_search(h, q, qlen, p.start, p.stop);
}

/* ---- the parser's callbacks ---------------------------------------------------------------------- */

static void enter(cf_http *h, enum phase phase) {
  h->phase = phase;
  h->since = now(h);
}

static int on_message_begin(http_parser *p) {
  cf_http *h = p->data;
  h->url_len = h->body_bytes = 0;
  h->header = (struct header){0};
  h->expect_continue = false;
  h->any_request = true;
  enter(h, HEAD);
  return 0;
}

static int on_url(http_parser *p, const char *at, size_t n) {
  cf_http *h = p->data;
  if (n > URL_MAX - h->url_len) {
    h->error_status = 414;
    return -1;
  }
  if (n) memcpy(h->url + h->url_len, at, n);
  h->url_len += n;
  return 0;
}

/* Append a piece of a header's name or value to what is kept of it; past cap, *len is cap + 1
 * for good (only short names and values are looked for). */
static void keep(char *dst, size_t cap, size_t *len, const char *at, size_t n) {
  if (*len <= cap && n <= cap - *len) {
    if (n) memcpy(dst + *len, at, n);
    *len += n;
  } else {
    *len = cap + 1;
  }
}

static bool same_word(const char *s, size_t n, const char *word) {
  if (n != strlen(word)) return false;
  for (size_t i = 0; i < n; i++)
    if ((s[i] | 0x20) != word[i]) return false; /* word is lower case letters, digits and '-' */
  return true;
}

/* A header is complete: note the one we act on. */
static void header_done(cf_http *h) {
  struct header *hd = &h->header;
  size_t vlen = hd->value_len;
  while (vlen && vlen <= VALUE_KEEP && (hd->value[vlen - 1] == ' ' || hd->value[vlen - 1] == '\t'))
    vlen--;
  if (hd->field_len <= FIELD_KEEP && same_word(hd->field, hd->field_len, "expect") &&
      vlen <= VALUE_KEEP && same_word(hd->value, vlen, "100-continue"))
    h->expect_continue = true;
  hd->field_len = hd->value_len = 0;
  hd->in_value = false;
}

static int on_header_field(http_parser *p, const char *at, size_t n) {
  cf_http *h = p->data;
  if (h->header.in_value) header_done(h);
  keep(h->header.field, FIELD_KEEP, &h->header.field_len, at, n);
  return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t n) {
  cf_http *h = p->data;
  h->header.in_value = true;
  keep(h->header.value, VALUE_KEEP, &h->header.value_len, at, n);
  return 0;
}

static bool has_body(const http_parser *p) {
  return (p->flags & F_CHUNKED) || (p->content_length > 0 && p->content_length != ULLONG_MAX);
}

/* The head is in: refuse now what will be refused anyway (and whose body we will not read), or
 * tell a client that waits for it to send its body. */
static int on_headers_complete(http_parser *p) {
  cf_http *h = p->data;
  if (h->header.in_value) header_done(h);
  enter(h, BODY);
  if (p->http_major != 1) {
    h->error_status = 505;
    return -1;
  }
  if ((p->flags & F_CONTENTLENGTH) && p->content_length > BODY_MAX) {
    h->error_status = 413;
    return -1;
  }
  /* HTTP/1.0 clients know nothing of 100 Continue (RFC 9110 10.1.1: ignore the expectation);
   * a request without a body has nothing to wait for. */
  if (!h->expect_continue || p->http_minor == 0 || !has_body(p)) return 0;
  struct route r;
  route(h, &r);
  if (r.resource == R_REFUSED) { /* its body is not read: the connection ends after the answer */
    send_error(h, r.code, r.why, true, r.extra);
    return -1;
  }
  static const char go_on[] = "HTTP/1.1 100 Continue\r\n\r\n";
  struct iovec iov = {(void *)go_on, sizeof go_on - 1};
  h->sink.write(h->sink.ctx, &iov, 1);
  return 0;
}

static int on_body(http_parser *p, const char *at, size_t n) {
  cf_http *h = p->data;
  (void)at;
  if ((h->body_bytes += n) > BODY_MAX) {
    h->error_status = 413;
    return -1;
  }
  return 0;
}

static int on_message_complete(http_parser *p) {
  cf_http *h = p->data;
  respond(h);
  h->url_len = 0; /* the next request's URL starts empty (rule d counts from here) */
  enter(h, IDLE);
  if (h->closing) return -1; /* stop here: nothing after this request will be answered */
  if (h->paused) http_parser_pause(p, 1);
  return 0;
}

static const http_parser_settings settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* ---- one connection ------------------------------------------------------------------------------ */

cf_http *cf_http_new(const struct cf_config *cfg, cf_http_sink sink, const char *peer) {
  cf_http *h = calloc(1, sizeof *h);
  if (!h) return NULL;
  http_parser_init(&h->parser, HTTP_REQUEST);
  h->parser.data = h;
  h->cfg = cfg;
  h->sink = sink;
  snprintf(h->peer, sizeof h->peer, "%s", peer ? peer : "?");
  enter(h, IDLE);
  return h;
}

/* The parser stopped on an error: answer it (a limit's own code, else 400) and close. */
static void parse_error(cf_http *h) {
  enum http_errno e = HTTP_PARSER_ERRNO(&h->parser);
  int code = h->error_status ? h->error_status : e == HPE_HEADER_OVERFLOW ? 431 : 400;
  const char *why = limit_why(code);
  h->error_status = code;
  send_error(h, code, why ? why : http_errno_description(e), true, NULL);
}

static size_t min_size(size_t a, size_t b) { return a < b ? a : b; }

/* How many of n bytes the parser may have in one go (rule d): the URL and the body may reach
 * their limit plus one, which their callbacks refuse, only at the last byte handed over; the head
 * may reach its limit only there, and is refused before the byte after it. The parser counts the
 * head in nread, one per byte, from the end of the previous head. */
static size_t step_size(const cf_http *h, size_t n) {
  size_t step = min_size(n, HEAD_MAX - h->parser.nread);
  step = min_size(step, URL_MAX + 1 - h->url_len);
  if (h->phase == BODY) step = min_size(step, BODY_MAX + 1 - h->body_bytes);
  return step;
}

size_t cf_http_feed(cf_http *h, const char *data, size_t n) {
  if (h->closing) return n; /* what follows a closing response is not read */
  size_t done = 0;
  while (done < n && !h->paused) {
    if (HTTP_PARSER_ERRNO(&h->parser) == HPE_PAUSED) http_parser_pause(&h->parser, 0);
    if (h->parser.nread >= HEAD_MAX) { /* a head at its limit and not done: one byte more is over */
      h->error_status = 431;
      parse_error(h);
      return n;
    }
    size_t step = step_size(h, n - done); /* >= 1: every count is within its limit here */
    done += http_parser_execute(&h->parser, &settings, data + done, step);
    if (h->closing) return n;
    enum http_errno e = HTTP_PARSER_ERRNO(&h->parser);
    if (e == HPE_PAUSED) return done;
    if (e != HPE_OK || h->error_status) {
      parse_error(h);
      return n;
    }
    if (h->parser.upgrade && h->phase == IDLE) { /* answered; we speak nothing else: close */
      h->closing = true;
      h->sink.close(h->sink.ctx);
      return n;
    }
  }
  return done;
}

void cf_http_eof(cf_http *h) {
  if (h->closing) return;
  h->closing = true;
  h->sink.close(h->sink.ctx); /* a request cut short gets no answer: nobody would read it */
}

int64_t cf_http_deadline(const cf_http *h) {
  if (h->closing || h->paused) return INT64_MAX;
  int64_t t = h->cfg->timeout;
  return h->since > INT64_MAX - t ? INT64_MAX : h->since + t;
}

void cf_http_timeout(cf_http *h) {
  if (h->closing) return;
  if (h->phase != IDLE || !h->any_request) {
    h->error_status = 408;
    send_error(h, 408, "no complete request in time", true, NULL);
  } else { /* idle between requests: close quietly, as a client expects a keep-alive to end */
    h->closing = true;
    h->sink.close(h->sink.ctx);
  }
}

void cf_http_pause(cf_http *h, bool paused) {
  if (h->paused && !paused) h->since = now(h); /* the client read: its time starts again */
  h->paused = paused;
}

void cf_http_finish(cf_http *h) {
  h->finishing = true;
  if (h->closing || h->phase != IDLE) return; /* the answer under way closes it */
  h->closing = true;
  h->sink.close(h->sink.ctx);
}

const char *cf_http_peer(const cf_http *h) { return h->peer; }

void cf_http_free(cf_http *h) {
  if (!h) return;
  cf_buf_free(&h->head);
  cf_buf_free(&h->body);
  free(h);
}

/* ---- on an aloop transport ----------------------------------------------------------------------- */

/* One timer per connection, armed for the earliest of two bounds and re-checked when it fires (so
 * bytes arriving cost a comparison, never a timer operation): cf_http's deadline for the request
 * stream (rule e), and the writer's. The writer is stuck when bytes wait in the transport and
 * none of them left for the timeout: the client reads nothing, so no answer can reach it, and it
 * is aborted (closing would wait for a flush that never comes). */
struct cf_http_conn {
  struct cf_http_conn *prev, *next; /* in cfg->http_conns */
  aloop_transport *t;
  cf_http *http;
  aloop_loop *loop;
  struct cf_config *cfg;
  aloop_handle timer;
  int64_t timer_at;      /* when the armed timer fires */
  int64_t stuck_since;   /* 0: nothing waits in the writer; else when it last went down */
  size_t stuck_queued;   /* what waited then, plus what was written since */
  cf_buf pending;        /* bytes received while parsing was paused (rule b) */
  bool eof;
};

static int64_t conn_now(void *ctx) {
  struct cf_http_conn *c = ctx;
  return aloop_time(c->loop);
}

static int64_t stuck_deadline(const struct cf_http_conn *c) {
  return c->stuck_since ? c->stuck_since + c->cfg->timeout : INT64_MAX;
}

static void on_timer(aloop_loop *loop, void *arg);

/* Make sure the timer fires no later than the earliest bound. */
static void arm(struct cf_http_conn *c) {
  int64_t due = cf_http_deadline(c->http), stuck = stuck_deadline(c);
  if (stuck < due) due = stuck;
  if (due == INT64_MAX || (c->timer.h && c->timer_at <= due)) return;
  if (c->timer.h) aloop_cancel(c->loop, c->timer);
  c->timer = (aloop_handle){0};
  c->timer_at = due;
  if (aloop_call_at(c->loop, due, on_timer, c, &c->timer) < 0)
    aloop_transport_fail(c->t, -ENOMEM, "no memory for the connection's timer");
}

/* Whether the writer made no progress for the timeout; notes progress as it goes. */
static bool writer_stuck(struct cf_http_conn *c, int64_t now) {
  size_t queued = aloop_transport_get_write_buffer_size(c->t);
  if (!queued) {
    c->stuck_since = 0;
    return false;
  }
  if (!c->stuck_since || queued < c->stuck_queued) {
    c->stuck_since = now;
    c->stuck_queued = queued;
    return false;
  }
  return now >= stuck_deadline(c);
}

static void on_timer(aloop_loop *loop, void *arg) {
  struct cf_http_conn *c = arg;
  int64_t now = aloop_time(loop);
  c->timer = (aloop_handle){0};
  if (writer_stuck(c, now)) {
    if (c->cfg->log) {
      fprintf(c->cfg->log, "http %s: answers not read for %.3g s, aborted\n",
              cf_http_peer(c->http), (double)c->cfg->timeout / 1e9);
      fflush(c->cfg->log);
    }
    aloop_transport_abort(c->t);
    return;
  }
  if (now >= cf_http_deadline(c->http)) cf_http_timeout(c->http);
  arm(c);
}

static void sink_write(void *ctx, const struct iovec *iov, int iovcnt) {
  struct cf_http_conn *c = ctx;
  size_t before = aloop_transport_get_write_buffer_size(c->t);
  aloop_transport_writev(c->t, iov, iovcnt);
  size_t after = aloop_transport_get_write_buffer_size(c->t);
  if (after > before && c->stuck_since) {
    c->stuck_queued += after - before; /* new bytes are not progress */
  } else if (after && !c->stuck_since) {
    c->stuck_since = aloop_time(c->loop);
    c->stuck_queued = after;
  }
  arm(c);
}

static void sink_close(void *ctx) {
  struct cf_http_conn *c = ctx;
  aloop_transport_close(c->t);
}

static void connection_made(aloop_transport *t, void *ctx) {
  struct cf_http_conn *c = ctx;
  c->t = t;
  c->loop = aloop_transport_loop(t);
  aloop_sockaddr addr;
  char peer[ALOOP_SOCKADDR_STRLEN] = "?";
  if (aloop_transport_peername(t, &addr) == 0) aloop_sockaddr_str(&addr, peer, sizeof peer);
  c->http = cf_http_new(c->cfg, (cf_http_sink){sink_write, sink_close, c, conn_now}, peer);
  if (!c->http) {
    aloop_transport_fail(t, -ENOMEM, "no memory for an HTTP connection");
    return;
  }
  if ((c->next = c->cfg->http_conns)) c->next->prev = c;
  c->cfg->http_conns = c;
  arm(c);
}

/* Parse what waits in pending; once it is all parsed, read again (and close after an EOF). */
static void drain_pending(struct cf_http_conn *c) {
  size_t used = c->pending.len ? cf_http_feed(c->http, c->pending.data, c->pending.len) : 0;
  if (used < c->pending.len) /* never with an empty buffer: its data may be NULL */
    memmove(c->pending.data, c->pending.data + used, c->pending.len - used);
  c->pending.len -= used;
  if (c->pending.len) return;
  if (c->eof)
    cf_http_eof(c->http);
  else
    aloop_transport_resume_reading(c->t);
}

static void data_received(aloop_transport *t, const void *data, size_t n, void *ctx) {
  struct cf_http_conn *c = ctx;
  if (!c->http) return;
  size_t used = c->pending.len ? 0 : cf_http_feed(c->http, data, n);
  if (used < n) { /* parsing paused: keep the rest, read no more until it is parsed */
    cf_buf_add(&c->pending, (const char *)data + used, n - used);
    aloop_transport_pause_reading(t);
    if (c->pending.failed) aloop_transport_fail(t, -ENOMEM, "no memory for pipelined requests");
  }
  arm(c);
}

static bool eof_received(aloop_transport *t, void *ctx) {
  struct cf_http_conn *c = ctx;
  (void)t;
  if (c->pending.len) { /* answer what was sent before the end first */
    c->eof = true;
    return true;
  }
  if (c->http) cf_http_eof(c->http);
  return true; /* the close above flushes our answers first */
}

static void pause_writing(aloop_transport *t, void *ctx) {
  struct cf_http_conn *c = ctx;
  (void)t;
  if (!c->http) return;
  cf_http_pause(c->http, true);
  arm(c);
}

static void resume_writing(aloop_transport *t, void *ctx) {
  struct cf_http_conn *c = ctx;
  (void)t;
  if (!c->http) return;
  cf_http_pause(c->http, false);
  if (c->pending.len) drain_pending(c);
  arm(c);
}

static void connection_lost(aloop_transport *t, int err, void *ctx) {
  struct cf_http_conn *c = ctx;
  (void)t, (void)err;
  if (c->timer.h) aloop_cancel(c->loop, c->timer);
  if (c->http) { /* linked once connection_made had its cf_http */
    if (c->prev)
      c->prev->next = c->next;
    else
      c->cfg->http_conns = c->next;
    if (c->next) c->next->prev = c->prev;
  }
  cf_http_free(c->http);
  cf_buf_free(&c->pending);
  free(c);
}

static const aloop_protocol http_protocol = {
    .connection_made = connection_made,
    .data_received = data_received,
    .eof_received = eof_received,
    .connection_lost = connection_lost,
    .pause_writing = pause_writing,
    .resume_writing = resume_writing,
};

static void *new_conn(void *arg) {
  struct cf_http_conn *c = calloc(1, sizeof *c);
  if (c) c->cfg = arg;
  return c;
}

aloop_future *cf_http_serve(aloop_loop *loop, struct cf_config *cfg, const char *host, int port) {
  aloop_server_options opts = {.size = sizeof opts, .max_connections = cfg->max_connections,
                               .tls = cfg->tls};
  return aloop_create_server(loop, &http_protocol, new_conn, cfg, host, port, &opts);
}

void cf_http_finish_all(struct cf_config *cfg) {
  for (struct cf_http_conn *c = cfg->http_conns, *next; c; c = next) {
    next = c->next; /* a close may unlink c, later, not now: closes complete on the loop */
    if (c->pending.len) /* requests still to parse: answer the one under way, then close */
      c->http->finishing = true;
    else
      cf_http_finish(c->http);
  }
}
