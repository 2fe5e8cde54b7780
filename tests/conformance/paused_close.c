/* A peer that closes or resets while the transport's reading is paused: the end is never lost.
 * Resumed, the transport delivers what came, then the end; closed, it goes at once. (io_uring
 * cancels its multishot receive on pause: the close may arrive as that receive's last word.) */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

struct watched {
  char text[64];
  size_t len;
  int eofs, lost, lost_err;
};

static void pause_now(aloop_transport *t, void *ctx) {
  (void)ctx;
  aloop_transport_pause_reading(t);
}

static void collect(aloop_transport *t, const void *data, size_t n, void *ctx) {
  (void)t;
  struct watched *w = ctx;
  ck_assert_uint_le(w->len + n, sizeof w->text);
  memcpy(w->text + w->len, data, n);
  w->len += n;
}

static bool saw_eof(aloop_transport *t, void *ctx) {
  (void)t;
  ((struct watched *)ctx)->eofs++;
  return false;
}

static void saw_lost(aloop_transport *t, int err, void *ctx) {
  (void)t;
  struct watched *w = ctx;
  w->lost++;
  w->lost_err = err;
}

static const aloop_protocol paused_reader = {.connection_made = pause_now,
                                             .data_received = collect,
                                             .eof_received = saw_eof,
                                             .connection_lost = saw_lost};

/* Run until connection_lost, at most 10 s. */
static void run_until_lost(struct watched *w) {
  for (int i = 0; i < 1000 && !w->lost; i++) aloop_run_once(L, 10 * MS);
  ck_assert_msg(w->lost == 1, "connection_lost ran %d times", w->lost);
}

/* A few iterations with reading paused, so that a pause and its cancel really happened. */
static void idle_a_little(void) {
  for (int i = 0; i < 5; i++) aloop_run_once(L, 10 * MS);
}

START_TEST(test_a_paused_transport_whose_peer_closed_ends_once_resumed) {
  int sv[2];
  make_socketpair(sv);
  struct watched w = {0};
  aloop_transport *t = aloop_transport_new(L, sv[1], &paused_reader, &w);
  idle_a_little();
  ck_assert_int_eq(write(sv[0], "bye", 3), 3);
  close(sv[0]);
  idle_a_little();
  ck_assert_int_eq(w.lost, 0);
  aloop_transport_resume_reading(t);
  run_until_lost(&w);
  ck_assert_uint_eq(w.len, 3);
  ck_assert(memcmp(w.text, "bye", 3) == 0);
  ck_assert_int_eq(w.eofs, 1);
  ck_assert_int_eq(w.lost_err, 0);
}
END_TEST

START_TEST(test_a_paused_transport_whose_peer_closed_ends_when_closed) {
  int sv[2];
  make_socketpair(sv);
  struct watched w = {0};
  aloop_transport *t = aloop_transport_new(L, sv[1], &paused_reader, &w);
  idle_a_little();
  ck_assert_int_eq(write(sv[0], "bye", 3), 3);
  close(sv[0]);
  idle_a_little();
  aloop_transport_close(t);
  run_until_lost(&w);
}
END_TEST

START_TEST(test_a_paused_transport_whose_peer_reset_ends_once_resumed) {
  int lfd, cfd;
  int sfd = tcp_connected(&lfd, &cfd);
  struct watched w = {0};
  aloop_transport *t = aloop_transport_new(L, sfd, &paused_reader, &w);
  idle_a_little();
  ck_assert_int_eq(write(cfd, "data", 4), 4);
  idle_a_little();
  struct linger reset = {.l_onoff = 1, .l_linger = 0};
  ck_assert_int_eq(setsockopt(cfd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset), 0);
  close(cfd); /* RST */
  idle_a_little();
  aloop_transport_resume_reading(t);
  run_until_lost(&w);
  ck_assert_msg(w.lost_err == 0 || w.lost_err == -ECONNRESET, "lost with %s",
                aloop_strerror(w.lost_err));
  close(lfd);
}
END_TEST

/* Many paused transports at once, each peer closing: none may be left open. On io_uring the
 * cancels of many multishot receives and the ends of many streams share the rings. */
enum { MANY = 200 };

START_TEST(test_many_paused_transports_whose_peers_close_all_end) {
  static struct watched w[MANY];
  static aloop_transport *t[MANY];
  static int peer[MANY];
  memset(w, 0, sizeof w);
  for (int i = 0; i < MANY; i++) {
    int sv[2];
    make_socketpair(sv);
    peer[i] = sv[0];
    t[i] = aloop_transport_new(L, sv[1], &paused_reader, &w[i]);
  }
  idle_a_little();
  for (int i = 0; i < MANY; i++) {
    ck_assert_int_eq(write(peer[i], "bye", 3), 3);
    close(peer[i]);
  }
  idle_a_little();
  for (int i = 0; i < MANY; i++) {
    if (i % 2)
      aloop_transport_resume_reading(t[i]);
    else
      aloop_transport_close(t[i]);
  }
  int lost = 0;
  for (int round = 0; round < 1000 && lost < MANY; round++) {
    aloop_run_once(L, 10 * MS);
    lost = 0;
    for (int i = 0; i < MANY; i++) lost += w[i].lost;
  }
  ck_assert_int_eq(lost, MANY);
}
END_TEST

TCase *conformance_paused_close(void) {
  TCase *tc = conformance_tcase("paused_close");
  tcase_add_test(tc, test_a_paused_transport_whose_peer_closed_ends_once_resumed);
  tcase_add_test(tc, test_a_paused_transport_whose_peer_closed_ends_when_closed);
  tcase_add_test(tc, test_a_paused_transport_whose_peer_reset_ends_once_resumed);
  tcase_add_test(tc, test_many_paused_transports_whose_peers_close_all_end);
  return tc;
}
