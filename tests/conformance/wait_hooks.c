/* aloop_set_wait_hooks: a host's hooks run around every poll that may block, before then after,
 * and never around a poll that cannot (nothing to give up for a wait that does not happen). */
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

enum { LOG_MAX = 64 };
static char log_buf[LOG_MAX + 1];
static size_t log_len;
static int inside; /* 1 between before and after: callbacks must never see it */

static void log_event(char c) {
  if (log_len < LOG_MAX) log_buf[log_len++] = c;
  log_buf[log_len] = '\0';
}

static void before_wait(void *arg) {
  ck_assert_ptr_eq(arg, &inside);
  ck_assert_int_eq(inside, 0);
  inside = 1;
  log_event('B');
}

static void after_wait(void *arg) {
  ck_assert_ptr_eq(arg, &inside);
  ck_assert_int_eq(inside, 1);
  inside = 0;
  log_event('A');
}

static void reset_log(void) {
  log_len = 0;
  log_buf[0] = '\0';
  inside = 0;
}

static void timer_fired(aloop_loop *loop, void *arg) {
  ck_assert_int_eq(inside, 0);
  log_event('T');
  if (arg) aloop_stop(loop);
}

/* B then A, in pairs, and nothing else before the first callback. */
static void assert_pairs_then_timer(void) {
  ck_assert_msg(log_len >= 3, "log: %s", log_buf);
  ck_assert_int_eq(log_buf[log_len - 1], 'T');
  for (size_t i = 0; i + 1 < log_len; i += 2)
    ck_assert_msg(log_buf[i] == 'B' && log_buf[i + 1] == 'A', "log: %s", log_buf);
}

START_TEST(test_hooks_run_before_and_after_a_blocking_wait) {
  reset_log();
  aloop_set_wait_hooks(L, before_wait, after_wait, &inside);
  ck_assert_int_eq(aloop_call_later(L, 20 * 1000000LL, timer_fired, L, NULL), 0);
  ck_assert_int_eq(aloop_run(L), 0);
  assert_pairs_then_timer();
  ck_assert_int_eq(inside, 0);
}
END_TEST

START_TEST(test_hooks_do_not_run_around_a_poll_that_does_not_wait) {
  reset_log();
  aloop_set_wait_hooks(L, before_wait, after_wait, &inside);
  ck_assert_int_eq(aloop_run_once(L, 0), 0); /* asked not to wait */
  ck_assert_int_eq(aloop_call_soon(L, timer_fired, NULL, NULL), 0);
  ck_assert_int_eq(aloop_run_once(L, -1), 1); /* a callback is ready: the poll does not wait */
  ck_assert_str_eq(log_buf, "T");
  aloop_stop(L);
  ck_assert_int_eq(aloop_run(L), 0); /* a pending stop: one iteration that does not wait */
  ck_assert_str_eq(log_buf, "T");
}
END_TEST

START_TEST(test_hooks_run_around_a_bounded_wait_of_run_once) {
  reset_log();
  aloop_set_wait_hooks(L, before_wait, after_wait, &inside);
  ck_assert_int_eq(aloop_run_once(L, 1000000), 0);
  ck_assert_str_eq(log_buf, "BA");
}
END_TEST

START_TEST(test_removed_hooks_are_not_called) {
  reset_log();
  aloop_set_wait_hooks(L, before_wait, after_wait, &inside);
  aloop_set_wait_hooks(L, NULL, NULL, NULL);
  ck_assert_int_eq(aloop_run_once(L, 1000000), 0);
  aloop_set_wait_hooks(L, before_wait, NULL, &inside); /* half a pair is no pair */
  ck_assert_int_eq(aloop_run_once(L, 1000000), 0);
  ck_assert_str_eq(log_buf, "");
}
END_TEST

/* A protocol's callbacks run with the host's lock held: on io_uring a read completes, and calls
 * its protocol, inside the driver's poll, so the hooks must wrap the wait alone. */
struct hooked_reader {
  size_t got;
  bool lost;
};
static void *hooked_buffer(aloop_transport *t, size_t hint, size_t *n, void *ctx) {
  (void)t, (void)hint;
  static char buf[4096];
  ck_assert_int_eq(inside, 0);
  *n = sizeof buf;
  return ctx ? buf : NULL;
}
static void hooked_updated(aloop_transport *t, size_t n, void *ctx) {
  ck_assert_int_eq(inside, 0);
  struct hooked_reader *r = ctx;
  r->got += n;
  log_event('R');
  if (r->got >= 3) aloop_transport_close(t);
}
static void hooked_lost(aloop_transport *t, int err, void *ctx) {
  (void)t, (void)err;
  ck_assert_int_eq(inside, 0);
  ((struct hooked_reader *)ctx)->lost = true;
  aloop_stop(L);
}

START_TEST(test_protocol_callbacks_run_outside_the_hooks) {
  reset_log();
  int sv[2];
  ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
  static const aloop_protocol proto = {.get_buffer = hooked_buffer,
                                       .buffer_updated = hooked_updated,
                                       .connection_lost = hooked_lost};
  struct hooked_reader r = {0, false};
  aloop_set_wait_hooks(L, before_wait, after_wait, &inside);
  ck_assert_ptr_nonnull(aloop_transport_new(L, sv[1], &proto, &r));
  for (int i = 0; i < 3; i++) { /* three reads, each after the loop went to sleep again */
    ck_assert_int_eq(aloop_run_once(L, 0), i == 0 ? 1 : 0); /* connection_made, then nothing */
    ck_assert_int_eq(write(sv[0], "x", 1), 1);
    while (r.got == (size_t)i) aloop_run_once(L, 1000000000LL);
  }
  aloop_run(L); /* until connection_lost */
  ck_assert(r.lost);
  ck_assert_uint_eq(r.got, 3);
  ck_assert_msg(strchr(log_buf, 'B') && strchr(log_buf, 'R'), "log: %s", log_buf);
  ck_assert_int_eq(inside, 0);
  close(sv[0]);
}
END_TEST

TCase *conformance_wait_hooks(void) {
  TCase *tc = conformance_tcase("wait_hooks");
  tcase_add_test(tc, test_hooks_run_before_and_after_a_blocking_wait);
  tcase_add_test(tc, test_hooks_do_not_run_around_a_poll_that_does_not_wait);
  tcase_add_test(tc, test_hooks_run_around_a_bounded_wait_of_run_once);
  tcase_add_test(tc, test_removed_hooks_are_not_called);
  tcase_add_test(tc, test_protocol_callbacks_run_outside_the_hooks);
  return tc;
}
