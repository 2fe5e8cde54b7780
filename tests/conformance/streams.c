/* Streams: lines echoed between start_server and open_connection, readline at, below and above
 * the limit, readuntil across packets, readexactly at end of stream, half-close, drain and the
 * reader's bound with slow peers, one read at a time, cancellation, and a failing connection
 * task among healthy ones. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

static int64_t run(aloop_future *f) {
  int64_t outcome = aloop_run_until_complete(L, f);
  aloop_future_release(f);
  return outcome;
}

static aloop_server *start(aloop_stream_fn fn, void *arg, size_t limit) {
  aloop_server_options opts = {.size = sizeof opts, .limit = limit};
  aloop_future *f = aloop_start_server(L, fn, arg, "127.0.0.1", 0, &opts);
  ck_assert_int_eq(aloop_run_until_complete(L, f), 0);
  aloop_server *s = aloop_future_data(f);
  aloop_future_release(f);
  return s;
}

static aloop_stream *connect_to(aloop_server *server, size_t limit) {
  aloop_future *f = aloop_open_connection(L, "127.0.0.1", aloop_server_port(server), limit);
  ck_assert_int_eq(aloop_run_until_complete(L, f), 0);
  aloop_stream *s = aloop_future_data(f);
  ck_assert_ptr_nonnull(s);
  aloop_future_release(f);
  return s;
}

static void close_stream(aloop_stream *s) { ck_assert_int_ge(run(aloop_stream_close(s)), -ECONNRESET); }

static void stop_server(aloop_server *s) {
  aloop_server_close(s);
  ck_assert_int_eq(run_within(aloop_server_wait_closed(s), 60 * SEC), 0);
  aloop_server_free(s);
}

/* A stream to a plain socket the test writes exact bytes into: *peer is that socket. */
static aloop_stream *stream_with_raw_peer(size_t limit, int *lfd, int *peer) {
  struct sockaddr_in addr;
  *lfd = tcp_listener(&addr);
  aloop_future *acc = aloop_sock_accept(L, *lfd);
  aloop_future *f = aloop_open_connection(L, "127.0.0.1", ntohs(addr.sin_port), limit);
  ck_assert_int_eq(aloop_run_until_complete(L, f), 0);
  aloop_stream *s = aloop_future_data(f);
  aloop_future_release(f);
  *peer = (int)run(acc);
  ck_assert_int_ge(*peer, 0);
  return s;
}

static void send_raw(int fd, const char *bytes) {
  ck_assert_int_eq(write(fd, bytes, strlen(bytes)), (ssize_t)strlen(bytes));
}

/* ---- echo -------------------------------------------------------------------------------------------- */

static int64_t echo_lines(aloop_stream *s, void *arg) {
  (void)arg;
  char line[256];
  int64_t n;
  while ((n = aloop_await(aloop_stream_readline(s, line, sizeof line))) > 0) {
    if ((n = aloop_stream_write(s, line, (size_t)n)) < 0) break;
    if ((n = aloop_await(aloop_stream_drain(s))) < 0) break;
  }
  return n;
}

START_TEST(test_lines_echo_between_start_server_and_open_connection) {
  aloop_server *server = start(echo_lines, NULL, 0);
  aloop_stream *s = connect_to(server, 0);
  char want[64], got[64];
  for (int i = 0; i < 100; i++) {
    int n = snprintf(want, sizeof want, "line %d of 100\n", i);
    ck_assert_int_eq(aloop_stream_write(s, want, (size_t)n), 0);
  }
  for (int i = 0; i < 100; i++) {
    int n = snprintf(want, sizeof want, "line %d of 100\n", i);
    ck_assert_int_eq(run(aloop_stream_readline(s, got, sizeof got)), n);
    ck_assert_str_eq(got, want); /* a NUL follows the line when there is room */
  }
  ck_assert_int_eq(aloop_stream_write_eof(s), 0);
  ck_assert_int_eq(run(aloop_stream_readline(s, got, sizeof got)), 0); /* the server ended */
  ck_assert(aloop_stream_at_eof(s));
  aloop_sockaddr peer;
  ck_assert_int_eq(aloop_transport_peername(aloop_stream_transport(s), &peer), 0);
  char where[ALOOP_SOCKADDR_STRLEN];
  ck_assert_str_eq(aloop_sockaddr_str(&peer, where, sizeof where),
                   (snprintf(got, sizeof got, "127.0.0.1:%d", aloop_server_port(server)), got));
  close_stream(s);
  stop_server(server);
}
END_TEST

