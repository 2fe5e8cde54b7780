/* Text as Python sees it: strict UTF-8, str.strip()'s whitespace, repr() of a str; and the byte
 * buffer responses are built in. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "charfinder.h"

/* ---- cf_buf ------------------------------------------------------------------------------------ */

static bool reserve(cf_buf *b, size_t more) {
  if (b->failed) return false;
  if (b->len + more + 1 <= b->cap) return true;
  size_t cap = b->cap ? b->cap : 256;
  while (cap < b->len + more + 1) cap *= 2;
  char *p = realloc(b->data, cap);
  if (!p) {
    b->failed = true;
    return false;
  }
  b->data = p;
  b->cap = cap;
  return true;
}

void cf_buf_add(cf_buf *b, const void *data, size_t n) {
  if (!n || !reserve(b, n)) return;
  memcpy(b->data + b->len, data, n);
  b->len += n;
  b->data[b->len] = 0; /* always a C string too */
}

void cf_buf_adds(cf_buf *b, const char *s) { cf_buf_add(b, s, strlen(s)); }

void cf_buf_printf(cf_buf *b, const char *fmt, ...) {
  if (!reserve(b, 64)) return;
  va_list ap;
  va_start(ap, fmt); /* most fit in what is there: one formatting pass */
  int n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if ((size_t)n >= b->cap - b->len) {
    if (!reserve(b, (size_t)n)) return;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
  }
  b->len += (size_t)n;
}

void cf_buf_add_uint(cf_buf *b, uint64_t v) {
  char digits[24];
  size_t i = sizeof digits;
  do digits[--i] = (char)('0' + v % 10);
  while (v /= 10);
  cf_buf_add(b, digits + i, sizeof digits - i);
}

void cf_buf_add_code(cf_buf *b, uint32_t cp) {
  static const char hex[] = "0123456789ABCDEF";
  char text[10] = "U+";
  size_t n = 2;
  int digits = cp > 0xFFFFF ? 6 : cp > 0xFFFF ? 5 : 4;
  for (int d = digits - 1; d >= 0; d--) text[n++] = hex[cp >> (4 * d) & 0xF];
  cf_buf_add(b, text, n);
}

void cf_buf_free(cf_buf *b) {
  free(b->data);
  *b = (cf_buf){0};
}

/* ---- UTF-8 --------------------------------------------------------------------------------------- */

size_t cf_utf8_decode(const char *str, size_t n, uint32_t *cp) {
  const unsigned char *s = (const unsigned char *)str;
  if (!n) return 0;
  if (s[0] < 0x80) {
    *cp = s[0];
    return 1;
  }
  size_t len;
  uint32_t c, min;
  if (s[0] >= 0xC2 && s[0] <= 0xDF)
    len = 2, c = s[0] & 0x1F, min = 0x80;
  else if (s[0] >= 0xE0 && s[0] <= 0xEF)
    len = 3, c = s[0] & 0x0F, min = 0x800;
  else if (s[0] >= 0xF0 && s[0] <= 0xF4)
    len = 4, c = s[0] & 0x07, min = 0x10000;
  else
    return 0;
  if (n < len) return 0;
  for (size_t i = 1; i < len; i++) {
    if ((s[i] & 0xC0) != 0x80) return 0;
    c = c << 6 | (s[i] & 0x3F);
  }
  if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return 0;
  *cp = c;
  return len;
}

bool cf_utf8_valid(const char *s, size_t n) {
  uint32_t cp;
  for (size_t i = 0, k; i < n; i += k)
    if (!(k = cf_utf8_decode(s + i, n - i, &cp))) return false;
  return true;
}

size_t cf_utf8_put(uint32_t cp, char out[4]) {
  if (cp < 0x80) {
    out[0] = (char)cp;
    return 1;
  }
  if (cp < 0x800) {
    out[0] = (char)(0xC0 | cp >> 6);
    out[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    out[0] = (char)(0xE0 | cp >> 12);
    out[1] = (char)(0x80 | (cp >> 6 & 0x3F));
    out[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
  }
  out[0] = (char)(0xF0 | cp >> 18);
  out[1] = (char)(0x80 | (cp >> 12 & 0x3F));
  out[2] = (char)(0x80 | (cp >> 6 & 0x3F));
  out[3] = (char)(0x80 | (cp & 0x3F));
  return 4;
}

/* ---- str.strip() --------------------------------------------------------------------------------- */

/* Python's whitespace: bidirectional class WS, B or S, or category Zs. A fixed set: the Standard
 * has kept it stable for many versions. */
bool cf_is_space(uint32_t cp) {
  if (cp <= 0x20) return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20);
  return cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) ||
         cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

void cf_strip(const char **s, size_t *n) {
  uint32_t cp;
  size_t k;
  while (*n && (k = cf_utf8_decode(*s, *n, &cp)) && cf_is_space(cp)) *s += k, *n -= k;
  while (*n) { /* back up to the last character's first byte */
    size_t start = *n - 1;
    while (start && ((unsigned char)(*s)[start] & 0xC0) == 0x80) start--;
    if (!cf_utf8_decode(*s + start, *n - start, &cp) || !cf_is_space(cp)) break;
    *n = start;
  }
}

/* ---- repr() -------------------------------------------------------------------------------------- */

void cf_repr(const cf_index *ix, const char *s, size_t n, cf_buf *out) {
  bool single = memchr(s, '\'', n) != NULL, dbl = memchr(s, '"', n) != NULL;
  char quote = single && !dbl ? '"' : '\'';
  cf_buf_add(out, &quote, 1);
  uint32_t cp;
  for (size_t i = 0, k; i < n; i += k) {
    if (!(k = cf_utf8_decode(s + i, n - i, &cp))) { /* not a str: show the byte */
      cf_buf_printf(out, "\\x%02x", (unsigned char)s[i]);
      k = 1;
    } else if (cp == (uint32_t)quote || cp == '\\') {
      cf_buf_printf(out, "\\%c", (char)cp);
    } else if (cp == '\t' || cp == '\n' || cp == '\r') {
      cf_buf_adds(out, cp == '\t' ? "\\t" : cp == '\n' ? "\\n" : "\\r");
    } else if (cf_is_printable(ix, cp)) {
      cf_buf_add(out, s + i, k);
    } else {
      cf_buf_printf(out, cp < 0x100 ? "\\x%02x" : cp < 0x10000 ? "\\u%04x" : "\\U%08x",
                    (unsigned)cp);
    }
  }
  cf_buf_add(out, &quote, 1);
}
