/* Embedding: aloop hosted by another program's loop. The host here is a plain poll(2) loop that
 * waits on aloop_backend_fd alone, for as long as aloop_backend_timeout allows, then calls
 * aloop_run_once(loop, 0). Through it: an echo server and a client thread, timers, calls from
 * another thread, a signal. A host that was told "nothing scheduled" and then slept its whole
 * idle limit has lost a wake-up, and the test fails on it. On a driver without a backend fd
 * (select) each test checks that answer instead. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

/* How long a host sleeps when aloop has nothing scheduled before the test calls it a lost
 * wake-up: far beyond anything the other thread takes, even on a loaded sanitizer build. */
#define IDLE_LIMIT (20 * SEC)
/* Host turns a test may take: far more than it needs, far fewer than a host that spins. */
#define MAX_TURNS 100000

/* The host's side: aloop's fd, and how many turns it took. */
struct host {
  int fd;
  int turns;
};

/* Whether L's driver, as set up, can have a host wait on an fd: not select (bitmaps, no kernel
 * object), not libev on anything but epoll, not an io_uring ring with deferred task work (which
 * ALOOP_IO_URING=setup=deferred forces even on an embedded loop). */
static bool offers_fd(void) {
  const char *detail = aloop_backend_detail(L);
  if (!strcmp(test_driver, "select")) return false;
  if (!strcmp(test_driver, "libev")) return !strcmp(detail, "epoll");
  return !strstr(detail, "deferred");
}

/* Check L's answer: a real fd, the same every time, or -ALOOP_EUNAVAIL in aloop's words. */
static bool check_backend_fd(int *out) {
  int fd = aloop_backend_fd(L);
  if (!offers_fd()) {
    ck_assert_int_eq(fd, -ALOOP_EUNAVAIL);
    ck_assert_ptr_nonnull(strstr(aloop_strerror(fd), "cannot"));
    return false;
  }
  ck_assert_msg(fd >= 0, "%s: aloop_backend_fd: %s", test_driver, aloop_strerror(fd));
  ck_assert_int_eq(aloop_backend_fd(L), fd);
  *out = fd;
  return true;
}

/* Replace the harness's loop with one made for embedding, and say whether a host can wait on it.
 * If it cannot, the answer was checked and the test has nothing more to do. */
static bool host_for(struct host *h) {
  ck_assert_int_eq(aloop_free(L), 0);
  L = new_embedded_test_loop();
  *h = (struct host){.fd = -1};
  return check_backend_fd(&h->fd);
}

static int ms_rounded_up(int64_t ns) { return (int)((ns + MS - 1) / MS); }

/* One turn of the host: sleep on the fd as long as aloop allows, then a non-blocking iteration. */
static void host_turn(struct host *h) {
  int64_t ns = aloop_backend_timeout(L);
  ck_assert_int_ge(ns, -1);
  struct pollfd p = {.fd = h->fd, .events = POLLIN};
  int n = poll(&p, 1, ns < 0 ? ms_rounded_up(IDLE_LIMIT) : ms_rounded_up(ns));
  ck_assert_msg(n >= 0 || errno == EINTR, "poll: %s", strerror(errno));
  ck_assert_msg(!(n == 0 && ns < 0), "%s: nothing was scheduled and the backend fd stayed quiet "
                "for %d s: a wake-up was lost", test_driver, (int)(IDLE_LIMIT / SEC));
  ck_assert_int_ge(aloop_run_once(L, 0), 0);
  ck_assert_int_lt(++h->turns, MAX_TURNS);
}

static void host_until(struct host *h, const bool *done) {
  while (!*done) host_turn(h);
}

static void host_until_future(struct host *h, aloop_future *f) {
  while (!aloop_future_done(f)) host_turn(h);
}

/* Iterate without waiting until aloop says the host may sleep; bounded in count. */
static void settle(void) {
  for (int i = 0; i < 100 && aloop_backend_timeout(L) == 0; i++)
    ck_assert_int_ge(aloop_run_once(L, 0), 0);
}

static void set_flag(aloop_loop *loop, void *arg) {
  (void)loop;
  *(bool *)arg = true;
}

START_TEST(test_a_loop_not_made_for_embedding_gives_an_fd_or_says_it_cannot) {
  int fd;
  check_backend_fd(&fd);
}
END_TEST

