/* aloop inside a GLib main loop, as a GTK program would host it: one GSource that polls
 * aloop_backend_fd, takes its timeout from aloop_backend_timeout and dispatches
 * aloop_run_once(loop, 0). Through it, on each driver that offers a backend fd: an echo server
 * for a client thread (plain blocking sockets), a timer that must not fire early, and the client's
 * call from its thread that ends the GLib loop. Built only where GLib is installed (test-only). */
#include "../run_suite.h"
#include <arpa/inet.h>
#include <check.h>
#include <glib.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "aloop.h"

#define MS INT64_C(1000000)

/* ---- the GSource: all a GLib program needs to host aloop -------------------------------------- */

struct aloop_source {
  GSource base;
  aloop_loop *loop;
  gpointer tag; /* the backend fd's registration */
};

static gboolean source_prepare(GSource *base, gint *timeout) {
  struct aloop_source *s = (struct aloop_source *)base;
  int64_t ns = aloop_backend_timeout(s->loop);
  int64_t ms = (ns + MS - 1) / MS; /* rounded up: a timer is never found early */
  *timeout = ns < 0 ? -1 : ms > G_MAXINT ? G_MAXINT : (gint)ms;
  return ns == 0;
}

static gboolean source_check(GSource *base) {
  struct aloop_source *s = (struct aloop_source *)base;
  return (g_source_query_unix_fd(base, s->tag) & G_IO_IN) || aloop_backend_timeout(s->loop) == 0;
}

static gboolean source_dispatch(GSource *base, GSourceFunc cb, gpointer data) {
  (void)cb, (void)data;
  struct aloop_source *s = (struct aloop_source *)base;
  ck_assert_int_ge(aloop_run_once(s->loop, 0), 0);
  return G_SOURCE_CONTINUE;
}

static GSourceFuncs source_funcs = {
    .prepare = source_prepare, .check = source_check, .dispatch = source_dispatch};

static GSource *aloop_source_new(aloop_loop *loop, int fd) {
  struct aloop_source *s = (struct aloop_source *)g_source_new(&source_funcs, sizeof *s);
  s->loop = loop;
  s->tag = g_source_add_unix_fd(&s->base, fd, G_IO_IN);
  return &s->base;
}

/* ---- what runs through it --------------------------------------------------------------------- */

static void echo_data(aloop_transport *t, const void *data, size_t n, void *ctx) {
  (void)ctx;
  aloop_transport_write(t, data, n);
}
static const aloop_protocol echo = {.data_received = echo_data};

enum { ROUNDS = 100 };

struct run {
  aloop_loop *loop;
  GMainLoop *main;
  int port;
  bool client_ok, timed_out;
  int64_t timer_due, timer_ran;
};

static void quit_glib(aloop_loop *loop, void *arg) {
  (void)loop;
  g_main_loop_quit(((struct run *)arg)->main);
}

static bool echo_rounds(int fd) {
  for (int i = 0; i < ROUNDS; i++) {
    char out[64], back[64];
    int n = snprintf(out, sizeof out, "round %d inside GLib\n", i);
    if (write(fd, out, (size_t)n) != n) return false;
    for (int got = 0; got < n;) {
      ssize_t k = read(fd, back + got, (size_t)(n - got));
      if (k <= 0) return false;
      got += (int)k;
    }
    if (memcmp(out, back, (size_t)n)) return false;
  }
  return true;
}

static void *run_client(void *arg) {
  struct run *r = arg;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)r->port),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  struct timeval patience = {.tv_sec = 60};
  r->client_ok = fd >= 0 && setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &patience, sizeof patience) == 0 &&
                 connect(fd, (struct sockaddr *)&a, sizeof a) == 0 && echo_rounds(fd);
  if (fd >= 0) close(fd);
  aloop_call_soon_threadsafe(r->loop, quit_glib, r); /* wakes GLib through aloop's fd */
  return NULL;
}

static void timer_fired(aloop_loop *loop, void *arg) {
  struct run *r = arg;
  r->timer_ran = aloop_time(loop);
}

static gboolean give_up(gpointer arg) {
  struct run *r = arg;
  r->timed_out = true;
  g_main_loop_quit(r->main);
  return G_SOURCE_REMOVE;
}

