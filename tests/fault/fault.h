/* The allocation-failure harness: an allocator interposed in the test program (alloc.c) that fails
 * the Nth allocation a scenario makes and tracks every block the scenario allocated, and a runner
 * (run.c) that runs a scenario once per N, each in a fresh child process, and says which N
 * misbehaved and how. Nothing here works under AddressSanitizer (it owns malloc too): main.c
 * skips the program there. */
#ifndef ALOOP_TEST_FAULT_H
#define ALOOP_TEST_FAULT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "aloop.h"

/* ---- the allocator (alloc.c) -------------------------------------------------------------------- */

/* Count (and track) the calling thread's allocations from now on; fail the fail_at-th one
 * (1-based; 0: fail none). Other threads (the executor's workers) are neither counted nor failed:
 * what glibc allocates inside getaddrinfo is glibc's business. */
void fault_arm(uint64_t fail_at);
/* Stop counting. Blocks allocated while armed stay tracked until freed. */
void fault_disarm(void);
uint64_t fault_calls(void);   /* allocations made while armed (failed one included) */
bool fault_injected(void);    /* the fail_at-th allocation happened (and failed) */
size_t fault_live(void);      /* blocks allocated while armed and not freed yet */
size_t fault_live_bytes(void);
/* The first few live blocks' sizes, for a leak report. */
size_t fault_live_sizes(size_t *sizes, size_t max);

/* ---- one run of a scenario ---------------------------------------------------------------------- */

/* What a scenario tells the runner. `complete` says it did everything it set out to do with the
 * right results; `enomem` that it saw an allocation failure (a call returning -ENOMEM or NULL with
 * ENOMEM, an outcome of -ENOMEM, a report of it). A scenario that is not complete must have seen
 * one; `violation` is anything else that is wrong (a wrong error code, wrong data, a hang). */
struct fault_run {
  bool complete, enomem;
  char violation[400];
  char note[200]; /* the first error report, for the message */
  char consequence[200]; /* an error that only an allocation failure elsewhere may explain */
  int reports;
};
extern struct fault_run *fault_current;

/* Record a violation (the first one is kept). */
void fault_violation(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* An error code from the library: -ENOMEM counts as the failure being seen; `what` names the call.
 * Any other negative code than those in `allowed` (0-terminated, may be NULL) is a violation. */
void fault_saw(const char *what, int64_t code);
/* An error that may follow from a failure elsewhere (the peer's connection aborted for want of
 * memory: -ECONNRESET here): fine if the failure was seen by the end, a violation otherwise. */
void fault_after(const char *what, int64_t code);
/* A pointer from the library: NULL must come with errno ENOMEM (or be the failure seen). */
bool fault_got(const char *what, const void *p);

/* The loop the scenarios use: select (the driver with no allocations of its own behind libev's
 * aborting allocator), with an error handler that records reports into fault_current. NULL if
 * aloop_new failed (checked). */
aloop_loop *fault_loop(void);
/* Run loop until *done, or a bound on iterations or 3 s pass (a hang is a violation
 * naming `what`). */
bool fault_run_until(aloop_loop *loop, const bool *done, const char *what);
/* Run a future to completion within the same bounds (cancelled then run again if it does not
 * finish: a hang). Returns its outcome (or -ETIMEDOUT) and releases it. NULL: -ENOMEM. */
int64_t fault_await(aloop_loop *loop, aloop_future *f, const char *what);
/* The same, keeping the caller's reference (for the future's data). */
int64_t fault_await_keep(aloop_loop *loop, aloop_future *f, const char *what);
/* Free the loop, checking that it is not running and nothing is left behind in its stats. */
void fault_free_loop(aloop_loop *loop);

/* ---- the runner (run.c) -------------------------------------------------------------------------- */

typedef void (*fault_scenario)(void);

struct fault_summary {
  uint64_t allocations; /* what the scenario makes when nothing fails */
  uint64_t tried;       /* values of N run */
  uint64_t stride_from; /* N from which only every `stride`-th was run (0: all were) */
  uint64_t stride;
  char failure[700];    /* empty, or the first N that misbehaved and how */
};

/* Run `scenario` with nothing failing (it must complete and give back every block), then once
 * for every N from 1 to the count it made (every N up to `every_up_to`, then `stride`), each in a
 * fresh child process. */
void fault_sweep(const char *name, fault_scenario scenario, uint64_t every_up_to, uint64_t stride,
                 struct fault_summary *out);

#endif
