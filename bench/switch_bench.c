/* aloop-switch-bench: the cost of one coroutine switch, as tasks use it (resume into a coroutine,
 * yield back out: two switches per round). Built twice: with the assembly switch of this CPU and
 * with the ucontext fallback, so the two are compared in one run (`make bench`). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "coro/coro.h"

static struct aloop__coro co;
static volatile uint64_t rounds;

static void body(void *arg) {
  (void)arg;
  for (;;) {
    rounds++;
    aloop__coro_yield(&co);
  }
}

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int main(int argc, char **argv) {
  long n = argc > 1 ? atol(argv[1]) : 10000000;
  if (n <= 0 || aloop__coro_init(&co, 64 * 1024, body, NULL) < 0) return 1;
  double best = 1e9;
  for (int rep = 0; rep < 5; rep++) { /* the best of five: the machine is shared */
    int64_t t0 = now_ns();
    for (long i = 0; i < n; i++) aloop__coro_resume(&co);
    double ns = (double)(now_ns() - t0) / (double)n / 2.0;
    if (ns < best) best = ns;
  }
#ifdef ALOOP_CORO_UCONTEXT
  const char *kind = "ucontext (swapcontext)";
#elif defined(__x86_64__)
  const char *kind = "assembly (x86-64)";
#else
  const char *kind = "assembly (aarch64)";
#endif
  printf("| %s | %.1f |\n", kind, best);
  return rounds == 0;
}
