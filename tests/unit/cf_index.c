/* The charfinder index and its text rules, against the Unicode data the build was configured with:
 * names (given and derived), word splitting as Python's \w+ and str.upper(), intersection, paging,
 * repr() quoting, str.strip(), the TCP line rules, and a stale or damaged index file detected and
 * rebuilt. The expected answers are Python's (unicodedata, repr, str.strip). */
#include "../cf_scratch.h"
#include "../run_suite.h"
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "charfinder/charfinder.h"
#include "charfinder/servers.h"

static cf_index *ix;

static void open_index(void) {
  char err[512];
  ix = cf_index_open(scratch_index, CF_UNICODE_DATA, NULL, err, sizeof err);
  ck_assert_msg(ix != NULL, "%s", err);
}
static void close_index(void) { cf_index_close(ix); }

/* The query's answer as "U+XXXX U+YYYY ..." (the first `max` code points) and its count. */
static size_t find(const char *q, char *out, size_t cap, size_t max) {
  cf_result r;
  ck_assert_int_eq(cf_find(ix, q, strlen(q), &r), 0);
  size_t len = 0;
  out[0] = 0;
  for (size_t i = 0; i < r.count && i < max; i++)
    len += (size_t)snprintf(out + len, cap - len, "%sU+%04X", i ? " " : "",
                            (unsigned)cf_codepoint(ix, r.ids[i]));
  size_t n = r.count;
  cf_result_free(&r);
  return n;
}

static size_t count(const char *q) {
  char buf[8];
  return find(q, buf, sizeof buf, 0);
}

/* The description of the single character a query finds. */
static void describe_only(const char *q, const char *want) {
  cf_result r;
  ck_assert_int_eq(cf_find(ix, q, strlen(q), &r), 0);
  ck_assert_msg(r.count == 1, "%s: %zu matches", q, r.count);
  cf_buf b = {0};
  cf_describe(ix, r.ids[0], &b);
  ck_assert_str_eq(b.data, want);
  cf_buf_free(&b);
  cf_result_free(&r);
}

static void repr_is(const char *s, size_t n, const char *want) {
  cf_buf b = {0};
  cf_repr(ix, s, n, &b);
  ck_assert_str_eq(b.data, want);
  cf_buf_free(&b);
}

START_TEST(test_result_lines_are_the_originals) {
  describe_only("digit nine full stop", "U+2490 \t\u2490\tDIGIT NINE FULL STOP");
  describe_only("small dollar sign", "U+FE69 \t\uFE69\tSMALL DOLLAR SIGN");
  describe_only("rolling on the floor laughing", "U+1F923\t\U0001F923\tROLLING ON THE FLOOR LAUGHING");
  describe_only("tag latin small letter z", "U+E007A\t\U000E007A\tTAG LATIN SMALL LETTER Z");
}
END_TEST

