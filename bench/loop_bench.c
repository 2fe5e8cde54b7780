/* aloop-loop-bench: the core's own costs on each driver, side by side in one run (so that the
 * ratios between drivers mean something on a noisy machine). Not a test: it asserts nothing about
 * speed. Each figure is the median of --repeats runs.
 *   call_soon   one callback scheduling the next, ns per callback
 *   timers      N timers at random deadlines within 10 ms, scheduled then run, ns per timer
 *   ping-pong   one byte back and forth over a socketpair through two readers, us per round trip
 *   threadsafe  4 threads calling aloop_call_soon_threadsafe, ns per call as the loop sees them
 *   task yield  a task awaiting aloop_task_yield: future, ready queue and two switches, ns each
 *   sock echo   two tasks, one byte each way over a socketpair with sock_recv/sock_sendall,
 *               us per round trip (completion I/O on io_uring, the core's readiness path elsewhere)
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/cli.h"

static int64_t N_SOON = 1000000, N_TIMERS = 200000, N_PINGS = 100000, N_TS = 100000;
enum { TS_THREADS = 4, MAX_REPEATS = 15 };

static int64_t counter, target;

static void chain(aloop_loop *loop, void *arg) {
  if (++counter == target) aloop_stop(loop);
  else aloop_call_soon(loop, chain, arg, NULL);
}

static double bench_call_soon(aloop_loop *loop) {
  counter = 0;
  target = N_SOON;
  int64_t t0 = aloop_time(loop);
  aloop_call_soon(loop, chain, NULL, NULL);
  aloop_run(loop);
  return (double)(aloop_time(loop) - t0) / (double)N_SOON;
}

static void tick(aloop_loop *loop, void *arg) {
  (void)arg;
  if (++counter == target) aloop_stop(loop);
}

static double bench_timers(aloop_loop *loop) {
  counter = 0;
  target = N_TIMERS;
  unsigned seed = 1;
  int64_t t0 = aloop_time(loop);
  for (int64_t i = 0; i < N_TIMERS; i++)
    aloop_call_at(loop, t0 + (int64_t)(rand_r(&seed) % 10000) * 1000, tick, NULL, NULL);
  aloop_run(loop);
  /* The last deadline is up to 10 ms away: report the loop's own work, not the waiting. */
  int64_t span = aloop_time(loop) - t0 - 10000000;
  return (double)(span > 0 ? span : 0) / (double)N_TIMERS;
}

static int sv[2];
static void pong(aloop_loop *loop, int fd, void *arg) {
  (void)arg;
  char b;
  if (read(fd, &b, 1) != 1) return;
  if (fd == sv[0] && ++counter == target) {
    aloop_stop(loop);
    return;
  }
  if (write(fd, &b, 1) != 1) aloop_stop(loop);
}

static double bench_ping_pong(aloop_loop *loop) {
  counter = 0;
  target = N_PINGS;
  socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv);
  aloop_add_reader(loop, sv[0], pong, NULL);
  aloop_add_reader(loop, sv[1], pong, NULL);
  int64_t t0 = aloop_time(loop);
  if (write(sv[0], "p", 1) != 1) return -1;
  aloop_run(loop);
  double us = (double)(aloop_time(loop) - t0) / (double)N_PINGS / 1000.0;
  aloop_remove_reader(loop, sv[0]);
  aloop_remove_reader(loop, sv[1]);
  close(sv[0]);
  close(sv[1]);
  return us;
}

static aloop_loop *ts_loop;
static void *ts_caller(void *arg) {
  (void)arg;
  for (int64_t i = 0; i < N_TS; i++)
    while (aloop_call_soon_threadsafe(ts_loop, tick, NULL) < 0) sched_yield();
  return NULL;
}

static double bench_threadsafe(aloop_loop *loop) {
  counter = 0;
  target = N_TS * TS_THREADS;
  ts_loop = loop;
  pthread_t t[TS_THREADS];
  int64_t t0 = aloop_time(loop);
  for (int i = 0; i < TS_THREADS; i++) pthread_create(&t[i], NULL, ts_caller, NULL);
  aloop_run(loop);
  double ns = (double)(aloop_time(loop) - t0) / (double)target;
  for (int i = 0; i < TS_THREADS; i++) pthread_join(t[i], NULL);
  return ns;
}

static int64_t N_YIELDS = 1000000;
static int64_t yielder(void *arg) {
  aloop_loop *loop = arg;
  for (int64_t i = 0; i < N_YIELDS; i++)
    if (aloop_task_yield(loop) < 0) return -1;
  return 0;
}

