/* Running a scenario once per N, each run in a child process of its own: a crash or a hang at one
 * N is then a result about that N (the child's signal, or the alarm that ends it), the state glibc
 * and the library keep in statics starts fresh every time, and the parent compares the child's
 * report (complete, failure seen, blocks and fds left) against what a run without failure did. */
#include <errno.h>
#include <dirent.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fault.h"

struct fault_run *fault_current;

/* A child that outlives this is hung beyond what the scenario's own bounds allow. */
#define CHILD_ALARM_S 20
/* Bounds on one wait inside a scenario: only a hang reaches them. */
#define RUN_MAX_NS (INT64_C(3) * 1000000000)
#define RUN_MAX_ITERATIONS 200000
#define RUN_STEP_NS (INT64_C(10) * 1000000)

void fault_violation(const char *fmt, ...) {
  if (!fault_current || fault_current->violation[0]) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(fault_current->violation, sizeof fault_current->violation, fmt, ap);
  va_end(ap);
}

void fault_saw(const char *what, int64_t code) {
  if (code >= 0) return;
  if (code == -ENOMEM)
    fault_current->enomem = true;
  else
    fault_violation("%s: %s (%lld), not -ENOMEM", what, aloop_strerror((int)code),
                    (long long)code);
}

void fault_after(const char *what, int64_t code) {
  if (code == -ENOMEM) fault_current->enomem = true;
  if (code >= 0 || code == -ENOMEM || fault_current->consequence[0]) return;
  snprintf(fault_current->consequence, sizeof fault_current->consequence, "%s: %s", what,
           aloop_strerror((int)code));
}

bool fault_got(const char *what, const void *p) {
  if (p) return true;
  if (errno == ENOMEM)
    fault_current->enomem = true;
  else
    fault_violation("%s returned NULL with errno %d (%s), not ENOMEM", what, errno,
                    strerror(errno));
  return false;
}

static void on_report(aloop_loop *loop, const aloop_error_info *info, void *arg) {
  (void)loop, (void)arg;
  struct fault_run *r = fault_current;
  if (info->code == -ENOMEM) r->enomem = true;
  if (!r->reports++)
    snprintf(r->note, sizeof r->note, "%s: %s: %s", info->source, info->message,
             aloop_strerror(info->code));
}

aloop_loop *fault_loop(void) {
  aloop_options opts = {.size = sizeof opts, .backend = "select"};
  aloop_loop *loop = aloop_new(&opts);
  if (!fault_got("aloop_new", loop)) return NULL;
  aloop_set_error_handler(loop, on_report, NULL);
  return loop;
}

bool fault_run_until(aloop_loop *loop, const bool *done, const char *what) {
  int64_t deadline = aloop_time(loop) + RUN_MAX_NS;
  for (int i = 0; i < RUN_MAX_ITERATIONS && !*done && aloop_time(loop) < deadline; i++) {
    int rc = aloop_run_once(loop, RUN_STEP_NS);
    if (rc < 0) fault_violation("aloop_run_once: %s", aloop_strerror(rc));
  }
  if (!*done) fault_violation("%s never finished (hung)", what);
  return *done;
}

int64_t fault_await_keep(aloop_loop *loop, aloop_future *f, const char *what) {
  if (!fault_got(what, f)) return -ENOMEM;
  int64_t deadline = aloop_time(loop) + RUN_MAX_NS;
  for (int i = 0; i < RUN_MAX_ITERATIONS && !aloop_future_done(f) && aloop_time(loop) < deadline;
       i++)
    aloop_run_once(loop, RUN_STEP_NS);
  int64_t outcome = aloop_future_outcome(f);
  if (!aloop_future_done(f)) {
    fault_violation("%s never finished (hung)", what);
    aloop_future_cancel(f);
    for (int i = 0; i < 1000 && !aloop_future_done(f); i++) aloop_run_once(loop, RUN_STEP_NS);
    outcome = aloop_future_done(f) ? aloop_future_outcome(f) : -ETIMEDOUT;
  }
  return outcome;
}

int64_t fault_await(aloop_loop *loop, aloop_future *f, const char *what) {
  int64_t outcome = fault_await_keep(loop, f, what);
  aloop_future_release(f);
  return outcome;
}

void fault_free_loop(aloop_loop *loop) {
  if (!loop) return;
  /* What was closed or cancelled in the last step finishes on the next iterations. */
  for (int i = 0; i < 4; i++) aloop_run_once(loop, 0);
  aloop_stats st;
  aloop_get_stats(loop, &st);
  if (st.tasks || st.ops || st.futures || st.fds)
    fault_violation("left behind at aloop_free: %zu tasks, %zu ops, %zu futures, %zu fds",
                    st.tasks, st.ops, st.futures, st.fds);
  int rc = aloop_free(loop);
  if (rc < 0) fault_violation("aloop_free: %s", aloop_strerror(rc));
}

/* ---- one child per N -------------------------------------------------------------------------- */

struct child_report {
  struct fault_run run;
  uint64_t calls;
  bool injected;
  size_t live, live_bytes, nsizes, sizes[6];
  int fds_before, fds_after;
};

