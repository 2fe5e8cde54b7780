/* Building the index file from the Unicode Character Database. Runs once per data version (about a
 * tenth of a second), never while serving: servers only map the result (index.c).
 *
 * Names are those unicodedata.name() gives, plus the Unicode Standard's other derived names:
 *   a. UnicodeData.txt lists the big ranges by their first and last code points only
 *      ("<CJK Ideograph, First>"); their names are derived: CJK UNIFIED IDEOGRAPH-4E00, TANGUT
 *      IDEOGRAPH-17000, and Hangul syllables by the algorithm of the Standard's chapter 3.12.
 *      Surrogates and private use have no names; neither has <control>.
 *   b. A name that starts with CJK UNIFIED IDEOGRAPH or CJK COMPATIBILITY IDEOGRAPH is indexed by
 *      those words only (not its hex tail); every other name by all its words.
 *   c. Names ending in "-" and their own code point in hex are stored as the prefix alone with
 *      CF_HEX_TAIL: a hundred thousand CJK names cost 8 bytes each. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "format.h"

#define ARRAY_PUSH(arr, n, cap, item)                                            \
  do {                                                                           \
    if ((n) == (cap)) {                                                          \
      size_t newcap_ = (cap) ? (cap) * 2 : 1024;                                 \
      void *p_ = realloc((arr), newcap_ * sizeof *(arr));                        \
      if (!p_) return -ENOMEM;                                                   \
      (arr) = p_;                                                                \
      (cap) = newcap_;                                                           \
    }                                                                            \
    (arr)[(n)++] = (item);                                                       \
  } while (0)

struct bword {
  uint32_t text;
  uint32_t *ids;
  uint32_t n, cap;
};

struct builder {
  struct cf_char *chars;
  size_t nchars, capchars;
  struct cf_range *props;
  size_t nprops, capprops;
  struct cf_upper *upper;
  size_t nupper, capupper;
  struct bword *words;
  size_t nwords, capwords;
  uint32_t *slots; /* open addressing over words: index + 1, 0 empty */
  size_t nslots;
  cf_buf strings;
  char prefix[CF_NAME_MAX]; /* the last hex-tail prefix stored, to share its string */
  uint32_t prefix_off;
};

static uint32_t add_string(struct builder *b, const char *s, size_t n) {
  uint32_t off = (uint32_t)b->strings.len;
  cf_buf_add(&b->strings, s, n);
  cf_buf_add(&b->strings, "", 1);
  return off;
}

static uint64_t hash_word(const char *s, size_t n) {
  uint64_t h = 1469598103934665603u;
  for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211u;
  return h;
}

static int grow_slots(struct builder *b) {
  size_t n = b->nslots ? b->nslots * 2 : 1 << 15;
  uint32_t *slots = calloc(n, sizeof *slots);
  if (!slots) return -ENOMEM;
  for (size_t w = 0; w < b->nwords; w++) {
    const char *t = b->strings.data + b->words[w].text;
    size_t i = hash_word(t, strlen(t)) & (n - 1);
    while (slots[i]) i = (i + 1) & (n - 1);
    slots[i] = (uint32_t)w + 1;
  }
  free(b->slots);
  b->slots = slots;
  b->nslots = n;
  return 0;
}

/* Record that character `id` has word s[0..n). */
static int add_posting(struct builder *b, const char *s, size_t n, uint32_t id) {
  if ((b->nwords + 1) * 2 > b->nslots && grow_slots(b) < 0) return -ENOMEM;
  size_t i = hash_word(s, n) & (b->nslots - 1);
  struct bword *w = NULL;
  for (; b->slots[i]; i = (i + 1) & (b->nslots - 1)) {
    struct bword *c = &b->words[b->slots[i] - 1];
    const char *t = b->strings.data + c->text;
    if (!strncmp(t, s, n) && !t[n]) {
      w = c;
      break;
    }
  }
  if (!w) {
    struct bword fresh = {.text = add_string(b, s, n)};
    ARRAY_PUSH(b->words, b->nwords, b->capwords, fresh);
    b->slots[i] = (uint32_t)b->nwords;
    w = &b->words[b->nwords - 1];
  }
  if (w->n && w->ids[w->n - 1] == id) return 0; /* a word twice in one name counts once */
  ARRAY_PUSH(w->ids, w->n, w->cap, id);
  return 0;
}

