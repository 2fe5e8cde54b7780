/* Reading the index file (format.h): map it, check it, answer queries from it in place. Start-up
 * costs one mmap, one pass for the checksum and a bounds check of every table: no parsing, no
 * allocation proportional to the data. A query allocates only when it has several words. */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "format.h"

struct cf_index {
  const unsigned char *map;
  size_t size;
  const struct cf_header *h;
  const struct cf_char *chars;
  const struct cf_word *words;
  const uint32_t *postings;
  const struct cf_range *props;
  const struct cf_upper *upper;
  const char *strings;
};

uint64_t cf_checksum(const void *data, size_t n) {
  const unsigned char *p = data;
  uint64_t h = 0x9E3779B97F4A7C15u ^ n;
  for (; n >= 8; p += 8, n -= 8) {
    uint64_t w;
    memcpy(&w, p, 8);
    h = (h ^ w) * 0xFF51AFD7ED558CCDu;
    h ^= h >> 32;
  }
  for (; n; p++, n--) h = (h ^ *p) * 0x100000001B3u;
  return h;
}

static bool table_fits(const struct cf_header *h, uint32_t off, uint64_t count, size_t size) {
  return off >= sizeof *h && off % 4 == 0 && off <= h->file_size &&
         count <= (h->file_size - off) / size;
}

/* Everything a reader relies on, so a damaged file is rebuilt instead of read out of bounds.
 * NULL when sound, else what is wrong. */
static const char *check_structure(const cf_index *ix) {
  const struct cf_header *h = ix->h;
  if (!table_fits(h, h->off_chars, h->nchars, sizeof *ix->chars) ||
      !table_fits(h, h->off_words, h->nwords, sizeof *ix->words) ||
      !table_fits(h, h->off_postings, h->npostings, sizeof *ix->postings) ||
      !table_fits(h, h->off_props, h->nprops, sizeof *ix->props) ||
      !table_fits(h, h->off_upper, h->nupper, sizeof *ix->upper) ||
      !table_fits(h, h->off_strings, h->strings_size, 1) || !h->strings_size ||
      ix->strings[h->strings_size - 1] != 0)
    return "a table lies outside the file";
  for (uint32_t i = 0; i < h->nchars; i++)
    if ((ix->chars[i].name & ~CF_HEX_TAIL) >= h->strings_size ||
        (i && ix->chars[i].cp <= ix->chars[i - 1].cp))
      return "a character record is out of range or order";
  for (uint32_t i = 0; i < h->nwords; i++) {
    const struct cf_word *w = &ix->words[i];
    if (w->text >= h->strings_size || w->first > h->npostings ||
        w->count > h->npostings - w->first ||
        (i && strcmp(ix->strings + ix->words[i - 1].text, ix->strings + w->text) >= 0))
      return "a word record is out of range or order";
  }
  for (uint32_t i = 0; i < h->npostings; i++)
    if (ix->postings[i] >= h->nchars) return "a posting names no character";
  return NULL;
}

/* NULL when the file at map can be used with this source, else why not. */
static const char *check(cf_index *ix, const char *unicode_data) {
  const struct cf_header *h = ix->h;
  if (ix->size < sizeof *h || memcmp(h->magic, CF_MAGIC, sizeof h->magic))
    return "it is not an index file";
  if (h->version != CF_FORMAT_VERSION || h->byte_order != CF_BYTE_ORDER)
    return "it was written by another version";
  if (h->file_size != ix->size) return "it is truncated";
  struct stat st;
  char special[4096];
  if (unicode_data && stat(unicode_data, &st) == 0) { /* without the source, use what we have */
    if ((uint64_t)st.st_size != h->source_size || (int64_t)st.st_mtime != h->source_mtime)
      return "its source changed";
    cf_sibling(unicode_data, "SpecialCasing.txt", special, sizeof special);
    bool there = stat(special, &st) == 0;
    if (there ? (uint64_t)st.st_size != h->special_size || (int64_t)st.st_mtime != h->special_mtime
              : h->special_size != 0)
      return "its source changed (SpecialCasing.txt)";
  }
  if (cf_checksum(ix->map + sizeof *h, ix->size - sizeof *h) != h->checksum)
    return "its checksum does not match";
  ix->chars = (const void *)(ix->map + h->off_chars);
  ix->words = (const void *)(ix->map + h->off_words);
  ix->postings = (const void *)(ix->map + h->off_postings);
  ix->props = (const void *)(ix->map + h->off_props);
  ix->upper = (const void *)(ix->map + h->off_upper);
  ix->strings = (const char *)(ix->map + h->off_strings);
  return check_structure(ix);
}