/* ---- reading --------------------------------------------------------------------------------------- */

START_TEST(test_readline_takes_a_line_at_the_limit_and_refuses_one_above_it_keeping_the_bytes) {
  int lfd, peer;
  aloop_stream *s = stream_with_raw_peer(16, &lfd, &peer);
  char buf[64];
  send_raw(peer, "short\n0123456789abcde\n0123456789abcdef\n");
  ck_assert_int_eq(run(aloop_stream_readline(s, buf, sizeof buf)), 6);        /* below */
  ck_assert_str_eq(buf, "short\n");
  ck_assert_int_eq(run(aloop_stream_readline(s, buf, sizeof buf)), 16);       /* at */
  ck_assert_str_eq(buf, "0123456789abcde\n");
  aloop_future *f = aloop_stream_readline(s, buf, sizeof buf);                /* above */
  ck_assert_int_eq(aloop_run_until_complete(L, f), -ALOOP_ELIMIT);
  /* The reader holds at most its limit: it sees no line end within it. */
  ck_assert_msg(strstr(aloop_future_message(f), "first 16 bytes (the limit)"), "%s",
                aloop_future_message(f));
  aloop_future_release(f);
  ck_assert_uint_ge(aloop_stream_buffered(s), 16);
  size_t got = 0; /* nothing was dropped: every byte can still be read */
  while (got < 17) {
    int64_t n = run(aloop_stream_read(s, buf + got, sizeof buf - got));
    ck_assert_int_gt(n, 0);
    got += (size_t)n;
  }
  ck_assert(memcmp(buf, "0123456789abcdef\n", 17) == 0);
  /* The caller's buffer is a limit too. */
  send_raw(peer, "0123456789\n");
  ck_assert_int_eq(run(aloop_stream_readline(s, buf, 8)), -ALOOP_ELIMIT);
  ck_assert_int_eq(run(aloop_stream_readline(s, buf, 11)), 11); /* exactly fits: no NUL */
  ck_assert(memcmp(buf, "0123456789\n", 11) == 0);
  close(peer), close(lfd);
  close_stream(s);
}
END_TEST

START_TEST(test_readuntil_finds_a_separator_split_across_packets) {
  int lfd, peer;
  aloop_stream *s = stream_with_raw_peer(0, &lfd, &peer);
  char buf[64];
  aloop_future *f = aloop_stream_readuntil(s, "\r\n", 2, buf, sizeof buf);
  send_raw(peer, "abc\r");
  for (int i = 0; i < 5; i++) aloop_run_once(L, 5 * MS);
  ck_assert(!aloop_future_done(f)); /* half a separator is no separator */
  send_raw(peer, "\ndef");
  ck_assert_int_eq(run(f), 5);
  ck_assert_str_eq(buf, "abc\r\n");
  ck_assert_uint_eq(aloop_stream_buffered(s), 3);
  shutdown(peer, SHUT_WR);
  f = aloop_stream_readuntil(s, "\r\n", 2, buf, sizeof buf);
  ck_assert_int_eq(aloop_run_until_complete(L, f), -ALOOP_EINCOMPLETE);
  aloop_future_release(f);
  ck_assert_int_eq(run(aloop_stream_readline(s, buf, sizeof buf)), 3); /* the unterminated rest */
  ck_assert_str_eq(buf, "def");
  ck_assert_int_eq(run(aloop_stream_readline(s, buf, sizeof buf)), 0);
  ck_assert_int_eq(run(aloop_stream_readuntil(s, "", 0, buf, sizeof buf)), -EINVAL);
  ck_assert_int_eq(run(aloop_stream_readuntil(s, "x", 1, buf, 0)), -EINVAL);
  close(peer), close(lfd);
  close_stream(s);
}
END_TEST