static bool is_name_word_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
}

/* Index `name` (a full name) as character `id`, by rule b. */
static int index_words(struct builder *b, const char *name, uint32_t id) {
  static const char *const prefix_only[] = {"CJK UNIFIED IDEOGRAPH", "CJK COMPATIBILITY IDEOGRAPH"};
  size_t len = strlen(name);
  for (size_t p = 0; p < 2; p++)
    if (!strncmp(name, prefix_only[p], strlen(prefix_only[p]))) len = strlen(prefix_only[p]);
  for (size_t i = 0; i < len;) {
    if (!is_name_word_char(name[i])) {
      i++;
      continue;
    }
    size_t start = i;
    while (i < len && is_name_word_char(name[i])) i++;
    if (add_posting(b, name + start, i - start, id) < 0) return -ENOMEM;
  }
  return 0;
}

/* A named character: stored by rule c, indexed by rule b. */
static int add_char(struct builder *b, uint32_t cp, const char *name) {
  char hex[16];
  int hexlen = snprintf(hex, sizeof hex, "-%04X", (unsigned)cp);
  size_t len = strlen(name);
  struct cf_char c = {.cp = cp};
  if (len > (size_t)hexlen && len - hexlen < CF_NAME_MAX && !strcmp(name + len - hexlen, hex)) {
    size_t plen = len - (size_t)hexlen;
    if (strncmp(b->prefix, name, plen) || b->prefix[plen]) {
      memcpy(b->prefix, name, plen);
      b->prefix[plen] = 0;
      b->prefix_off = add_string(b, name, plen);
    }
    c.name = b->prefix_off | CF_HEX_TAIL;
  } else {
    c.name = add_string(b, name, len);
  }
  uint32_t id = (uint32_t)b->nchars;
  ARRAY_PUSH(b->chars, b->nchars, b->capchars, c);
  return index_words(b, name, id);
}

static void hangul_name(uint32_t cp, char out[CF_NAME_MAX]) {
  static const char *const lead[] = {"G", "GG", "N", "D", "DD", "R", "M", "B", "BB", "S",
                                     "SS", "", "J", "JJ", "C", "K", "T", "P", "H"};
  static const char *const vowel[] = {"A",  "AE", "YA", "YAE", "EO", "E",  "YEO",
                                      "YE", "O",  "WA", "WAE", "OE", "YO", "U",
                                      "WEO", "WE", "WI", "YU", "EU", "YI", "I"};
  static const char *const tail[] = {"",  "G",  "GG", "GS", "N",  "NJ", "NH", "D",  "L",  "LG",
                                     "LM", "LB", "LS", "LT", "LP", "LH", "M",  "B",  "BS", "S",
                                     "SS", "NG", "J",  "C",  "K",  "T",  "P",  "H"};
  uint32_t s = cp - 0xAC00;
  snprintf(out, CF_NAME_MAX, "HANGUL SYLLABLE %s%s%s", lead[s / 588], vowel[s % 588 / 28],
           tail[s % 28]);
}

/* Rule a: the name of code point cp in a "<Range, First>".."<Range, Last>" block, or "". */
static void derived_name(const char *range, uint32_t cp, char out[CF_NAME_MAX]) {
  out[0] = 0;
  if (!strncmp(range, "<CJK Ideograph", 14))
    snprintf(out, CF_NAME_MAX, "CJK UNIFIED IDEOGRAPH-%04X", (unsigned)cp);
  else if (!strncmp(range, "<Tangut Ideograph", 17))
    snprintf(out, CF_NAME_MAX, "TANGUT IDEOGRAPH-%04X", (unsigned)cp);
  else if (!strncmp(range, "<Hangul Syllable", 16))
    hangul_name(cp, out);
}