START_TEST(test_backend_timeout_says_ready_timer_or_nothing) {
  settle();
  ck_assert_int_eq(aloop_backend_timeout(L), -1); /* nothing scheduled */

  bool ran = false;
  ck_assert_int_eq(aloop_call_soon(L, set_flag, &ran, NULL), 0);
  ck_assert_int_eq(aloop_backend_timeout(L), 0);
  ck_assert_int_eq(aloop_run_once(L, 0), 1);
  ck_assert(ran);
  settle();
  ck_assert_int_eq(aloop_backend_timeout(L), -1);

  aloop_handle timer;
  ck_assert_int_eq(aloop_call_later(L, 200 * MS, set_flag, &ran, &timer), 0);
  int64_t t = aloop_backend_timeout(L);
  ck_assert_msg(t > 0 && t <= 200 * MS, "a timer in 200 ms: timeout %lld ns", (long long)t);
  ck_assert_int_eq(aloop_cancel(L, timer), 0);
  ck_assert_int_eq(aloop_backend_timeout(L), -1);

  /* A call from "another thread" (this one, through the same path) is pending work too. */
  ran = false;
  ck_assert_int_eq(aloop_call_soon_threadsafe(L, set_flag, &ran), 0);
  ck_assert_int_eq(aloop_backend_timeout(L), 0);
  for (int i = 0; i < 1000 && !ran; i++) ck_assert_int_ge(aloop_run_once(L, 0), 0);
  ck_assert(ran);
  settle();
  ck_assert_int_eq(aloop_backend_timeout(L), -1);
}
END_TEST

/* ---- an echo server and a client thread ---------------------------------------------------- */

static void echo_data(aloop_transport *t, const void *data, size_t n, void *ctx) {
  (void)ctx;
  aloop_transport_write(t, data, n);
}
static const aloop_protocol echo = {.data_received = echo_data};

enum { ROUNDS = 200 };

struct client {
  int port;
  bool ok;      /* written by the client thread before its last call to the loop */
  bool done;    /* set on the loop's thread, by that call */
};

static bool echo_round(int fd, int i) {
  char out[64], back[64];
  int n = snprintf(out, sizeof out, "line %d of the embedded echo\n", i);
  if (write(fd, out, (size_t)n) != n) return false;
  for (int got = 0; got < n;) {
    ssize_t k = read(fd, back + got, (size_t)(n - got));
    if (k <= 0) return false;
    got += (int)k;
  }
  return memcmp(out, back, (size_t)n) == 0;
}

/* Plain blocking sockets: nothing of aloop on this side but the call that says it finished. */
static void *run_client(void *arg) {
  struct client *c = arg;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)c->port),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  struct timeval patience = {.tv_sec = 60}; /* a server that never answers fails, not hangs */
  bool ok = fd >= 0 && setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &patience, sizeof patience) == 0 &&
            connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
  for (int i = 0; ok && i < ROUNDS; i++) ok = echo_round(fd, i);
  if (fd >= 0) close(fd);
  c->ok = ok;
  aloop_call_soon_threadsafe(L, set_flag, &c->done);
  return NULL;
}

START_TEST(test_a_host_poll_loop_runs_an_echo_server_for_a_client_thread) {
  struct host h;
  if (!host_for(&h)) return;
  aloop_future *f = aloop_create_server(L, &echo, NULL, NULL, "127.0.0.1", 0, NULL);
  host_until_future(&h, f); /* name resolution on the executor: its thread wakes the host */
  ck_assert_int_eq(aloop_future_outcome(f), 0);
  aloop_server *server = aloop_future_data(f);
  aloop_future_release(f);

  struct client c = {.port = aloop_server_port(server)};
  pthread_t thread;
  ck_assert_int_eq(pthread_create(&thread, NULL, run_client, &c), 0);
  host_until(&h, &c.done);
  pthread_join(thread, NULL);
  ck_assert_msg(c.ok, "%s: the client's %d echoes did not all come back", test_driver, ROUNDS);

  aloop_server_close(server);
  aloop_future *closed = aloop_server_wait_closed(server);
  host_until_future(&h, closed);
  aloop_future_release(closed);
  aloop_server_free(server);
  settle();
}
END_TEST

/* ---- timers ---------------------------------------------------------------------------------- */

struct due {
  int64_t when;
  bool early;
  int order;   /* how many timers fired before this one */
  int *fired;
};

static void check_due(aloop_loop *loop, void *arg) {
  struct due *d = arg;
  d->early = aloop_time(loop) < d->when;
  d->order = (*d->fired)++;
}