START_TEST(test_derived_names_cjk_hangul_tangut) {
  char got[256];
  /* CJK unified: indexed only by the prefix's words, named with the hex tail; a name that only
   * contains the prefix is indexed by all its words, hex included (as the original does). */
  ck_assert_uint_eq(find("4E00", got, sizeof got, 5), 1);
  ck_assert_str_eq(got, "U+1F229"); /* SQUARED CJK UNIFIED IDEOGRAPH-4E00 */
  size_t cjk = find("cjk unified ideograph", got, sizeof got, 2);
  ck_assert_uint_gt(cjk, 90000);
  ck_assert_str_eq(got, "U+3400 U+3401");
  cf_result r;
  ck_assert_int_eq(cf_find(ix, "cjk", 3, &r), 0);
  char name[CF_NAME_MAX];
  bool saw_4e00 = false;
  for (size_t i = 0; i < r.count; i++)
    if (cf_codepoint(ix, r.ids[i]) == 0x4E00) {
      cf_name(ix, r.ids[i], name);
      ck_assert_str_eq(name, "CJK UNIFIED IDEOGRAPH-4E00");
      saw_4e00 = true;
    }
  ck_assert(saw_4e00);
  cf_result_free(&r);
  /* CJK compatibility: listed in the data, indexed by the prefix only too. */
  ck_assert_uint_eq(count("F900"), 0);
  ck_assert_uint_gt(count("cjk compatibility ideograph"), 1000);
  /* Hangul syllables by the Standard's algorithm: first, one with a tail, last. */
  describe_only("hangul syllable ga", "U+AC00 \t\uAC00\tHANGUL SYLLABLE GA");
  describe_only("hangul gag", "U+AC01 \t\uAC01\tHANGUL SYLLABLE GAG");
  describe_only("hangul syllable hih", "U+D7A3 \t\uD7A3\tHANGUL SYLLABLE HIH");
  ck_assert_uint_eq(count("hangul syllable"), 11172);
  /* Other ranges with derived names are indexed by all their words, hex tail included. */
  describe_only("tangut 17000", "U+17000\t\U00017000\tTANGUT IDEOGRAPH-17000");
  describe_only("nushu 1B170", "U+1B170\t\U0001B170\tNUSHU CHARACTER-1B170");
  /* Code points below U+0020, other controls, surrogates and private use are not indexed. */
  ck_assert_uint_eq(cf_codepoint(ix, 0), 0x20);
  for (uint32_t id = 0; id < cf_index_size(ix); id++) {
    uint32_t cp = cf_codepoint(ix, id);
    ck_assert_msg(!(cp >= 0x7F && cp <= 0x9F) && !(cp >= 0xD800 && cp <= 0xF8FF) && cp < 0xF0000,
                  "U+%04X is indexed", (unsigned)cp);
  }
}
END_TEST

START_TEST(test_words_split_as_python_and_upper_case_fully) {
  ck_assert_uint_eq(count("cat face"), count("CAT-face!!"));
  ck_assert_uint_eq(count("  cat\tface\n"), count("cat face"));
  ck_assert_uint_eq(count("cat face face cat"), count("cat face"));
  ck_assert_uint_eq(count(""), 0);
  ck_assert_uint_eq(count("!!! ..."), 0);
  ck_assert_uint_eq(count("cat zzzznotaword"), 0);
  /* "x_y" is one word (underscore is a word character), in no name. */
  ck_assert_uint_eq(count("x_y"), 0);
  /* Non-ASCII letters are word characters; str.upper maps the ligature to "FI" and sharp s
   * to "SS" (SpecialCasing), so they find what FI and SS find. */
  ck_assert_uint_eq(count("\uFB01"), count("fi"));
  ck_assert_uint_gt(count("fi"), 0);
  ck_assert_uint_eq(count("\u00DF"), count("ss"));
  /* A non-ASCII word is in no name; invalid UTF-8 separates words. */
  ck_assert_uint_eq(count("\u00E9"), 0);
  ck_assert_uint_eq(count("cat\xff" "face"), count("cat face"));
  /* A word longer than any name's matches nothing (and does not overflow anything). */
  char longword[4000];
  memset(longword, 'A', sizeof longword - 1);
  longword[sizeof longword - 1] = 0;
  ck_assert_uint_eq(count(longword), 0);
}
END_TEST

START_TEST(test_intersection_sorted_by_code_point_and_paging) {
  char got[512];
  ck_assert_uint_eq(find("chess black king", got, sizeof got, 10), 4);
  ck_assert_str_eq(got, "U+265A U+1FA0F U+1FA24 U+1FA39");
  /* Many words at once (more than one round of intersection). */
  char many[1024] = "";
  for (int i = 0; i < 40; i++) strcat(many, i % 2 ? "king " : "chess ");
  strcat(many, "black");
  ck_assert_uint_eq(count(many), 4);
  cf_result r;
  ck_assert_int_eq(cf_find(ix, "chess black", 11, &r), 0);
  for (size_t i = 1; i < r.count; i++)
    ck_assert_uint_lt(cf_codepoint(ix, r.ids[i - 1]), cf_codepoint(ix, r.ids[i]));
  size_t from, to;
  cf_slice(&r, 0, -1, &from, &to);
  ck_assert_uint_eq(from, 0);
  ck_assert_uint_eq(to, r.count);
  cf_slice(&r, 5, 10, &from, &to);
  ck_assert_uint_eq(from, 5);
  ck_assert_uint_eq(to, 10);
  cf_slice(&r, 30, 1000, &from, &to);
  ck_assert_uint_eq(from, 30);
  ck_assert_uint_eq(to, r.count);
  cf_slice(&r, 1000, 2000, &from, &to);
  ck_assert_uint_eq(from, r.count);
  ck_assert_uint_eq(to, r.count);
  cf_slice(&r, 10, 5, &from, &to);
  ck_assert_uint_eq(to, from);
  cf_result_free(&r);
}
END_TEST

