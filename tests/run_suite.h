/* Every test program ends the same way: run the suite, print Check's summary, exit non-zero if
 * anything failed. */
#ifndef ALOOP_TEST_RUN_SUITE_H
#define ALOOP_TEST_RUN_SUITE_H
#include <check.h>
#include <stdlib.h>

static inline int run_suite(Suite *suite) {
  SRunner *runner = srunner_create(suite);
  srunner_run_all(runner, CK_NORMAL);
  int failed = srunner_ntests_failed(runner);
  srunner_free(runner);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
#endif
