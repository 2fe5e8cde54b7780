/* The index for the libFuzzer builds: ALOOP_CHARFINDER_INDEX, or the default cache file, built
 * from the configured Unicode data when missing. */
#include <stdio.h>
#include <stdlib.h>

#include "fuzz.h"

const cf_index *fuzz_index(void) {
  static cf_index *ix;
  if (!ix) {
    char path[4096], err[512];
    if (!(ix = cf_index_open(cf_default_index_path(path, sizeof path), CF_UNICODE_DATA, stderr,
                             err, sizeof err))) {
      fprintf(stderr, "fuzz: %s\n", err);
      abort();
    }
  }
  return ix;
}
