/* The conformance suite for one driver (ALOOP_TEST_DRIVER, set by the build). The same tests run
 * for every compiled driver. A driver that cannot work on this machine is a SKIP (exit 77) with the
 * reason, never a pass; with ALOOP_REQUIRE_ALL_DRIVERS set (CI) it is a failure. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cases.h"
#include "harness.h"
#include "../run_suite.h"

const char *test_driver = ALOOP_TEST_DRIVER;

static int driver_works_here(void) {
  aloop_backend_info info[8];
  size_t n = aloop_list_backends(info, 8);
  for (size_t i = 0; i < n && i < 8; i++) {
    if (strcmp(info[i].name, test_driver) != 0) continue;
    if (info[i].available) return 1;
    fprintf(stderr, "%s driver unavailable here: %s\n", test_driver, info[i].reason);
    return 0;
  }
  fprintf(stderr, "%s driver is not compiled in\n", test_driver);
  return 0;
}

int main(void) {
  if (!driver_works_here()) {
    if (getenv("ALOOP_REQUIRE_ALL_DRIVERS")) return EXIT_FAILURE;
    return 77;
  }
  Suite *suite = suite_create(test_driver);
#define ADD_CASE(name) suite_add_tcase(suite, conformance_##name());
  CONFORMANCE_CASES(ADD_CASE)
#undef ADD_CASE
  return run_suite(suite);
}