/* Map path; 0, or -1 with errno (ENOENT: no file yet). */
static int map_file(cf_index *ix, const char *path) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  struct stat st;
  void *map = MAP_FAILED;
  if (fstat(fd, &st) == 0 && st.st_size > 0)
    map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED | MAP_POPULATE, fd, 0);
  int saved = errno;
  close(fd);
  if (map == MAP_FAILED) {
    errno = st.st_size == 0 ? EINVAL : saved;
    return -1;
  }
  ix->map = map;
  ix->size = (size_t)st.st_size;
  ix->h = map;
  return 0;
}

cf_index *cf_index_open(const char *path, const char *unicode_data, FILE *log, char *err,
                        size_t errlen) {
  cf_index *ix = calloc(1, sizeof *ix);
  if (!ix) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  for (int attempt = 0; attempt < 2; attempt++) {
    const char *why = map_file(ix, path) < 0 ? (errno == ENOENT ? "it does not exist" : NULL)
                                              : check(ix, unicode_data);
    if (!why && ix->map) return ix;
    if (!why) why = strerror(errno);
    if (ix->map) munmap((void *)ix->map, ix->size);
    ix->map = NULL;
    if (attempt == 1) {
      snprintf(err, errlen, "%s: just built, yet %s", path, why);
      break;
    }
    if (log) fprintf(log, "charfinder: building the index %s (%s) from %s\n", path, why,
                     unicode_data);
    if (cf_index_build(path, unicode_data, err, errlen) < 0) break;
  }
  free(ix);
  return NULL;
}

void cf_index_close(cf_index *ix) {
  if (!ix) return;
  munmap((void *)ix->map, ix->size);
  free(ix);
}

const char *cf_default_index_path(char *buf, size_t cap) {
  const char *env = getenv("ALOOP_CHARFINDER_INDEX"), *cache = getenv("XDG_CACHE_HOME");
  const char *home = getenv("HOME");
  if (env && *env)
    snprintf(buf, cap, "%s", env);
  else if (cache && *cache)
    snprintf(buf, cap, "%s/aloop/charfinder.index", cache);
  else
    snprintf(buf, cap, "%s/.cache/aloop/charfinder.index", home && *home ? home : "/tmp");
  return buf;
}

size_t cf_index_size(const cf_index *ix) { return ix->h->nchars; }

/* ---- classes of code points -------------------------------------------------------------------- */

/* The first of n records (stride bytes apart) in [lo, n) whose 32-bit field at `offset` is >= key;
 * the records are sorted by that field. Every search of the index's tables is this one. */
