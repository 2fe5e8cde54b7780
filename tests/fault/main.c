/* The allocation-failure suite: every scenario run with its Nth allocation failing, for every N
 * from 1 to the number of allocations it makes when nothing fails (beyond SWEEP_EVERY, every
 * SWEEP_STRIDE-th N: the scenarios that make thousands repeat the same paths). Each test says
 * which N misbehaved first and how. Under AddressSanitizer this program cannot own malloc: it
 * says so and is skipped there (exit 77); the plain build runs it. */
#include "../cf_scratch.h"
#include "../run_suite.h"
#include <check.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "scenarios.h"

#ifdef __SANITIZE_ADDRESS__
int main(void) {
  puts("SKIP: the fault suite interposes malloc, which AddressSanitizer owns; the plain build runs it");
  return 77;
}
#else

enum { SWEEP_EVERY = 400, SWEEP_STRIDE = 7 };

static void sweep(const char *name, fault_scenario scenario) {
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  struct fault_summary s;
  fault_sweep(name, scenario, SWEEP_EVERY, SWEEP_STRIDE, &s);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
  if (s.stride_from)
    printf("fault %-10s %5llu allocations, N 1..%llu each then every %llu: %llu runs, %.1f s\n",
           name, (unsigned long long)s.allocations, (unsigned long long)s.stride_from,
           (unsigned long long)s.stride, (unsigned long long)s.tried, secs);
  else
    printf("fault %-10s %5llu allocations, every N: %llu runs, %.1f s\n", name,
           (unsigned long long)s.allocations, (unsigned long long)s.tried, secs);
  fflush(stdout);
  ck_assert_msg(!s.failure[0], "%s", s.failure);
}

START_TEST(test_loop_survives_every_failed_allocation) { sweep("loop", scenario_loop); }
END_TEST
START_TEST(test_timers_survive_every_failed_allocation) { sweep("timers", scenario_timers); }
END_TEST
START_TEST(test_tasks_survive_every_failed_allocation) { sweep("tasks", scenario_tasks); }
END_TEST
START_TEST(test_sockops_survive_every_failed_allocation) { sweep("sockops", scenario_sockops); }
END_TEST
START_TEST(test_transport_survives_every_failed_allocation) { sweep("transport", scenario_transport); }
END_TEST
START_TEST(test_server_survives_every_failed_allocation) { sweep("server", scenario_server); }
END_TEST
START_TEST(test_streams_survive_every_failed_allocation) { sweep("streams", scenario_streams); }
END_TEST
START_TEST(test_file_ops_survive_every_failed_allocation) { sweep("file", scenario_file); }
START_TEST(test_sendfile_survives_every_failed_allocation) { sweep("sendfile", scenario_sendfile); }
END_TEST
START_TEST(test_cf_http_survives_every_failed_allocation) { sweep("cf_http", scenario_cf_http); }
END_TEST
START_TEST(test_cf_line_survives_every_failed_allocation) { sweep("cf_line", scenario_cf_line); }
END_TEST
START_TEST(test_cf_tcp_survives_every_failed_allocation) { sweep("cf_tcp", scenario_cf_tcp); }
END_TEST

static void add(Suite *s, const char *name, const TTest *test) {
  TCase *tc = tcase_create(name);
  tcase_set_timeout(tc, 300); /* generous: a busy machine; nothing here depends on speed */
  tcase_add_test(tc, test);
  suite_add_tcase(s, tc);
}

static const struct {
  const char *name;
  fault_scenario fn;
} scenarios[] = {{"loop", scenario_loop},         {"timers", scenario_timers},
                 {"tasks", scenario_tasks},       {"sockops", scenario_sockops},
                 {"transport", scenario_transport}, {"server", scenario_server},
                 {"streams", scenario_streams},   {"file", scenario_file},
                 {"sendfile", scenario_sendfile},
                 {"cf_http", scenario_cf_http},
                 {"cf_line", scenario_cf_line},   {"cf_tcp", scenario_cf_tcp}};

/* One run of each scenario here, with nothing failing: what glibc sets up once per process
 * (name resolution, cached thread stacks) and charfinder's cached page parts are then in place
 * before any child is armed, and do not count as the scenario's. */
static void warm_up(void) {
  struct fault_run unused;
  for (size_t i = 0; i < sizeof scenarios / sizeof *scenarios; i++) {
    memset(&unused, 0, sizeof unused);
    fault_current = &unused;
    scenarios[i].fn();
  }
  fault_current = NULL;
}

/* FAULT_SCENARIO=name FAULT_N=n: run that one scenario once in this process (for a debugger) and
 * print what it reported. */
static int run_alone(const char *name, uint64_t n) {
  for (size_t i = 0; i < sizeof scenarios / sizeof *scenarios; i++) {
    if (strcmp(scenarios[i].name, name)) continue;
    struct fault_run r;
    memset(&r, 0, sizeof r);
    fault_current = &r;
    fault_arm(n);
    scenarios[i].fn();
    fault_disarm();
    printf("%s, N=%llu of %llu: complete %d, enomem %d, violation \"%s\", consequence \"%s\", "
           "first report \"%s\", %zu blocks left\n",
           name, (unsigned long long)n, (unsigned long long)fault_calls(), r.complete, r.enomem,
           r.violation, r.consequence, r.note, fault_live());
    return 0;
  }
  return 1;
}

int main(void) {
  if (!scratch_begin(true) || !cf_prepare(scratch_index)) return scratch_end(EXIT_FAILURE);
  warm_up();
  const char *alone = getenv("FAULT_SCENARIO");
  if (alone) return scratch_end(run_alone(alone, strtoull(getenv("FAULT_N") ? getenv("FAULT_N") : "0", NULL, 10)));
  Suite *s = suite_create("fault");
  add(s, "loop", test_loop_survives_every_failed_allocation);
  add(s, "timers", test_timers_survive_every_failed_allocation);
  add(s, "tasks", test_tasks_survive_every_failed_allocation);
  add(s, "sockops", test_sockops_survive_every_failed_allocation);
  add(s, "transport", test_transport_survives_every_failed_allocation);
  add(s, "server", test_server_survives_every_failed_allocation);
  add(s, "streams", test_streams_survive_every_failed_allocation);
  add(s, "file", test_file_ops_survive_every_failed_allocation);
  add(s, "sendfile", test_sendfile_survives_every_failed_allocation);
  add(s, "cf_http", test_cf_http_survives_every_failed_allocation);
  add(s, "cf_line", test_cf_line_survives_every_failed_allocation);
  add(s, "cf_tcp", test_cf_tcp_survives_every_failed_allocation);
  return scratch_end(run_suite(s));
}
#endif