START_TEST(test_status_and_repr_quote_as_python) {
  cf_buf b = {0};
  cf_status(ix, "cat", 3, 0, &b);
  ck_assert_str_eq(b.data, "No match for 'cat'");
  b.len = 0;
  cf_status(ix, "cat", 3, 1, &b);
  ck_assert_str_eq(b.data, "1 match for 'cat'");
  b.len = 0;
  cf_status(ix, "cat", 3, 14, &b);
  ck_assert_str_eq(b.data, "14 matches for 'cat'");
  cf_buf_free(&b);
  repr_is("it's", 4, "\"it's\"");
  repr_is("say \"hi\"", 8, "'say \"hi\"'");
  repr_is("it's \"x\"", 8, "'it\\'s \"x\"'");
  repr_is("a\\b", 3, "'a\\\\b'");
  repr_is("\t\n\r", 3, "'\\t\\n\\r'");
  repr_is("\0\x01\x7f", 3, "'\\x00\\x01\\x7f'");
  repr_is("caf\u00e9 \u732b", strlen("caf\u00e9 \u732b"), "'caf\u00e9 \u732b'");
  repr_is("\u00a0", 2, "'\\xa0'");                               /* Zs */
  repr_is("\u200b\u2028", 6, "'\\u200b\\u2028'");                /* Cf, Zl */
  repr_is("\U000E0001", 4, "'\\U000e0001'");                     /* Cf, beyond the BMP */
  repr_is("\xf3\xb0\x80\x80", 4, "'\\U000f0000'");               /* Co */
  repr_is("\xf4\x8f\xbf\xbf", 4, "'\\U0010ffff'");               /* Cn */
  repr_is("\xcd\xb8", 2, "'\\u0378'");                           /* Cn in the BMP */
  repr_is("", 0, "''");
}
END_TEST

static void strip_is(const char *s, const char *want) {
  size_t n = strlen(s);
  cf_strip(&s, &n);
  ck_assert_uint_eq(n, strlen(want));
  ck_assert(!memcmp(s, want, n));
}

START_TEST(test_strip_takes_pythons_whitespace) {
  strip_is("  cat  ", "cat");
  strip_is("\t\n\v\f\r\x1c\x1d\x1e\x1f cat face\r\n", "cat face");
  strip_is("\u3000\u00a0\u2028cat\u2003\xc2\x85", "cat"); /* ..., EM SPACE, NEXT LINE */
  strip_is("\u200bcat", "\u200bcat"); /* ZERO WIDTH SPACE is not whitespace to Python */
  strip_is("   ", "");
  strip_is("", "");
}
END_TEST

static enum cf_line_action answer(const char *line, size_t n, cf_buf *out, size_t *matches) {
  out->len = 0;
  if (out->data) out->data[0] = 0;
  return cf_line_answer(ix, line, n, out, matches, NULL);
}

