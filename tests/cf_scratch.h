/* A charfinder test program's scratch directory: made before its suite runs and removed after,
 * with the index file's path inside it and, when asked, the index built there once, so that every
 * forked test maps the same file instead of building its own. */
#ifndef ALOOP_TEST_CF_SCRATCH_H
#define ALOOP_TEST_CF_SCRATCH_H
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "charfinder/charfinder.h"

static char scratch_dir[] = "/tmp/aloop-cf-test-XXXXXX";
static char scratch_index[256];

static inline bool scratch_begin(bool build_index) {
  if (!mkdtemp(scratch_dir)) {
    perror("mkdtemp");
    return false;
  }
  snprintf(scratch_index, sizeof scratch_index, "%s/charfinder.index", scratch_dir);
  char err[512];
  if (build_index && cf_index_build(scratch_index, CF_UNICODE_DATA, err, sizeof err) < 0) {
    fprintf(stderr, "cannot build the index: %s\n", err);
    return false;
  }
  return true;
}

/* Remove the directory; the suite's exit status, failed too if that did not work. */
static inline int scratch_end(int rc) {
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", scratch_dir);
  return system(cmd) == 0 ? rc : EXIT_FAILURE;
}
#endif
