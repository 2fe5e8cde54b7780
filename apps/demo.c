/* aloop-demo: runs the same small program on every driver that works here (or on the one given
 * with --backend) and says what it did: ordered callbacks, timers, a socketpair ping-pong through
 * readers, calls from other threads, and a signal handled on the loop. Every figure it prints is
 * checked; a driver that misbehaves makes the demo fail. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/cli.h"

enum {
  PINGS = 10000,     /* round trips over the socketpair */
  THREADS = 4,       /* threads calling aloop_call_soon_threadsafe */
  CALLS = 10000,     /* calls per thread */
  MS = 1000000,      /* nanoseconds per millisecond */
};

struct demo {
  aloop_loop *loop;
  int order[3], norder;
  int64_t start, fired_ms[3];
  int nfired;
  int sv[2];
  int pings;
  int threadsafe_calls;
  int signals;
  int pending_parts; /* the loop stops when every part is done */
};

static void part_done(struct demo *d) {
  if (--d->pending_parts == 0) aloop_stop(d->loop);
}

/* The demo being run: call_soon callbacks get their rank as argument, timers nothing. */
static struct demo *current;
static void soon(aloop_loop *loop, void *arg) {
  (void)loop;
  struct demo *d = current;
  d->order[d->norder++] = (int)(intptr_t)arg;
  if (d->norder == 3) part_done(d);
}

static void timer(aloop_loop *loop, void *arg) {
  struct demo *d = current;
  (void)arg;
  d->fired_ms[d->nfired++] = (aloop_time(loop) - d->start) / MS;
  if (d->nfired == 3) part_done(d);
}

static void on_pong(aloop_loop *loop, int fd, void *arg) {
  struct demo *d = arg;
  char buf[64];
  if (read(fd, buf, sizeof buf) != sizeof buf) return;
  if (fd == d->sv[1]) { /* the echo side */
    if (write(fd, buf, sizeof buf) != sizeof buf) aloop_report_error(loop, 0, fd, "short echo");
    return;
  }
  if (++d->pings == PINGS) {
    aloop_remove_reader(loop, d->sv[0]);
    aloop_remove_reader(loop, d->sv[1]);
    part_done(d);
  } else if (write(fd, buf, sizeof buf) != sizeof buf) {
    aloop_report_error(loop, 0, fd, "short ping");
  }
}

static void count_call(aloop_loop *loop, void *arg) {
  struct demo *d = arg;
  (void)loop;
  if (++d->threadsafe_calls == THREADS * CALLS) part_done(d);
}

static void *caller(void *arg) {
  struct demo *d = arg;
  for (int i = 0; i < CALLS; i++)
    while (aloop_call_soon_threadsafe(d->loop, count_call, d) < 0) sched_yield();
  return NULL;
}

static void on_sigusr1(aloop_loop *loop, void *arg) {
  struct demo *d = arg;
  (void)loop;
  if (d->signals++ == 0) part_done(d);
}

static int run_demo(const char *prog, const char *backend) {
  struct demo d = {.pending_parts = 5};
  current = &d;
  if (!(d.loop = cli_new_loop(prog, backend))) return errno == ALOOP_EBACKEND ? CLI_EXIT_USAGE : 1;
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, d.sv) < 0) {
    perror("socketpair");
    return 1;
  }
  d.start = aloop_time(d.loop);
  for (intptr_t i = 0; i < 3; i++) aloop_call_soon(d.loop, soon, (void *)i, NULL);
  aloop_call_later(d.loop, 30 * MS, timer, NULL, NULL);
  aloop_call_later(d.loop, 10 * MS, timer, NULL, NULL);
  aloop_call_later(d.loop, 20 * MS, timer, NULL, NULL);
  aloop_add_reader(d.loop, d.sv[0], on_pong, &d);
  aloop_add_reader(d.loop, d.sv[1], on_pong, &d);
  char ping[64] = "ping";
  if (write(d.sv[0], ping, sizeof ping) != sizeof ping) return 1;
  aloop_add_signal_handler(d.loop, SIGUSR1, on_sigusr1, &d);
  pthread_t threads[THREADS];
  for (int i = 0; i < THREADS; i++) pthread_create(&threads[i], NULL, caller, &d);
  raise(SIGUSR1);

  aloop_run(d.loop);
  for (int i = 0; i < THREADS; i++) pthread_join(threads[i], NULL);
  double ms = (double)(aloop_time(d.loop) - d.start) / MS;
  aloop_remove_signal_handler(d.loop, SIGUSR1);
  aloop_stats st;
  aloop_get_stats(d.loop, &st);

  int ok = d.order[0] == 0 && d.order[1] == 1 && d.order[2] == 2 && d.fired_ms[0] >= 10 &&
           d.fired_ms[1] >= 20 && d.fired_ms[2] >= 30 && d.pings == PINGS &&
           d.threadsafe_calls == THREADS * CALLS && d.signals >= 1 && st.errors == 0;
  printf("%-9s call_soon ran 0,1,2 in order; timers for 10/20/30 ms fired at %lld/%lld/%lld ms; "
         "%d ping-pongs over a socketpair; %d calls from %d threads; SIGUSR1 handled on the loop; "
         "%llu iterations, %.1f ms%s\n",
         aloop_backend_name(d.loop), (long long)d.fired_ms[0], (long long)d.fired_ms[1],
         (long long)d.fired_ms[2], d.pings, d.threadsafe_calls, THREADS,
         (unsigned long long)st.iterations, ms, ok ? "" : "  <-- WRONG");
  close(d.sv[0]);
  close(d.sv[1]);
  aloop_free(d.loop);
  return ok ? 0 : 1;
}

static void usage(FILE *out, const char *prog) {
  fprintf(out,
          "usage: %s [--backend select|libev|io_uring|auto] [--list-backends]\n"
          "Runs a short program on every driver that works here (or on the one named) and\n"
          "prints what each did. $ALOOP_BACKEND names a driver too.\n",
          prog);
}

int main(int argc, char **argv) {
  const char *prog = "aloop-demo", *backend;
  int rc = cli_take_backend(&argc, argv, prog, &backend);
  if (rc != CLI_CONTINUE) return rc;
  if (argc > 1) {
    int help = strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0;
    if (!help) fprintf(stderr, "%s: unknown argument '%s'\n", prog, argv[1]);
    usage(help ? stdout : stderr, prog);
    return help ? 0 : CLI_EXIT_USAGE;
  }
  if (backend || getenv("ALOOP_BACKEND")) return run_demo(prog, backend);

  aloop_backend_info info[8];
  size_t n = aloop_list_backends(info, 8);
  int failed = 0;
  for (size_t i = 0; i < n && i < 8; i++) {
    if (!info[i].available) {
      printf("%-9s skipped: %s\n", info[i].name, info[i].reason);
      continue;
    }
    failed |= run_demo(prog, info[i].name);
  }
  return failed;
}