START_TEST(test_line_rules_of_the_tcp_protocol) {
  cf_buf out = {0};
  size_t n;
  ck_assert_int_eq(answer("chess black king\r\n", 18, &out, &n), CF_LINE_ANSWER);
  ck_assert_uint_eq(n, 4);
  ck_assert_str_eq(out.data,
                   "U+265A \t\u265a\tBLACK CHESS KING\r\n"
                   "U+1FA0F\t\U0001FA0F\tBLACK CHESS KING ROTATED NINETY DEGREES\r\n"
                   "U+1FA24\t\U0001FA24\tBLACK CHESS TURNED KING\r\n"
                   "U+1FA39\t\U0001FA39\tBLACK CHESS KING ROTATED TWO HUNDRED SEVENTY DEGREES\r\n"
                   "4 matches for 'chess black king'\r\n");
  ck_assert_int_eq(answer("zzzq\n", 5, &out, &n), CF_LINE_ANSWER);
  ck_assert_str_eq(out.data, "No match for 'zzzq'\r\n");
  ck_assert_int_eq(answer("\n", 1, &out, &n), CF_LINE_PROMPT);
  ck_assert_int_eq(answer(" \t \r\n", 5, &out, &n), CF_LINE_PROMPT);
  ck_assert_uint_eq(out.len, 0);
  ck_assert_int_eq(answer("\x03\n", 2, &out, &n), CF_LINE_CLOSE);          /* Ctrl-C */
  ck_assert_int_eq(answer("  \x01 cat\n", 8, &out, &n), CF_LINE_CLOSE);    /* after strip */
  ck_assert_int_eq(answer("\xff\xf4\xfd\x06\n", 5, &out, &n), CF_LINE_CLOSE); /* telnet's IP */
  ck_assert_int_eq(answer("cat \xc3\n", 6, &out, &n), CF_LINE_CLOSE);     /* undecodable */
  /* A control character later in the query is just part of it. */
  ck_assert_int_eq(answer("cat\x03\n", 5, &out, &n), CF_LINE_ANSWER);
  ck_assert(strstr(out.data, "14 matches for 'cat\\x03'\r\n") != NULL);
  /* The last line without a newline (end of stream) is answered all the same. */
  ck_assert_int_eq(answer("cat face", 8, &out, &n), CF_LINE_ANSWER);
  ck_assert_uint_eq(n, 10);
  cf_buf_free(&out);
}
END_TEST

/* ---- the index file: stale, damaged, rebuilt ------------------------------------------------------ */

static char log_text[4096];

/* Open a private index at p from source, capturing what it says. */
static cf_index *open_logged(const char *p, const char *source) {
  memset(log_text, 0, sizeof log_text);
  FILE *log = fmemopen(log_text, sizeof log_text, "w");
  char err[512];
  cf_index *x = cf_index_open(p, source, log, err, sizeof err);
  fclose(log);
  ck_assert_msg(x != NULL, "%s", err);
  return x;
}

static void damage(const char *p, long offset, const void *bytes, size_t n) {
  FILE *f = fopen(p, "r+b");
  ck_assert_ptr_nonnull(f);
  ck_assert_int_eq(fseek(f, offset, offset < 0 ? SEEK_END : SEEK_SET), 0);
  ck_assert_uint_eq(fwrite(bytes, 1, n, f), n);
  fclose(f);
}