static int count_fds(void) {
  DIR *d = opendir("/proc/self/fd");
  if (!d) return -1;
  int n = 0;
  while (readdir(d)) n++;
  closedir(d);
  return n;
}

static void child(fault_scenario scenario, uint64_t n, int out) {
  alarm(CHILD_ALARM_S);
  struct child_report rep;
  memset(&rep, 0, sizeof rep);
  fault_current = &rep.run;
  rep.fds_before = count_fds();
  fault_arm(n);
  scenario();
  fault_disarm();
  rep.calls = fault_calls();
  rep.injected = fault_injected();
  rep.live = fault_live();
  rep.live_bytes = fault_live_bytes();
  rep.nsizes = fault_live_sizes(rep.sizes, sizeof rep.sizes / sizeof *rep.sizes);
  rep.fds_after = count_fds();
  ssize_t w = write(out, &rep, sizeof rep);
  _exit(w == (ssize_t)sizeof rep ? 0 : 3);
}

/* Run one N; false with the reason in why if it misbehaved. */
static bool run_one(fault_scenario scenario, uint64_t n, size_t baseline_live,
                    struct child_report *rep, char *why, size_t whylen) {
  int p[2];
  if (pipe(p) < 0) {
    snprintf(why, whylen, "pipe: %s", strerror(errno));
    return false;
  }
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) {
    snprintf(why, whylen, "fork: %s", strerror(errno));
    close(p[0]), close(p[1]);
    return false;
  }
  if (pid == 0) {
    close(p[0]);
    child(scenario, n, p[1]);
  }
  close(p[1]);
  memset(rep, 0, sizeof *rep);
  ssize_t got = 0, k;
  while (got < (ssize_t)sizeof *rep && (k = read(p[0], (char *)rep + got, sizeof *rep - got)) > 0)
    got += k;
  close(p[0]);
  int status;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) continue;
  if (WIFSIGNALED(status)) {
    snprintf(why, whylen, "killed by signal %d (%s)%s", WTERMSIG(status),
             strsignal(WTERMSIG(status)), WTERMSIG(status) == SIGALRM ? ": hung" : "");
    return false;
  }
  if (got != (ssize_t)sizeof *rep) {
    snprintf(why, whylen, "exited (status %d) without a report", WEXITSTATUS(status));
    return false;
  }
  const struct fault_run *r = &rep->run;
  if (r->violation[0]) {
    snprintf(why, whylen, "%s", r->violation);
  } else if (r->consequence[0] && !r->enomem) {
    snprintf(why, whylen, "%s, and no allocation failure was seen to explain it", r->consequence);
  } else if (!r->complete && !r->enomem) {
    snprintf(why, whylen, "did not complete, and saw no -ENOMEM, NULL or report of it%s",
             rep->injected ? " (the failure was lost)" : " (and nothing failed)");
  } else if (!r->complete && !rep->injected) {
    snprintf(why, whylen, "did not complete though nothing failed");
  } else if (rep->live > baseline_live) {
    int len = snprintf(why, whylen, "%zu blocks (%zu bytes) still allocated after aloop_free; sizes",
                       rep->live - baseline_live, rep->live_bytes);
    for (size_t i = 0; i < rep->nsizes && len > 0 && (size_t)len < whylen; i++)
      len += snprintf(why + len, whylen - (size_t)len, " %zu", rep->sizes[i]);
  } else if (rep->fds_after != rep->fds_before) {
    snprintf(why, whylen, "%d fds open before, %d after", rep->fds_before, rep->fds_after);
  } else {
    return true;
  }
  if (r->note[0] && strlen(why) + 20 < whylen)
    snprintf(why + strlen(why), whylen - strlen(why), " [first report: %s]", r->note);
  return false;
}

void fault_sweep(const char *name, fault_scenario scenario, uint64_t every_up_to, uint64_t stride,
                 struct fault_summary *out) {
  memset(out, 0, sizeof *out);
  struct child_report rep;
  char why[600];
  if (!run_one(scenario, 0, 0, &rep, why, sizeof why) || !rep.run.complete) {
    snprintf(out->failure, sizeof out->failure, "%s without any failure: %s", name,
             rep.run.complete ? why : rep.run.violation[0] ? rep.run.violation : "incomplete");
    return;
  }
  out->allocations = rep.calls;
  size_t baseline = rep.live; /* 0 unless the code keeps a cache in a static (charfinder's page) */
  unsigned failing = 0;
  for (uint64_t n = 1; n <= out->allocations; n += n < every_up_to ? 1 : stride) {
    if (n >= every_up_to && !out->stride_from) out->stride_from = n, out->stride = stride;
    out->tried++;
    if (run_one(scenario, n, baseline, &rep, why, sizeof why)) continue;
    if (!failing++)
      snprintf(out->failure, sizeof out->failure, "%s: allocation %llu of %llu failing: %s", name,
               (unsigned long long)n, (unsigned long long)out->allocations, why);
  }
  if (failing > 1) {
    size_t len = strlen(out->failure);
    snprintf(out->failure + len, sizeof out->failure - len, " (and %u more N misbehaved)",
             failing - 1);
  }
}