START_TEST(test_a_host_poll_loop_fires_timers_in_order_and_never_early) {
  struct host h;
  if (!host_for(&h)) return;
  static const int64_t delays[] = {0, 1 * MS, 7 * MS, 20 * MS, 20 * MS, 55 * MS, 120 * MS};
  enum { N = sizeof delays / sizeof delays[0] };
  struct due due[N];
  int fired = 0;
  for (int i = 0; i < N; i++) {
    due[i] = (struct due){.when = aloop_time(L) + delays[i], .fired = &fired};
    ck_assert_int_eq(aloop_call_later(L, delays[i], check_due, &due[i], NULL), 0);
  }
  while (fired < N) host_turn(&h);
  for (int i = 0; i < N; i++) {
    ck_assert_msg(!due[i].early, "timer %d fired early", i);
    ck_assert_int_eq(due[i].order, i); /* deadline order, ties in the order scheduled */
  }
  /* Each wait lasted as long as aloop asked, so the host never spun: a turn or two per
   * deadline, and a few for the driver's own first changes. */
  ck_assert_int_le(h.turns, 4 * N + 8);
}
END_TEST

/* ---- calls from another thread, and a signal ------------------------------------------------- */

enum { CALLS = 300 };

struct caller {
  int next;   /* the next call's number, checked on the loop: calls run in order */
  bool in_order, done;
};

static struct caller caller;

static void numbered(aloop_loop *loop, void *arg) {
  (void)loop;
  int n = (int)(intptr_t)arg;
  if (n != caller.next) caller.in_order = false;
  caller.next = n + 1;
  if (caller.next == CALLS) caller.done = true;
}

/* Calls at irregular moments, so that some land while the host sleeps, some while aloop runs
 * and some in between: wherever one lands, it must wake the host or be run. */
static void *call_from_a_thread(void *arg) {
  (void)arg;
  unsigned seed = 12345;
  for (int i = 0; i < CALLS; i++) {
    seed = seed * 1103515245u + 12345u;
    struct timespec pause = {.tv_nsec = (long)((seed >> 8) % 3000) * 1000}; /* 0 to 3 ms */
    if (i % 3) nanosleep(&pause, NULL);
    aloop_call_soon_threadsafe(L, numbered, (void *)(intptr_t)i);
  }
  return NULL;
}

START_TEST(test_calls_from_another_thread_wake_the_host_poll_and_run_in_order) {
  struct host h;
  if (!host_for(&h)) return;
  caller = (struct caller){.in_order = true};
  pthread_t thread;
  ck_assert_int_eq(pthread_create(&thread, NULL, call_from_a_thread, NULL), 0);
  host_until(&h, &caller.done);
  pthread_join(thread, NULL);
  ck_assert(caller.in_order);
  settle();
}
END_TEST

static void *signal_later(void *arg) {
  (void)arg;
  struct timespec pause = {.tv_nsec = 20 * 1000 * 1000};
  nanosleep(&pause, NULL);
  kill(getpid(), SIGUSR2);
  return NULL;
}

START_TEST(test_a_signal_wakes_the_host_poll) {
  struct host h;
  if (!host_for(&h)) return;
  bool got = false;
  ck_assert_int_eq(aloop_add_signal_handler(L, SIGUSR2, set_flag, &got), 0);
  settle();
  pthread_t thread;
  ck_assert_int_eq(pthread_create(&thread, NULL, signal_later, NULL), 0);
  host_until(&h, &got);
  pthread_join(thread, NULL);
  ck_assert_int_eq(aloop_remove_signal_handler(L, SIGUSR2), 1);
}
END_TEST

TCase *conformance_embed(void) {
  TCase *tc = conformance_tcase("embed");
  tcase_add_test(tc, test_a_loop_not_made_for_embedding_gives_an_fd_or_says_it_cannot);
  tcase_add_test(tc, test_backend_timeout_says_ready_timer_or_nothing);
  tcase_add_test(tc, test_a_host_poll_loop_runs_an_echo_server_for_a_client_thread);
  tcase_add_test(tc, test_a_host_poll_loop_fires_timers_in_order_and_never_early);
  tcase_add_test(tc, test_calls_from_another_thread_wake_the_host_poll_and_run_in_order);
  tcase_add_test(tc, test_a_signal_wakes_the_host_poll);
  return tc;
}