START_TEST(test_readexactly_at_end_of_stream_says_how_much_arrived_and_keeps_it) {
  int lfd, peer;
  aloop_stream *s = stream_with_raw_peer(0, &lfd, &peer);
  char buf[16];
  send_raw(peer, "0123456789ABC");
  ck_assert_int_eq(run(aloop_stream_readexactly(s, buf, 10)), 10);
  ck_assert(memcmp(buf, "0123456789", 10) == 0);
  shutdown(peer, SHUT_WR);
  aloop_future *f = aloop_stream_readexactly(s, buf, 10);
  ck_assert_int_eq(aloop_run_until_complete(L, f), -ALOOP_EINCOMPLETE);
  ck_assert_msg(strstr(aloop_future_message(f), "3 of 10"), "%s", aloop_future_message(f));
  aloop_future_release(f);
  ck_assert_uint_eq(aloop_stream_buffered(s), 3);
  ck_assert(!aloop_stream_at_eof(s));
  ck_assert_int_eq(run(aloop_stream_read(s, buf, sizeof buf)), 3);
  ck_assert(memcmp(buf, "ABC", 3) == 0);
  ck_assert_int_eq(run(aloop_stream_read(s, buf, sizeof buf)), 0);
  ck_assert(aloop_stream_at_eof(s));
  close(peer), close(lfd);
  close_stream(s);
}
END_TEST

START_TEST(test_reads_at_end_of_stream_with_nothing_buffered_and_reads_of_zero_bytes) {
  /* A peer that closes without sending a byte: readline, readuntil and read meet an empty buffer
   * that was never allocated (the sanitizer build aborts on a NULL memcpy source there). */
  int lfd, peer;
  aloop_stream *s = stream_with_raw_peer(0, &lfd, &peer);
  char buf[16];
  ck_assert_int_eq(run(aloop_stream_read(s, NULL, 0)), 0);
  shutdown(peer, SHUT_WR);
  ck_assert_int_eq(run(aloop_stream_readline(s, buf, sizeof buf)), 0);
  ck_assert_str_eq(buf, "");
  ck_assert_int_eq(run(aloop_stream_read(s, buf, sizeof buf)), 0);
  ck_assert_int_eq(run(aloop_stream_readexactly(s, NULL, 0)), 0);
  ck_assert(aloop_stream_at_eof(s));
  close(peer), close(lfd);
  close_stream(s);
}
END_TEST

START_TEST(test_a_read_of_zero_bytes_with_bytes_buffered_takes_none) {
  int lfd, peer;
  aloop_stream *s = stream_with_raw_peer(0, &lfd, &peer);
  char buf[16];
  send_raw(peer, "ab\n");
  ck_assert_int_eq(run(aloop_stream_readexactly(s, buf, 1)), 1);
  ck_assert_int_eq(run(aloop_stream_read(s, NULL, 0)), 0);
  ck_assert_int_eq(run(aloop_stream_readexactly(s, NULL, 0)), 0);
  ck_assert_int_eq(run(aloop_stream_readline(s, buf, sizeof buf)), 2);
  ck_assert_str_eq(buf, "b\n");
  close(peer), close(lfd);
  close_stream(s);
}
END_TEST

/* A read waiting with a big buffer gets as much as has arrived, up to that buffer: the room a read
 * takes is the one the waiting reader gives when the read is made, not the stream's own small
 * buffer as it was when the previous read completed (then every read here would be 4 KiB). */
