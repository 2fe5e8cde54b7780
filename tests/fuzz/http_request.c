/* Fuzz target: bytes from a client into one HTTP connection (cf_http), cut into two pieces where
 * the first byte says. Nothing may crash, leak or overflow (the sanitizers watch), every response
 * must start with a status line, and nothing may be written after the connection closed. */
#include <stdlib.h>
#include <string.h>

#include "charfinder/servers.h"
#include "fuzz.h"

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
