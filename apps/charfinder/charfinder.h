/* The charfinder library: find Unicode characters by the words of their names.
 *
 * An index built once from the Unicode Character Database (UnicodeData.txt, and SpecialCasing.txt
 * beside it for upper-casing queries as Python's str.upper does) into a compact file that is
 * mapped, not parsed, at start-up. Queries, result lines and status messages match Fluent
 * Python's charfinder byte for byte. Nothing here touches the event loop: the TCP and HTTP servers,
 * the command line and the tests all use this same code. */
#ifndef ALOOP_CHARFINDER_H
#define ALOOP_CHARFINDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* ---- a growing byte buffer (responses are built in one, then written at once) ---------------- */

typedef struct cf_buf {
  char *data;
  size_t len, cap;
  bool failed; /* an allocation failed: the contents are incomplete */
} cf_buf;

void cf_buf_add(cf_buf *b, const void *data, size_t n);
void cf_buf_adds(cf_buf *b, const char *s);
/* A string literal: its length is known when compiling. */
#define cf_buf_lit(b, literal) cf_buf_add((b), "" literal, sizeof(literal) - 1)
void cf_buf_printf(cf_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void cf_buf_add_uint(cf_buf *b, uint64_t v);
void cf_buf_add_code(cf_buf *b, uint32_t cp); /* "U+0041", "U+1F600": Python's 'U+{:04X}' */
void cf_buf_free(cf_buf *b);

/* ---- the index ------------------------------------------------------------------------------- */

typedef struct cf_index cf_index;

/* Open the index file at `path`, building it from `unicode_data` (UnicodeData.txt) first when it
 * is missing, stale (its source changed or it was built by another version) or corrupt (bad
 * checksum or structure); `log` (may be NULL) gets one line saying why it was rebuilt. The file is
 * written beside `path` and renamed into place, so concurrent starts never see half a file.
 * NULL on failure with a message in err. */
cf_index *cf_index_open(const char *path, const char *unicode_data, FILE *log, char *err,
                        size_t errlen);
/* Build the index file without opening it (what cf_index_open does when it must). 0, or -1 with
 * a message in err. */
int cf_index_build(const char *path, const char *unicode_data, char *err, size_t errlen);
void cf_index_close(cf_index *ix);

/* The default index file: $ALOOP_CHARFINDER_INDEX, else $XDG_CACHE_HOME/aloop/charfinder.index,
 * else ~/.cache/aloop/charfinder.index. Written into buf. */
const char *cf_default_index_path(char *buf, size_t cap);

size_t cf_index_size(const cf_index *ix); /* characters indexed */

/* A query's answer: `count` ids of characters in code point order. `ids` may point into the index
 * (one word) or into memory the result owns; cf_result_free releases it either way. */
typedef struct cf_result {
  const uint32_t *ids;
  size_t count;
  uint32_t *owned;
} cf_result;

/* The characters whose names have every word of `query` (UTF-8; invalid bytes separate words).
 * No words, or a word that no name has: count 0. 0, or -ENOMEM. */
int cf_find(const cf_index *ix, const char *query, size_t len, cf_result *out);
void cf_result_free(cf_result *r);
/* Python's islice(result, start, stop) as the index range [*from, *to): start < 0 means 0, stop < 0
 * the end; both clamped to the result. */
void cf_slice(const cf_result *r, long start, long stop, size_t *from, size_t *to);

uint32_t cf_codepoint(const cf_index *ix, uint32_t id);
/* The character's name as unicodedata.name gives it (NUL-terminated; at most CF_NAME_MAX bytes). */
enum { CF_NAME_MAX = 128 };
size_t cf_name(const cf_index *ix, uint32_t id, char buf[CF_NAME_MAX]);
/* "U+0039 \t9\tDIGIT NINE": code left-justified in 7 columns, TAB, the character, TAB, name. */
void cf_describe(const cf_index *ix, uint32_t id, cf_buf *out);
/* "No match for Q", "1 match for Q", "N matches for Q", Q as Python's repr() prints the str. */
void cf_status(const cf_index *ix, const char *query, size_t len, size_t count, cf_buf *out);

/* ---- text, as Python sees it ----------------------------------------------------------------- */

/* Strict UTF-8 (what bytes.decode() accepts: no overlongs, surrogates or values past U+10FFFF). */
bool cf_utf8_valid(const char *s, size_t n);
/* Decode the code point at s[0..n): its length in bytes, or 0 if the bytes there are not valid
 * UTF-8 (or end too soon). */
size_t cf_utf8_decode(const char *s, size_t n, uint32_t *cp);
size_t cf_utf8_put(uint32_t cp, char out[4]);
/* str.strip(): move *s and *n past leading and trailing whitespace (valid UTF-8 in). */
void cf_strip(const char **s, size_t *n);
bool cf_is_space(uint32_t cp);
bool cf_is_printable(const cf_index *ix, uint32_t cp); /* str.isprintable() */
/* repr(str) of valid UTF-8 appended to out. */
void cf_repr(const cf_index *ix, const char *s, size_t n, cf_buf *out);

#endif