static uint32_t class_flags(uint32_t cp, const char *gc, bool numeric) {
  static const char *const unprintable[] = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp", "Zs"};
  uint32_t flags = CF_PRINTABLE;
  for (size_t i = 0; i < sizeof unprintable / sizeof *unprintable; i++)
    if (!strncmp(gc, unprintable[i], 2) && cp != ' ') flags = 0;
  if (gc[0] == 'L' || numeric || cp == '_') flags |= CF_WORD_CHAR;
  return flags;
}

static int add_class(struct builder *b, uint32_t cp, uint32_t flags) {
  struct cf_range *last = b->nprops ? &b->props[b->nprops - 1] : NULL;
  if (last && last->last + 1 == cp && last->flags == flags) {
    last->last = cp;
    return 0;
  }
  if (!flags) return 0;
  struct cf_range r = {cp, cp, flags};
  ARRAY_PUSH(b->props, b->nprops, b->capprops, r);
  return 0;
}

/* Split a line at ';' into at most max fields; returns how many. */
static size_t split_fields(char *line, char **f, size_t max) {
  size_t n = 0;
  f[n++] = line;
  for (char *p = line; *p && n < max; p++)
    if (*p == ';') {
      *p = 0;
      f[n++] = p + 1;
    }
  return n;
}

static char *trim(char *s) {
  while (*s == ' ') s++;
  size_t n = strlen(s);
  while (n && (s[n - 1] == ' ' || s[n - 1] == '\r' || s[n - 1] == '\n')) s[--n] = 0;
  return s;
}

static int parse_unicode_data(struct builder *b, char *text, char *err, size_t errlen) {
  char range[CF_NAME_MAX] = "";
  uint32_t range_first = 0, range_flags = 0;
  long prev = -1;
  unsigned lineno = 0;
  for (char *line = text, *next; line && *line; line = next) {
    lineno++;
    next = strchr(line, '\n');
    if (next) *next++ = 0;
    char *f[15];
    if (split_fields(line, f, 15) != 15) {
      snprintf(err, errlen, "line %u: %s", lineno, "expected 15 fields separated by ';'");
      return -EINVAL;
    }
    char *end;
    unsigned long cp = strtoul(f[0], &end, 16);
    if (*end || end == f[0] || cp > 0x10FFFF || strlen(f[2]) != 2) {
      snprintf(err, errlen, "line %u: bad code point or category", lineno);
      return -EINVAL;
    }
    if ((long)cp <= prev) {
      snprintf(err, errlen, "line %u: code point %04lX out of order", lineno, cp);
      return -EINVAL;
    }
    prev = (long)cp;
    const char *name = f[1];
    uint32_t flags = class_flags((uint32_t)cp, f[2], *f[6] || *f[7] || *f[8]);
    size_t nlen = strlen(name);
    if (nlen > 8 && !strcmp(name + nlen - 8, ", First>")) {
      snprintf(range, sizeof range, "%s", name);
      range_first = (uint32_t)cp;
      range_flags = flags;
      continue;
    }
    if (nlen > 7 && !strcmp(name + nlen - 7, ", Last>")) {
      if (!range[0] || cp < range_first) {
        snprintf(err, errlen, "line %u: a range's last line without its first", lineno);
        return -EINVAL;
      }
      for (uint32_t c = range_first; c <= cp; c++) {
        char derived[CF_NAME_MAX];
        derived_name(range, c, derived);
        if (add_class(b, c, range_flags) < 0 || (derived[0] && add_char(b, c, derived) < 0))
          return -ENOMEM;
      }
      range[0] = 0;
      continue;
    }
    if (add_class(b, (uint32_t)cp, flags) < 0) return -ENOMEM;
    if (name[0] != '<' && cp >= 0x20 && nlen < CF_NAME_MAX && add_char(b, (uint32_t)cp, name) < 0)
      return -ENOMEM;
    unsigned long up = strtoul(f[12], &end, 16);
    if (*f[12] && !*end && up != cp) {
      struct cf_upper u = {(uint32_t)cp, {(uint32_t)up, 0, 0}};
      ARRAY_PUSH(b->upper, b->nupper, b->capupper, u);
    }
  }
  if (!b->nchars) {
    snprintf(err, errlen, "no named characters in it");
    return -EINVAL;
  }
  return 0;
}

