/* Fuzz target: any bytes as a TCP line and as a query. Nothing may crash or overflow; answers keep
 * their shape: ids in strictly increasing code point order, every output line ending in CRLF, the
 * status last, repr() quoted and valid UTF-8, strip() leaving no Python whitespace at either end. */
#include <stdlib.h>
#include <string.h>

#include "charfinder/servers.h"
#include "fuzz.h"

static void check_answer(const cf_buf *out) {
  if (!out->len) return;
  if (out->len < 2 || memcmp(out->data + out->len - 2, "\r\n", 2)) abort();
  if (!cf_utf8_valid(out->data, out->len)) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const cf_index *ix = fuzz_index();
  const char *text = (const char *)data;
  cf_buf out = {0}, query = {0};
  size_t count;
  enum cf_line_action act = cf_line_answer(ix, text, size, &out, &count, &query);
  if (act == CF_LINE_ANSWER) check_answer(&out);
  else if (out.len) abort();
  if (!cf_utf8_valid(query.data, query.len) || query.len < 2) abort();

  cf_result r;
  if (cf_find(ix, text, size, &r) == 0) {
    for (size_t i = 1; i < r.count; i++)
      if (cf_codepoint(ix, r.ids[i - 1]) >= cf_codepoint(ix, r.ids[i])) abort();
    size_t from, to;
    cf_slice(&r, size ? data[0] : -1, size > 1 ? data[1] * 10 : -1, &from, &to);
    if (from > to || to > r.count) abort();
    cf_result_free(&r);
  }
  if (cf_utf8_valid(text, size)) {
    const char *s = text;
    size_t n = size;
    cf_strip(&s, &n);
    uint32_t cp;
    if (n && cf_utf8_decode(s, n, &cp) && cf_is_space(cp)) abort();
  }
  cf_buf_free(&out);
  cf_buf_free(&query);
  return 0;
}
