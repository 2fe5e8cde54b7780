/* The index file's layout, shared by the builder (build.c) and the reader (index.c). All numbers
 * are in the building machine's byte order (byte_order tells another one to rebuild). Every table
 * is an array of 32-bit records at a 4-byte aligned offset from the start of the file. */
#ifndef ALOOP_CHARFINDER_FORMAT_H
#define ALOOP_CHARFINDER_FORMAT_H

#include <stdint.h>

#include "charfinder.h"

#define CF_MAGIC "ALCFIDX"
enum { CF_FORMAT_VERSION = 1, CF_BYTE_ORDER = 0x01020304 };

struct cf_header {
  char magic[8];
  uint32_t version, byte_order;
  uint64_t file_size;
  uint64_t source_size, special_size; /* UnicodeData.txt and SpecialCasing.txt (0: absent) */
  int64_t source_mtime, special_mtime;
  uint64_t checksum; /* cf_checksum of every byte after this header */
  uint32_t nchars, nwords, npostings, nprops, nupper, strings_size;
  uint32_t off_chars, off_words, off_postings, off_props, off_upper, off_strings;
};

/* A named character, in code point order. name: offset in the strings; with CF_HEX_TAIL the name
 * is that string, '-' and the code point in hex (CJK UNIFIED IDEOGRAPH-4E00). */
struct cf_char {
  uint32_t cp, name;
};
#define CF_HEX_TAIL 0x80000000u

/* A word of the names, sorted by text: its postings are count ids from postings[first]. */
struct cf_word {
  uint32_t text, first, count;
};

/* Character classes Python's str methods need, as ranges of code points (unlisted: unassigned). */
enum { CF_WORD_CHAR = 1, CF_PRINTABLE = 2 };
struct cf_range {
  uint32_t first, last, flags;
};

/* str.upper() of one code point: up to three (SpecialCasing's unconditional mappings included). */
struct cf_upper {
  uint32_t cp, to[3];
};

/* Longest word kept in a query: longer ones are in no name. */
enum { CF_WORD_MAX = 96 };

uint64_t cf_checksum(const void *data, size_t n);
/* "DIR/name" for a path "DIR/file" (SpecialCasing.txt beside UnicodeData.txt). */
void cf_sibling(const char *path, const char *name, char *out, size_t cap);

#endif
