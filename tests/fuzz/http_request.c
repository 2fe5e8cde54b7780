/* Fuzz target: bytes from a client into one HTTP connection (cf_http), cut into two pieces where
 * the first byte says, and the same bytes whole into another. Nothing may crash, leak or overflow
 * (the sanitizers watch), every response must start with a status line, nothing may be written
 * after the connection closed, and both connections must write the same bytes (Date headers
 * aside) and close alike: the answer may not depend on how the bytes arrived. */
#include <stdlib.h>
#include <string.h>

#include "charfinder/servers.h"
#include "fuzz.h"

struct sink {
  cf_buf out; /* what was written, without Date headers */
  int closed;
};

/* Append a response head without its Date line (it follows the wall clock). */
static void add_without_date(cf_buf *out, const char *s, size_t n) {
  const char *date = n > 6 ? memmem(s, n, "\r\nDate: ", 8) : NULL;
  const char *end = date ? memchr(date + 2, '\n', n - (size_t)(date + 2 - s)) : NULL;
  if (!end) {
    cf_buf_add(out, s, n);
    return;
  }
  cf_buf_add(out, s, (size_t)(date - s));
  cf_buf_add(out, end - 1, n - (size_t)(end - 1 - s)); /* from the "\r\n" that ended it */
}

static void sink_write(void *ctx, const struct iovec *iov, int iovcnt) {
  struct sink *s = ctx;
  if (s->closed || iovcnt < 1) abort(); /* written after close, or nothing */
  if (iov[0].iov_len < 9 || memcmp(iov[0].iov_base, "HTTP/1.1 ", 9)) abort(); /* a status line */
  add_without_date(&s->out, iov[0].iov_base, iov[0].iov_len);
  for (int i = 1; i < iovcnt; i++) cf_buf_add(&s->out, iov[i].iov_base, iov[i].iov_len);
}

static void sink_close(void *ctx) { ((struct sink *)ctx)->closed++; }

static int64_t sink_now(void *ctx) {
  (void)ctx;
  return 0;
}

/* Feed text in two pieces (cut at `cut`), as a transport does: the rest offered again from
 * where parsing stopped. Then the end of the stream, or a timeout. */
static void run(cf_http *h, const char *text, size_t size, size_t cut, bool timeout) {
  size_t used = cf_http_feed(h, text, cut);
  if (used > cut) abort();
  size_t rest = size - used;
  used = cf_http_feed(h, text + (size - rest), rest);
  if (used > rest) abort();
  if (timeout)
    cf_http_timeout(h);
  else
    cf_http_eof(h);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static struct cf_config cfg;
  cfg.index = fuzz_index();
  cfg.timeout = 1;
  struct sink cut = {{0}, 0}, whole = {{0}, 0};
  cf_http *a = cf_http_new(&cfg, (cf_http_sink){sink_write, sink_close, &cut, sink_now}, "fuzz");
  cf_http *b = cf_http_new(&cfg, (cf_http_sink){sink_write, sink_close, &whole, sink_now}, "fuzz");
  if (a && b) {
    const char *text = (const char *)data;
    run(a, text, size, size ? data[0] % (size + 1) : 0, size % 3 == 0);
    run(b, text, size, size, size % 3 == 0);
    if (cut.closed > 1 || whole.closed != cut.closed || cut.out.len != whole.out.len ||
        (cut.out.len && memcmp(cut.out.data, whole.out.data, cut.out.len)))
      abort();
  }
  cf_http_free(a);
  cf_http_free(b);
  cf_buf_free(&cut.out);
  cf_buf_free(&whole.out);
  return 0;
}