static double bench_task_yield(aloop_loop *loop) {
  int64_t t0 = aloop_time(loop);
  aloop_future *t = aloop_task_spawn(loop, yielder, loop, NULL);
  aloop_run_until_complete(loop, t);
  aloop_future_release(t);
  return (double)(aloop_time(loop) - t0) / (double)N_YIELDS;
}

static int64_t N_ECHO = 50000;
static aloop_loop *echo_loop;
static int64_t echo_side(void *arg) {
  int fd = (int)(intptr_t)arg;
  char b = 'x';
  bool starts = fd == sv[0];
  for (int64_t i = 0; i < N_ECHO; i++) {
    if (starts && aloop_await(aloop_sock_sendall(echo_loop, fd, &b, 1)) < 0) return -1;
    if (aloop_await(aloop_sock_recv_into(echo_loop, fd, &b, 1)) != 1) return -1;
    if (!starts && aloop_await(aloop_sock_sendall(echo_loop, fd, &b, 1)) < 0) return -1;
  }
  return 0;
}

static double bench_sock_echo(aloop_loop *loop) {
  echo_loop = loop;
  socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv);
  int64_t t0 = aloop_time(loop);
  aloop_future *ts[2] = {aloop_task_spawn(loop, echo_side, (void *)(intptr_t)sv[0], NULL),
                         aloop_task_spawn(loop, echo_side, (void *)(intptr_t)sv[1], NULL)};
  aloop_future *both = aloop_gather(loop, ts, 2);
  aloop_run_until_complete(loop, both);
  double us = (double)(aloop_time(loop) - t0) / (double)N_ECHO / 1000.0;
  aloop_future_release(both), aloop_future_release(ts[0]), aloop_future_release(ts[1]);
  aloop_close(loop, sv[0]);
  aloop_close(loop, sv[1]);
  aloop_run_once(loop, 0);
  return us;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double median(aloop_loop *loop, double (*fn)(aloop_loop *), int repeats) {
  double v[MAX_REPEATS];
  for (int i = 0; i < repeats; i++) v[i] = fn(loop);
  qsort(v, (size_t)repeats, sizeof v[0], cmp);
  return v[repeats / 2];
}

int main(int argc, char **argv) {
  const char *prog = "aloop-loop-bench", *backend;
  int rc = cli_take_backend(&argc, argv, prog, &backend);
  if (rc != CLI_CONTINUE) return rc;
  int repeats = 5;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--quick")) {
      repeats = 3;
      N_SOON /= 10, N_TIMERS /= 10, N_PINGS /= 10, N_TS /= 10, N_YIELDS /= 10, N_ECHO /= 10;
    } else if (!strcmp(argv[i], "--repeats") && i + 1 < argc) {
      repeats = atoi(argv[++i]);
      if (repeats < 1 || repeats > MAX_REPEATS) repeats = 5;
    } else {
      fprintf(stderr, "usage: %s [--backend NAME] [--quick] [--repeats N (1-%d)] [--list-backends]\n",
              prog, MAX_REPEATS);
      return strcmp(argv[i], "--help") ? CLI_EXIT_USAGE : 0;
    }
  }
  aloop_backend_info info[8];
  size_t n = aloop_list_backends(info, 8);
  printf("| driver | call_soon ns/cb | timers ns/timer | ping-pong us/round trip | threadsafe ns/call "
         "| task yield ns | sock echo us/round trip |\n|---|---:|---:|---:|---:|---:|---:|\n");
  for (size_t i = 0; i < n && i < 8; i++) {
    if (backend && strcmp(backend, info[i].name)) continue;
    if (!info[i].available) {
      printf("| %s | unavailable: %s | | | | | |\n", info[i].name, info[i].reason);
      continue;
    }
    aloop_loop *loop = cli_new_loop(prog, info[i].name);
    if (!loop) return 1;
    printf("| %s | %.1f | %.1f | %.2f | %.1f | %.1f | %.2f |\n", info[i].name,
           median(loop, bench_call_soon, repeats), median(loop, bench_timers, repeats),
           median(loop, bench_ping_pong, repeats), median(loop, bench_threadsafe, repeats),
           median(loop, bench_task_yield, repeats), median(loop, bench_sock_echo, repeats));
    fflush(stdout);
    aloop_free(loop);
  }
  return 0;
}