START_TEST(test_a_read_waiting_with_a_big_buffer_takes_more_than_the_streams_own_buffer) {
  int lfd, peer;
  aloop_stream *s = stream_with_raw_peer(0, &lfd, &peer);
  enum { TOTAL = 512 * 1024, BIG = 64 * 1024 };
  static unsigned char out[TOTAL], in[BIG];
  for (size_t i = 0; i < TOTAL; i++) out[i] = (unsigned char)(i * 7 + 3);
  ck_assert_int_eq(fcntl(peer, F_SETFL, O_NONBLOCK), 0);
  size_t sent = 0, got = 0, biggest = 0;
  for (int rounds = 0; got < TOTAL && rounds < 10000; rounds++) {
    ssize_t w = sent < TOTAL ? write(peer, out + sent, TOTAL - sent) : 0;
    if (w > 0) sent += (size_t)w;
    ck_assert(w >= 0 || errno == EAGAIN);
    int64_t n = run(aloop_stream_read(s, in, sizeof in));
    ck_assert_int_gt(n, 0);
    ck_assert(memcmp(in, out + got, (size_t)n) == 0);
    got += (size_t)n;
    if (rounds > 0 && (size_t)n > biggest) biggest = (size_t)n; /* the first: any room */
  }
  ck_assert_uint_eq(got, TOTAL);
  ck_assert_msg(biggest > 4096, "every read after the first took at most %zu bytes", biggest);
  close(peer), close(lfd);
  close_stream(s);
}
END_TEST

START_TEST(test_a_cancelled_readuntil_leaves_no_scan_position_for_the_next_read) {
  int lfd, peer;
  aloop_stream *s = stream_with_raw_peer(0, &lfd, &peer);
  char buf[64];
  send_raw(peer, "abc\ndef");
  ck_assert_int_eq(run(aloop_stream_readexactly(s, buf, 1)), 1); /* all 7 bytes are here now */
  ck_assert_int_eq(run(aloop_stream_readexactly(s, buf, 0)), 0);
  aloop_future *until = aloop_stream_readuntil(s, "XYZ", 3, buf, sizeof buf);
  ck_assert(!aloop_future_done(until)); /* scanned "bc\ndef" for XYZ, waits for more */
  ck_assert_int_eq(aloop_future_cancel(until), 0);
  aloop_run_once(L, 0);
  aloop_future_release(until);
  ck_assert_int_eq(run_within(aloop_stream_readline(s, buf, sizeof buf), 10 * SEC), 3);
  ck_assert_str_eq(buf, "bc\n");
  /* And a separator that changes between reads of the same kind. */
  send_raw(peer, "gh;ij|");
  ck_assert_int_eq(run_within(aloop_stream_readuntil(s, "|", 1, buf, sizeof buf), 10 * SEC), 9);
  ck_assert_int_eq(memcmp(buf, "defgh;ij|", 9), 0);
  close(peer), close(lfd);
  close_stream(s);
}
END_TEST

START_TEST(test_one_read_waits_at_a_time_and_a_cancelled_read_loses_nothing) {
  int lfd, peer;
  aloop_stream *s = stream_with_raw_peer(0, &lfd, &peer);
  char buf[16];
  aloop_future *first = aloop_stream_readline(s, buf, sizeof buf);
  aloop_future *second = aloop_stream_read(s, buf, sizeof buf);
  ck_assert_int_eq(aloop_run_until_complete(L, second), -EBUSY);
  aloop_future_release(second);
  send_raw(peer, "no newline yet");
  for (int i = 0; i < 5; i++) aloop_run_once(L, 5 * MS);
  ck_assert_int_eq(aloop_future_cancel(first), 0);
  ck_assert_int_eq(run(first), -ECANCELED);
  ck_assert_int_eq(run(aloop_stream_readexactly(s, buf, 14)), 14);
  ck_assert(memcmp(buf, "no newline yet", 14) == 0);
  close(peer), close(lfd);
  close_stream(s);
}
END_TEST

/* ---- flow control ------------------------------------------------------------------------------------ */

