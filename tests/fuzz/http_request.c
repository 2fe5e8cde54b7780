/* Fuzz target: bytes from a client into one HTTP connection (cf_http), cut into two pieces where
 * the first byte says. Nothing may crash, leak or overflow (the sanitizers watch), every response
 * must start with a status line, and nothing may be written after the connection closed. */
#include <stdlib.h>
#include <string.h>

#include "charfinder/servers.h"
#include "fuzz.h"

const char *const fuzz_seeds[] = {
    "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    "GET /?query=cat+face HTTP/1.1\r\nHost: x\r\n\r\n",
    "GET /?query=%3Cscript%3E&x=1 HTTP/1.1\r\nHost: x\r\n\r\n",
    "GET /api/search?query=cjk&start=100&stop=300 HTTP/1.1\r\nHost: x\r\n\r\n",
    "GET /api/search?query=digit&start=5 HTTP/1.1\r\n\r\nGET /charfinder.js HTTP/1.1\r\n\r\n",
    "HEAD /?query=chess HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    "POST /?query=a HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
    "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    "GET /?query=%e2%82%ac+%ff HTTP/1.1\r\n\r\n",
    "GET http://example.com/?query=x HTTP/1.1\r\n\r\n",
    "GET /api/search?start=99999999999&stop=-1&query HTTP/1.1\r\n\r\n",
    NULL};

struct sink {
  size_t written;
  int closed;
};

static void sink_write(void *ctx, const struct iovec *iov, int iovcnt) {
  struct sink *s = ctx;
  if (s->closed || iovcnt < 1) abort(); /* written after close, or nothing */
  if (iov[0].iov_len < 9 || memcmp(iov[0].iov_base, "HTTP/1.1 ", 9)) abort(); /* a status line */
  for (int i = 0; i < iovcnt; i++) s->written += iov[i].iov_len;
}

static void sink_close(void *ctx) { ((struct sink *)ctx)->closed++; }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static struct cf_config cfg;
  cfg.index = fuzz_index();
  cfg.idle_timeout = 1;
  struct sink s = {0, 0};
  cf_http *h = cf_http_new(&cfg, (cf_http_sink){sink_write, sink_close, &s}, "fuzz");
  if (!h) return 0;
  size_t cut = size ? data[0] % (size + 1) : 0;
  const char *text = (const char *)data;
  size_t used = cf_http_feed(h, text, cut);
  if (used > cut) abort();
  /* What a transport does: offer the rest again from where parsing stopped. */
  size_t rest = size - used;
  used = cf_http_feed(h, text + (size - rest), rest);
  if (used > rest) abort();
  if (s.closed > 1) abort();
  if (size % 3 == 0) cf_http_timeout(h);
  else cf_http_eof(h);
  cf_http_free(h);
  return 0;
}