START_TEST(test_a_missing_stale_or_damaged_index_is_rebuilt_with_a_message) {
  char p[300], src[300], cmd[700];
  snprintf(p, sizeof p, "%s/own/sub/dir/x.index", scratch_dir); /* directories are made as needed */
  snprintf(src, sizeof src, "%s/UnicodeData.txt", scratch_dir);
  snprintf(cmd, sizeof cmd, "cp '%s' '%s'", CF_UNICODE_DATA, src);
  ck_assert_int_eq(system(cmd), 0);

  cf_index *x = open_logged(p, src);
  ck_assert_msg(strstr(log_text, "does not exist"), "log: %s", log_text);
  size_t chars = cf_index_size(x);
  cf_index_close(x);

  x = open_logged(p, src); /* sound: opened as it is, nothing said */
  ck_assert_str_eq(log_text, "");
  cf_index_close(x);

  damage(p, -100, "\x55\xAA\x55\xAA", 4);
  x = open_logged(p, src);
  ck_assert_msg(strstr(log_text, "checksum"), "log: %s", log_text);
  ck_assert_uint_eq(cf_index_size(x), chars);
  cf_index_close(x);

  damage(p, 8, "\x7f", 1); /* the format version */
  x = open_logged(p, src);
  ck_assert_msg(strstr(log_text, "another version"), "log: %s", log_text);
  cf_index_close(x);

  ck_assert_int_eq(truncate(p, 1000), 0);
  x = open_logged(p, src);
  ck_assert_msg(strstr(log_text, "truncated"), "log: %s", log_text);
  cf_index_close(x);

  damage(p, 0, "NOTANIDX", 8);
  x = open_logged(p, src);
  ck_assert_msg(strstr(log_text, "not an index"), "log: %s", log_text);
  cf_index_close(x);

  /* SpecialCasing.txt beside it appears: its mappings count, so the index is rebuilt. */
  snprintf(cmd, sizeof cmd, "cp \"$(dirname '%s')/SpecialCasing.txt\" '%s/'", CF_UNICODE_DATA,
           scratch_dir);
  ck_assert_int_eq(system(cmd), 0);
  x = open_logged(p, src);
  ck_assert_msg(strstr(log_text, "SpecialCasing"), "log: %s", log_text);
  cf_index_close(x);

  /* The source changes (a name gains a word): the index notices and has it. */
  snprintf(cmd, sizeof cmd, "sed -i 's/^0041;LATIN CAPITAL LETTER A;/0041;LATIN CAPITAL LETTER A ZQXJ;/' '%s'",
           src);
  ck_assert_int_eq(system(cmd), 0);
  x = open_logged(p, src);
  ck_assert_msg(strstr(log_text, "source changed"), "log: %s", log_text);
  ck_assert_uint_eq(cf_index_size(x), chars);
  cf_result r;
  ck_assert_int_eq(cf_find(x, "zqxj", 4, &r), 0);
  ck_assert_uint_eq(r.count, 1);
  cf_result_free(&r);
  cf_index_close(x);
}
END_TEST

START_TEST(test_a_missing_or_malformed_source_is_an_error_in_words) {
  char p[300], src[300], err[512];
  snprintf(p, sizeof p, "%s/bad.index", scratch_dir);
  snprintf(src, sizeof src, "%s/none.txt", scratch_dir);
  ck_assert_ptr_null(cf_index_open(p, src, NULL, err, sizeof err));
  ck_assert_msg(strstr(err, "cannot read") && strstr(err, "unicode-data"), "err: %s", err);
  snprintf(src, sizeof src, "%s/bad.txt", scratch_dir);
  FILE *f = fopen(src, "w");
  fputs("0041;LATIN CAPITAL LETTER A;Lu\n", f);
  fclose(f);
  ck_assert_ptr_null(cf_index_open(p, src, NULL, err, sizeof err));
  ck_assert_msg(strstr(err, "line 1") && strstr(err, "15 fields"), "err: %s", err);
  f = fopen(src, "w");
  fputs("0042;LATIN CAPITAL LETTER B;Lu;0;L;;;;;N;;;;0062;\n", f);
  fputs("0041;LATIN CAPITAL LETTER A;Lu;0;L;;;;;N;;;;0061;\n", f);
  fclose(f);
  ck_assert_ptr_null(cf_index_open(p, src, NULL, err, sizeof err));
  ck_assert_msg(strstr(err, "line 2") && strstr(err, "order"), "err: %s", err);
}
END_TEST

int main(void) {
  if (!scratch_begin(true)) return EXIT_FAILURE;
  Suite *suite = suite_create("charfinder index");
  TCase *tc = tcase_create("index");
  tcase_add_checked_fixture(tc, open_index, close_index);
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_result_lines_are_the_originals);
  tcase_add_test(tc, test_derived_names_cjk_hangul_tangut);
  tcase_add_test(tc, test_words_split_as_python_and_upper_case_fully);
  tcase_add_test(tc, test_intersection_sorted_by_code_point_and_paging);
  tcase_add_test(tc, test_status_and_repr_quote_as_python);
  tcase_add_test(tc, test_strip_takes_pythons_whitespace);
  tcase_add_test(tc, test_line_rules_of_the_tcp_protocol);
  tcase_add_test(tc, test_a_missing_stale_or_damaged_index_is_rebuilt_with_a_message);
  tcase_add_test(tc, test_a_missing_or_malformed_source_is_an_error_in_words);
  suite_add_tcase(suite, tc);
  return scratch_end(run_suite(suite));
}