static int by_cp(const void *a, const void *b) {
  uint32_t x = ((const struct cf_upper *)a)->cp, y = ((const struct cf_upper *)b)->cp;
  return (x > y) - (x < y);
}

/* SpecialCasing.txt's unconditional upper-case mappings (ß -> SS) replace the simple ones. */
static int parse_special_casing(struct builder *b, char *text) {
  size_t simple = b->nupper; /* entries before this are sorted by code point */
  for (char *line = text, *next; line && *line; line = next) {
    next = strchr(line, '\n');
    if (next) *next++ = 0;
    char *hash = strchr(line, '#');
    if (hash) *hash = 0;
    char *f[6];
    size_t n = split_fields(line, f, 6);
    if (n < 5 || (n >= 5 && *trim(f[4]))) continue; /* a comment, or a conditional mapping */
    struct cf_upper u = {(uint32_t)strtoul(f[0], NULL, 16), {0, 0, 0}};
    char *p = f[3];
    for (int k = 0; k < 3; k++) u.to[k] = (uint32_t)strtoul(p, &p, 16);
    if (u.to[0] == u.cp && !u.to[1]) continue;
    struct cf_upper *old = bsearch(&u, b->upper, simple, sizeof u, by_cp);
    if (old)
      *old = u;
    else
      ARRAY_PUSH(b->upper, b->nupper, b->capupper, u);
  }
  qsort(b->upper, b->nupper, sizeof *b->upper, by_cp);
  return 0;
}

static const char *sort_strings; /* qsort has no context argument */
static int by_text(const void *a, const void *b) {
  return strcmp(sort_strings + ((const struct bword *)a)->text,
                sort_strings + ((const struct bword *)b)->text);
}

static int write_all(int fd, const void *data, size_t n) {
  for (const char *p = data; n;) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return -1;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/* Lay the tables out after the header, checksum them and write the file. */
static int write_index(struct builder *b, struct cf_header *h, const char *path, char *err,
                       size_t errlen) {
  sort_strings = b->strings.data;
  qsort(b->words, b->nwords, sizeof *b->words, by_text);
  size_t npostings = 0;
  for (size_t w = 0; w < b->nwords; w++) npostings += b->words[w].n;

  cf_buf body = {0};
  size_t off = sizeof *h;
#define TABLE(field, data, bytes)          \
  do {                                     \
    h->field = (uint32_t)(off + body.len); \
    cf_buf_add(&body, (data), (bytes));    \
  } while (0)
  TABLE(off_chars, b->chars, b->nchars * sizeof *b->chars);
  h->off_words = (uint32_t)(off + body.len);
  uint32_t first = 0;
  for (size_t w = 0; w < b->nwords; w++) {
    struct cf_word rec = {b->words[w].text, first, b->words[w].n};
    cf_buf_add(&body, &rec, sizeof rec);
    first += b->words[w].n;
  }
  h->off_postings = (uint32_t)(off + body.len);
  for (size_t w = 0; w < b->nwords; w++)
    cf_buf_add(&body, b->words[w].ids, b->words[w].n * sizeof(uint32_t));
  TABLE(off_props, b->props, b->nprops * sizeof *b->props);
  TABLE(off_upper, b->upper, b->nupper * sizeof *b->upper);
  cf_buf_add(&b->strings, "\0\0\0", (4 - b->strings.len % 4) % 4);
  TABLE(off_strings, b->strings.data, b->strings.len);
#undef TABLE
  if (body.failed || b->strings.failed) {
    cf_buf_free(&body);
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  memcpy(h->magic, CF_MAGIC, sizeof h->magic);
  h->version = CF_FORMAT_VERSION;
  h->byte_order = CF_BYTE_ORDER;
  h->file_size = off + body.len;
  h->checksum = cf_checksum(body.data, body.len);
  h->nchars = (uint32_t)b->nchars;
  h->nwords = (uint32_t)b->nwords;
  h->npostings = (uint32_t)npostings;
  h->nprops = (uint32_t)b->nprops;
  h->nupper = (uint32_t)b->nupper;
  h->strings_size = (uint32_t)b->strings.len;

  /* A private name, then rename(): a reader sees the old file or the whole new one. */
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid());
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  int rc = fd < 0 || write_all(fd, h, sizeof *h) || write_all(fd, body.data, body.len) ? -1 : 0;
  if (fd >= 0 && close(fd) < 0) rc = -1;
  if (rc == 0 && rename(tmp, path) < 0) rc = -1;
  if (rc < 0) {
    snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
    unlink(tmp);
  }
  cf_buf_free(&body);
  return rc;
}

/* The whole file as a NUL-terminated string; NULL with errno set. */
static char *slurp(const char *path, struct stat *st) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return NULL;
  char *text = NULL;
  if (fstat(fd, st) == 0 && (text = malloc((size_t)st->st_size + 1))) {
    size_t got = 0;
    ssize_t r;
    while (got < (size_t)st->st_size && (r = read(fd, text + got, (size_t)st->st_size - got)) > 0)
      got += (size_t)r;
    text[got] = 0;
  }
  int saved = errno;
  close(fd);
  errno = saved;
  return text;
}