static size_t lower_bound(const void *records, size_t stride, size_t offset, size_t lo, size_t n,
                          uint32_t key) {
  const unsigned char *base = (const unsigned char *)records + offset;
  size_t hi = n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    uint32_t v;
    memcpy(&v, base + mid * stride, sizeof v);
    if (v < key)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

static uint32_t class_of(const cf_index *ix, uint32_t cp) {
  size_t i = lower_bound(ix->props, sizeof *ix->props, offsetof(struct cf_range, last), 0,
                         ix->h->nprops, cp);
  return i < ix->h->nprops && ix->props[i].first <= cp ? ix->props[i].flags : 0;
}

bool cf_is_printable(const cf_index *ix, uint32_t cp) {
  if (cp < 0x7F) return cp >= 0x20;
  return class_of(ix, cp) & CF_PRINTABLE;
}

static bool is_word_char(const cf_index *ix, uint32_t cp) {
  if (cp < 0x80)
    return (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') || (cp >= '0' && cp <= '9') ||
           cp == '_';
  return class_of(ix, cp) & CF_WORD_CHAR;
}

/* Append str.upper() of cp as UTF-8 to word; false when it would not fit. */
static bool put_upper(const cf_index *ix, uint32_t cp, char *word, size_t *len) {
  uint32_t to[3] = {cp, 0, 0};
  if (cp >= 'a' && cp <= 'z') {
    to[0] = cp - 32;
  } else if (cp >= 0x80) {
    size_t i = lower_bound(ix->upper, sizeof *ix->upper, offsetof(struct cf_upper, cp), 0,
                           ix->h->nupper, cp);
    if (i < ix->h->nupper && ix->upper[i].cp == cp) memcpy(to, ix->upper[i].to, sizeof to);
  }
  for (int k = 0; k < 3 && to[k]; k++) {
    if (*len + 4 > CF_WORD_MAX) return false;
    *len += cf_utf8_put(to[k], word + *len);
  }
  return true;
}

/* The next word of s[*pos..n), upper-cased into word (NUL-terminated): its length, 0 at the end,
 * or CF_WORD_MAX when it is too long to be any name's word. Invalid UTF-8 separates words. */
static size_t next_word(const cf_index *ix, const char *s, size_t n, size_t *pos,
                        char word[CF_WORD_MAX + 1]) {
  size_t len = 0;
  bool in_word = false, too_long = false;
  while (*pos < n) {
    uint32_t cp;
    size_t step = cf_utf8_decode(s + *pos, n - *pos, &cp);
    bool word_char = step && is_word_char(ix, cp);
    if (!word_char && in_word) break;
    *pos += step ? step : 1;
    if (!word_char) continue;
    in_word = true;
    if (!too_long && !put_upper(ix, cp, word, &len)) too_long = true;
  }
  word[len] = 0;
  return too_long ? CF_WORD_MAX : len;
}

/* The word's record, or NULL. */
static const struct cf_word *lookup(const cf_index *ix, const char *word) {
  size_t lo = 0, hi = ix->h->nwords;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    int c = strcmp(ix->strings + ix->words[mid].text, word);
    if (c == 0) return &ix->words[mid];
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return NULL;
}

/* First index in ids[lo..n) whose value is >= x (galloping, then binary search): intersecting a
 * short list with a long one costs the short one's length times a logarithm. */
static size_t seek(const uint32_t *ids, size_t lo, size_t n, uint32_t x) {
  size_t step = 1, hi = lo;
  while (hi < n && ids[hi] < x) {
    lo = hi + 1;
    hi += step;
    step *= 2;
  }
  return lower_bound(ids, sizeof *ids, 0, lo, hi < n ? hi : n, x);
}

/* Narrow out to the ids also in w's postings (in place once out owns its memory: the write index
 * never passes the read index). */
static int narrow(const cf_index *ix, const struct cf_word *w, cf_result *out) {
  const uint32_t *ids = ix->postings + w->first;
  if (ids == out->ids) return 0; /* the same word twice */
  if (!out->owned) {
    size_t cap = out->count < w->count ? out->count : w->count;
    if (!(out->owned = malloc((cap ? cap : 1) * sizeof *out->owned))) return -ENOMEM;
  }
  size_t kept = 0, at = 0;
  for (size_t k = 0; k < out->count && at < w->count; k++) {
    at = seek(ids, at, w->count, out->ids[k]);
    if (at < w->count && ids[at] == out->ids[k]) out->owned[kept++] = out->ids[k];
  }
  out->ids = out->owned;
  out->count = kept;
  return 0;
}

enum { MAX_QUERY_WORDS = 32 }; /* more words than this are intersected in rounds */

/* Intersect out with w[0..nw), shortest lists first (the answer shrinks fastest). */
static int intersect(const cf_index *ix, const struct cf_word **w, size_t nw, bool *started,
                     cf_result *out) {
  for (size_t i = 1; i < nw; i++)
    for (size_t k = i; k > 0 && w[k]->count < w[k - 1]->count; k--) {
      const struct cf_word *t = w[k];
      w[k] = w[k - 1];
      w[k - 1] = t;
    }
  for (size_t i = 0; i < nw; i++) {
    if (!*started) {
      out->ids = ix->postings + w[i]->first;
      out->count = w[i]->count;
      *started = true;
    } else if (narrow(ix, w[i], out) < 0) {
      return -ENOMEM;
    }
  }
  return 0;
}

int cf_find(const cf_index *ix, const char *query, size_t len, cf_result *out) {
  *out = (cf_result){0};
  const struct cf_word *w[MAX_QUERY_WORDS];
  size_t nw = 0, pos = 0, wlen;
  bool started = false;
  char word[CF_WORD_MAX + 1];
  while ((wlen = next_word(ix, query, len, &pos, word)) > 0) {
    if (wlen == CF_WORD_MAX || !(w[nw++] = lookup(ix, word))) { /* in no name: no match */
      cf_result_free(out);
      return 0;
    }
    if (nw == MAX_QUERY_WORDS) {
      if (intersect(ix, w, nw, &started, out) < 0) goto nomem;
      nw = 0;
    }
  }
  if (intersect(ix, w, nw, &started, out) < 0) goto nomem;
  return 0;
nomem:
  cf_result_free(out);
  return -ENOMEM;
}

void cf_slice(const cf_result *r, long start, long stop, size_t *from, size_t *to) {
  *from = start < 0 ? 0 : (size_t)start < r->count ? (size_t)start : r->count;
  *to = stop < 0 ? r->count : (size_t)stop < r->count ? (size_t)stop : r->count;
  if (*to < *from) *to = *from;
}

void cf_result_free(cf_result *r) {
  free(r->owned);
  *r = (cf_result){0};
}

/* ---- describing characters ----------------------------------------------------------------------- */

uint32_t cf_codepoint(const cf_index *ix, uint32_t id) { return ix->chars[id].cp; }

size_t cf_name(const cf_index *ix, uint32_t id, char buf[CF_NAME_MAX]) {
  static const char hex[] = "0123456789ABCDEF";
  const struct cf_char *c = &ix->chars[id];
  const char *text = ix->strings + (c->name & ~CF_HEX_TAIL);
  size_t n = strnlen(text, CF_NAME_MAX - 8);
  memcpy(buf, text, n);
  if (c->name & CF_HEX_TAIL) { /* "-" and the code point, at least four digits */
    buf[n++] = '-';
    int digits = c->cp > 0xFFFFF ? 6 : c->cp > 0xFFFF ? 5 : 4;
    for (int d = digits - 1; d >= 0; d--) buf[n++] = hex[c->cp >> (4 * d) & 0xF];
  }
  buf[n] = 0;
  return n;
}

void cf_describe(const cf_index *ix, uint32_t id, cf_buf *out) {
  char name[CF_NAME_MAX], ch[4];
  uint32_t cp = ix->chars[id].cp;
  size_t nlen = cf_name(ix, id, name), start = out->len;
  cf_buf_add_code(out, cp);
  size_t clen = out->len - start;
  cf_buf_add(out, "       ", clen < 7 ? 7 - clen : 0);
  cf_buf_add(out, "\t", 1);
  cf_buf_add(out, ch, cf_utf8_put(cp, ch));
  cf_buf_add(out, "\t", 1);
  cf_buf_add(out, name, nlen);
}

void cf_status(const cf_index *ix, const char *query, size_t len, size_t count, cf_buf *out) {
  if (count == 0)
    cf_buf_lit(out, "No match");
  else if (count == 1)
    cf_buf_lit(out, "1 match");
  else
    cf_buf_printf(out, "%zu matches", count);
  cf_buf_lit(out, " for ");
  cf_repr(ix, query, len, out);
}