enum { TOTAL = 16 << 20, PIECE = 64 << 10 };
static unsigned char at(size_t i) { return (unsigned char)(i * 13 % 251); }

struct flow {
  aloop_stream *client; /* the writing side */
  size_t received, max_write_buffer, max_buffered;
  bool pattern_ok;
};

/* Server side: a slow reader that checks every byte and watches its own buffer. */
static int64_t slow_reader(aloop_stream *s, void *arg) {
  struct flow *fl = arg;
  static unsigned char buf[PIECE];
  aloop_await(aloop_sleep(L, 100 * MS)); /* let the sender fill every buffer first */
  while (fl->received < TOTAL) {
    if (aloop_stream_buffered(s) > fl->max_buffered) fl->max_buffered = aloop_stream_buffered(s);
    int64_t n = aloop_await(aloop_stream_read(s, buf, sizeof buf));
    if (n <= 0) return n ? n : aloop_task_error(-EPIPE, "end after %zu bytes", fl->received);
    for (int64_t i = 0; i < n; i++)
      if (buf[i] != at(fl->received + (size_t)i)) fl->pattern_ok = false;
    fl->received += (size_t)n;
    if (fl->received % (1 << 20) < (size_t)n) aloop_await(aloop_sleep(L, MS));
  }
  return 0;
}

/* Client side: write, then drain, as asyncio code does. */
static int64_t writer(void *arg) {
  struct flow *fl = arg;
  aloop_stream *s = fl->client;
  static unsigned char piece[PIECE];
  for (size_t sent = 0; sent < TOTAL; sent += PIECE) {
    for (size_t i = 0; i < PIECE; i++) piece[i] = at(sent + i);
    if (aloop_stream_write(s, piece, PIECE) < 0) return -EPIPE;
    size_t size = aloop_transport_get_write_buffer_size(aloop_stream_transport(s));
    if (size > fl->max_write_buffer) fl->max_write_buffer = size;
    int64_t err = aloop_await(aloop_stream_drain(s));
    if (err < 0) return err;
  }
  return 0;
}

START_TEST(test_drain_and_the_reader_limit_keep_memory_bounded_with_a_slow_reader) {
  struct flow fl = {.pattern_ok = true};
  aloop_server *server = start(slow_reader, &fl, 0);
  fl.client = connect_to(server, 0);
  aloop_future *w = aloop_task_spawn(L, writer, &fl, NULL);
  ck_assert_int_eq(run_within(w, 120 * SEC), 0);
  close_stream(fl.client);
  stop_server(server);
  ck_assert_msg(fl.received == TOTAL, "received %zu of %d: %s", fl.received, TOTAL, reports.message);
  ck_assert(fl.pattern_ok);
  /* The writer never queued more than the high mark plus the piece that crossed it. */
  ck_assert_uint_le(fl.max_write_buffer, ALOOP_WRITE_HIGH_DEFAULT + PIECE);
  /* The reader stopped reading at its limit and never held more: every read takes at most the
   * room left below it, on every driver. Had it not stopped, all 16 MiB would have piled up there
   * within the first sleep (and on io_uring a multishot receive could have read megabytes past
   * the pause). */
  ck_assert_uint_le(fl.max_buffered, ALOOP_STREAM_LIMIT_DEFAULT);
}
END_TEST

/* ---- half-close and faults ----------------------------------------------------------------------------- */

static int64_t reply_after_eof(aloop_stream *s, void *arg) {
  (void)arg;
  char buf[64];
  int64_t n, total = 0;
  while ((n = aloop_await(aloop_stream_read(s, buf, sizeof buf))) > 0) total += n;
  if (n < 0 || !aloop_stream_at_eof(s)) return n;
  n = snprintf(buf, sizeof buf, "got %d bytes", (int)total);
  aloop_stream_write(s, buf, (size_t)n);
  return 0; /* returning closes: the reply is flushed first */
}