void cf_sibling(const char *path, const char *name, char *out, size_t cap) {
  const char *slash = strrchr(path, '/');
  int dirlen = slash ? (int)(slash - path + 1) : 0;
  snprintf(out, cap, "%.*s%s", dirlen, path, name);
}

/* mkdir -p of path's directory. */
static void make_parent_dirs(const char *path) {
  char dir[4096];
  snprintf(dir, sizeof dir, "%s", path);
  for (char *p = dir + 1; *p; p++)
    if (*p == '/') {
      *p = 0;
      mkdir(dir, 0755);
      *p = '/';
    }
}

static void free_builder(struct builder *b) {
  for (size_t w = 0; w < b->nwords; w++) free(b->words[w].ids);
  free(b->words);
  free(b->slots);
  free(b->chars);
  free(b->props);
  free(b->upper);
  cf_buf_free(&b->strings);
}

int cf_index_build(const char *path, const char *unicode_data, char *err, size_t errlen) {
  struct builder b = {0};
  struct cf_header h = {0};
  struct stat st, sst;
  char *text = slurp(unicode_data, &st), *special = NULL;
  if (!text) {
    snprintf(err, errlen, "cannot read %s: %s (Debian's unicode-data package has it)",
             unicode_data, strerror(errno));
    return -1;
  }
  h.source_size = (uint64_t)st.st_size;
  h.source_mtime = (int64_t)st.st_mtime;
  char special_path[4096];
  cf_sibling(unicode_data, "SpecialCasing.txt", special_path, sizeof special_path);
  if ((special = slurp(special_path, &sst))) {
    h.special_size = (uint64_t)sst.st_size;
    h.special_mtime = (int64_t)sst.st_mtime;
  }
  add_string(&b, "", 0); /* offset 0 is the empty string */
  char why[200] = "out of memory";
  int rc = parse_unicode_data(&b, text, why, sizeof why);
  if (rc == 0 && special) rc = parse_special_casing(&b, special);
  if (rc < 0 || b.strings.failed) {
    snprintf(err, errlen, "%s: %s", unicode_data, why);
    rc = -1;
  } else {
    make_parent_dirs(path);
    rc = write_index(&b, &h, path, err, errlen);
  }
  free(text);
  free(special);
  free_builder(&b);
  return rc;
}
