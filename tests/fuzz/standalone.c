/* The fuzz targets without libFuzzer, as a Check suite `make check` runs (and, in the sanitizer
 * build, under AddressSanitizer and UBSan): every seed in FUZZ_CORPUS (the target's directory of
 * tests/fuzz/corpus), then a fixed number of inputs made from them by a seeded generator (byte
 * flips, insertions of interesting bytes, cuts, splices of two seeds, repeated runs), so a failure
 * is reproducible. FUZZ_RUNS overrides the count. For open-ended fuzzing, configure
 * --enable-fuzzing with clang and run the -libfuzzer programs on the same corpus. */
#include "../run_suite.h"
#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../cf_scratch.h"
#include "fuzz.h"


const cf_index *fuzz_index(void) {
  static cf_index *ix;
  if (!ix) {
    char err[512];
    if (!(ix = cf_index_open(scratch_index, CF_UNICODE_DATA, NULL, err, sizeof err))) {
      fprintf(stderr, "fuzz: %s\n", err);
      abort();
    }
  }
  return ix;
}

static uint64_t rng = 0x9E3779B97F4A7C15u;
static uint64_t next(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

struct seed {
  uint8_t *data;
  size_t len;
};
static struct seed seeds[64];
static size_t nseeds;

/* Every file of the corpus directory into seeds; false if there are none. */
static bool load_seeds(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return false;
  for (struct dirent *e; (e = readdir(d)) && nseeds < sizeof seeds / sizeof *seeds;) {
    if (e->d_name[0] == '.') continue;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    FILE *f = fopen(path, "rb");
    if (!f) continue;
    struct seed *s = &seeds[nseeds];
    s->data = malloc(1 << 16);
    s->len = fread(s->data, 1, 1 << 16, f);
    fclose(f);
    nseeds++;
  }
  closedir(d);
  return nseeds > 0;
}

/* A variation of a random seed into buf (cap bytes); returns its length. */
static size_t mutate(uint8_t *buf, size_t cap) {
  static const uint8_t interesting[] = {0, '\r', '\n', ' ', '%', '&', '=', '+', '?', ':', 0x7f,
                                        0x80, 0xc3, 0xe2, 0xf4, 0xff, '"', '\'', '\\', '<'};
  const struct seed *seed = &seeds[next() % nseeds];
  size_t len = seed->len < cap ? seed->len : cap;
  memcpy(buf, seed->data, len);
  for (int edits = 1 + (int)(next() % 6); edits > 0; edits--) {
    size_t at = len ? next() % len : 0;
    switch (next() % 5) {
      case 0: /* flip a bit */
        if (len) buf[at] ^= (uint8_t)(1u << (next() % 8));
        break;
      case 1: /* insert an interesting byte */
        if (len < cap) {
          memmove(buf + at + 1, buf + at, len - at);
          buf[at] = interesting[next() % sizeof interesting];
          len++;
        }
        break;
      case 2: /* cut */
        len = at;
        break;
      case 3: { /* splice another seed in */
        const struct seed *other = &seeds[next() % nseeds];
        size_t take = other->len ? next() % other->len : 0;
        if (at + take > cap) take = cap - at;
        memcpy(buf + at, other->data + (other->len - take), take);
        if (at + take > len) len = at + take;
        break;
      }
      default: /* repeat a run of bytes (long lines, many headers) */
        for (size_t k = 0, n = next() % 2000; k < n && len < cap; k++) buf[len++] = buf[at];
    }
  }
  return len;
}

START_TEST(test_every_seed) {
  for (size_t i = 0; i < nseeds; i++) LLVMFuzzerTestOneInput(seeds[i].data, seeds[i].len);
}
END_TEST

START_TEST(test_generated_inputs) {
  const char *env = getenv("FUZZ_RUNS");
  long runs = env ? atol(env) : 20000;
  static uint8_t buf[1 << 16];
  for (long i = 0; i < runs; i++) {
    size_t n = mutate(buf, sizeof buf);
    LLVMFuzzerTestOneInput(buf, n);
  }
}
END_TEST

int main(void) {
  if (!scratch_begin(false)) return EXIT_FAILURE;
  if (!load_seeds(FUZZ_CORPUS)) {
    fprintf(stderr, "no seeds in %s\n", FUZZ_CORPUS);
    return EXIT_FAILURE;
  }
  fuzz_index(); /* built once here, before the tests fork */
  Suite *suite = suite_create("fuzz");
  TCase *tc = tcase_create("fuzz");
  tcase_set_timeout(tc, 600);
  tcase_add_test(tc, test_every_seed);
  tcase_add_test(tc, test_generated_inputs);
  suite_add_tcase(suite, tc);
  return scratch_end(run_suite(suite));
}