static void quit_when_done(aloop_future *f, void *arg) {
  (void)f;
  g_main_loop_quit(((struct run *)arg)->main);
}

/* Run GLib until something quits it, at most 60 s (a generous bound for a loaded machine). */
static void run_glib(struct run *r) {
  guint bound = g_timeout_add_seconds(60, give_up, r);
  g_main_loop_run(r->main);
  ck_assert_msg(!r->timed_out, "%s: the GLib loop was not woken within 60 s",
                aloop_backend_name(r->loop));
  g_source_remove(bound);
}

static void serve_inside_glib(const char *backend) {
  aloop_options opts = {.size = sizeof opts, .backend = backend, .embedded = 1};
  struct run r = {.loop = aloop_new(&opts)};
  ck_assert_ptr_nonnull(r.loop);
  int fd = aloop_backend_fd(r.loop);
  if (fd < 0) {
    ck_assert_int_eq(fd, -ALOOP_EUNAVAIL);
    fprintf(stderr, "%s has no backend fd (%s): not run inside GLib\n", backend, aloop_strerror(fd));
    aloop_free(r.loop);
    return;
  }
  GMainContext *context = g_main_context_new();
  g_main_context_push_thread_default(context);
  r.main = g_main_loop_new(context, FALSE);
  GSource *source = aloop_source_new(r.loop, fd);
  g_source_attach(source, context);

  aloop_future *f = aloop_create_server(r.loop, &echo, NULL, NULL, "127.0.0.1", 0, NULL);
  ck_assert_int_eq(aloop_future_add_done_callback(f, quit_when_done, &r), 0);
  run_glib(&r);
  ck_assert_int_eq(aloop_future_outcome(f), 0);
  aloop_server *server = aloop_future_data(f);
  aloop_future_release(f);
  r.port = aloop_server_port(server);

  r.timer_due = aloop_time(r.loop) + 30 * MS;
  ck_assert_int_eq(aloop_call_later(r.loop, 30 * MS, timer_fired, &r, NULL), 0);
  pthread_t client;
  ck_assert_int_eq(pthread_create(&client, NULL, run_client, &r), 0);
  run_glib(&r); /* until the client's call from its thread */
  pthread_join(client, NULL);
  ck_assert_msg(r.client_ok, "%s: the echoes did not all come back", backend);
  if (!r.timer_ran) { /* a fast client: the timer is still to come, and GLib must wait for it */
    aloop_call_at(r.loop, r.timer_due, quit_glib, &r, NULL);
    run_glib(&r);
  }
  ck_assert_msg(r.timer_ran >= r.timer_due, "%s: the timer fired early", backend);

  aloop_server_close(server);
  aloop_future *closed = aloop_server_wait_closed(server);
  ck_assert_int_eq(aloop_future_add_done_callback(closed, quit_when_done, &r), 0);
  run_glib(&r);
  aloop_future_release(closed);
  aloop_server_free(server);
  for (int i = 0; i < 100 && aloop_backend_timeout(r.loop) == 0; i++) aloop_run_once(r.loop, 0);

  g_source_destroy(source);
  g_source_unref(source);
  g_main_loop_unref(r.main);
  g_main_context_pop_thread_default(context);
  g_main_context_unref(context);
  ck_assert_int_eq(aloop_free(r.loop), 0);
}

START_TEST(test_an_echo_server_timer_and_thread_call_run_inside_a_glib_main_loop) {
  aloop_backend_info info[8];
  size_t n = aloop_list_backends(info, 8);
  for (size_t i = 0; i < n && i < 8; i++) {
    if (!info[i].available) {
      ck_assert_msg(!getenv("ALOOP_REQUIRE_ALL_DRIVERS"), "%s unavailable: %s", info[i].name,
                    info[i].reason);
      fprintf(stderr, "%s unavailable here, not run: %s\n", info[i].name, info[i].reason);
      continue;
    }
    serve_inside_glib(info[i].name);
  }
}
END_TEST

int main(void) {
  Suite *suite = suite_create("glib");
  TCase *tc = tcase_create("embedded");
  tcase_set_timeout(tc, 600);
  tcase_add_test(tc, test_an_echo_server_timer_and_thread_call_run_inside_a_glib_main_loop);
  suite_add_tcase(suite, tc);
  return run_suite(suite);
}