START_TEST(test_after_the_peer_half_closes_the_server_still_writes) {
  aloop_server *server = start(reply_after_eof, NULL, 0);
  aloop_stream *s = connect_to(server, 0);
  ck_assert_int_eq(aloop_stream_write(s, "12345", 5), 0);
  ck_assert_int_eq(aloop_stream_write_eof(s), 0);
  ck_assert_int_eq(aloop_stream_write(s, "x", 1), -EPIPE);
  char buf[64];
  ck_assert_int_eq(run(aloop_stream_readexactly(s, buf, 11)), 11);
  ck_assert(memcmp(buf, "got 5 bytes", 11) == 0);
  ck_assert_int_eq(run(aloop_stream_read(s, buf, sizeof buf)), 0);
  close_stream(s);
  stop_server(server);
}
END_TEST

static int64_t echo_unless_boom(aloop_stream *s, void *arg) {
  (void)arg;
  char line[64];
  int64_t n;
  while ((n = aloop_await(aloop_stream_readline(s, line, sizeof line))) > 0) {
    if (strcmp(line, "boom\n") == 0) return aloop_task_error(-EPROTO, "the client said boom");
    aloop_stream_write(s, line, (size_t)n);
  }
  return n;
}

START_TEST(test_a_failing_connection_task_is_reported_with_its_peer_and_the_others_carry_on) {
  aloop_server *server = start(echo_unless_boom, NULL, 0);
  aloop_stream *healthy[3], *bad = connect_to(server, 0);
  for (int i = 0; i < 3; i++) healthy[i] = connect_to(server, 0);
  char buf[64];
  reports_expected = 1;
  ck_assert_int_eq(aloop_stream_write(bad, "boom\n", 5), 0);
  ck_assert_int_le(run(aloop_stream_read(bad, buf, sizeof buf)), 0); /* closed by the server */
  ck_assert_int_eq(reports.count, 1);
  ck_assert_int_eq(reports.code, -EPROTO);
  ck_assert_msg(strstr(reports.message, "127.0.0.1:") && strstr(reports.message, "boom"),
                "report: %s", reports.message);
  for (int i = 0; i < 3; i++) {
    ck_assert_int_eq(aloop_stream_write(healthy[i], "fine\n", 5), 0);
    ck_assert_int_eq(run(aloop_stream_readline(healthy[i], buf, sizeof buf)), 5);
    ck_assert_str_eq(buf, "fine\n");
    close_stream(healthy[i]);
  }
  close_stream(bad);
  stop_server(server);
}
END_TEST

TCase *conformance_streams(void) {
  TCase *tc = conformance_tcase("streams");
  tcase_add_test(tc, test_lines_echo_between_start_server_and_open_connection);
  tcase_add_test(tc, test_readline_takes_a_line_at_the_limit_and_refuses_one_above_it_keeping_the_bytes);
  tcase_add_test(tc, test_readuntil_finds_a_separator_split_across_packets);
  tcase_add_test(tc, test_readexactly_at_end_of_stream_says_how_much_arrived_and_keeps_it);
  tcase_add_test(tc, test_reads_at_end_of_stream_with_nothing_buffered_and_reads_of_zero_bytes);
  tcase_add_test(tc, test_a_read_of_zero_bytes_with_bytes_buffered_takes_none);
  tcase_add_test(tc, test_a_cancelled_readuntil_leaves_no_scan_position_for_the_next_read);
  tcase_add_test(tc, test_a_read_waiting_with_a_big_buffer_takes_more_than_the_streams_own_buffer);
  tcase_add_test(tc, test_one_read_waits_at_a_time_and_a_cancelled_read_loses_nothing);
  tcase_add_test(tc, test_drain_and_the_reader_limit_keep_memory_bounded_with_a_slow_reader);
  tcase_add_test(tc, test_after_the_peer_half_closes_the_server_still_writes);
  tcase_add_test(tc, test_a_failing_connection_task_is_reported_with_its_peer_and_the_others_carry_on);
  return tc;
}
