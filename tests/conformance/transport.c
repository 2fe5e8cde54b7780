/* Transports and protocols over socketpairs and loopback TCP: every byte, flow control with a
 * reader that pauses, half-close, abort with queued data, a peer that resets, paused reading. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

/* One side of a connection under test: what it saw. */
struct side {
  aloop_transport *t;
  size_t received, expected;
  unsigned char check;  /* expected next byte of the pattern */
  bool pattern_ok;
  int lost, lost_err, paused, resumed, eofs;
  bool keep_on_eof;
  char text[64];
  size_t text_len;
  aloop_future *done;   /* completed when connection_lost ran */
};

static unsigned char pattern_at(size_t i) { return (unsigned char)(i * 7 % 251); }

static void side_made(aloop_transport *t, void *ctx) { ((struct side *)ctx)->t = t; }

static void side_lost(aloop_transport *t, int err, void *ctx) {
  (void)t;
  struct side *s = ctx;
  s->lost++;
  s->lost_err = err;
  s->t = NULL;
  aloop_future_set_result(s->done, 0);
}

static void count_pattern(aloop_transport *t, const void *data, size_t n, void *ctx) {
  (void)t;
  struct side *s = ctx;
  const unsigned char *p = data;
  for (size_t i = 0; i < n; i++)
    if (p[i] != pattern_at(s->received + i)) s->pattern_ok = false;
  s->received += n;
}

static bool note_eof(aloop_transport *t, void *ctx) {
  (void)t;
  struct side *s = ctx;
  s->eofs++;
  return s->keep_on_eof;
}

static void echo_back(aloop_transport *t, const void *data, size_t n, void *ctx) {
  (void)ctx;
  ck_assert_int_eq(aloop_transport_write(t, data, n), 0);
}

static void init_side(struct side *s) {
  memset(s, 0, sizeof *s);
  s->pattern_ok = true;
  s->done = aloop_future_new(L, "connection");
}

static void wait_lost(struct side *s) {
  aloop_future *w = aloop_wait_for(L, aloop_future_ref(s->done), 60 * SEC);
  ck_assert_int_eq(aloop_run_until_complete(L, w), 0);
  aloop_future_release(w);
  aloop_future_release(s->done);
  aloop_future_release(s->done);
  ck_assert_int_eq(s->lost, 1);
}

static void write_pattern(aloop_transport *t, size_t from, size_t n) {
  unsigned char buf[65536];
  while (n) {
    size_t k = n < sizeof buf ? n : sizeof buf;
    for (size_t i = 0; i < k; i++) buf[i] = pattern_at(from + i);
    ck_assert_int_eq(aloop_transport_write(t, buf, k), 0);
    from += k, n -= k;
  }
}

/* ---- echo ------------------------------------------------------------------------------------- */

static void client_collect(aloop_transport *t, const void *data, size_t n, void *ctx) {
  struct side *s = ctx;
  count_pattern(t, data, n, ctx);
  if (s->received == s->expected) aloop_transport_close(t);
}

static const aloop_protocol echo_server = {.connection_made = side_made, .data_received = echo_back,
                                           .eof_received = note_eof, .connection_lost = side_lost};
static const aloop_protocol echo_client = {.connection_made = side_made,
                                           .data_received = client_collect,
                                           .connection_lost = side_lost};

START_TEST(test_a_protocol_echo_moves_every_byte_and_both_sides_close_cleanly) {
  int sv[2];
  make_socketpair(sv);
  struct side server, client;
  init_side(&server), init_side(&client);
  client.expected = 1u << 20;
  ck_assert_ptr_nonnull(aloop_transport_new(L, sv[0], &echo_server, &server));
  aloop_transport *c = aloop_transport_new(L, sv[1], &echo_client, &client);
  write_pattern(c, 0, client.expected); /* before connection_made: queued or sent, never lost */
  wait_lost(&client);
  wait_lost(&server);
  ck_assert_uint_eq(client.received, client.expected);
  ck_assert(client.pattern_ok);
  ck_assert_int_eq(client.lost_err, 0);
  ck_assert_int_eq(server.lost_err, 0);
  ck_assert_int_eq(server.eofs, 1);
}
END_TEST

/* ---- flow control ------------------------------------------------------------------------------ */

enum { BIG = 64 << 20, PIECE = 256 << 10 };
static size_t written, max_buffered;
static bool writer_paused;

static void pump(aloop_transport *t) {
  while (!writer_paused && written < BIG) {
    write_pattern(t, written, PIECE);
    written += PIECE;
    size_t b = aloop_transport_get_write_buffer_size(t);
    if (b > max_buffered) max_buffered = b;
  }
  if (written == BIG) aloop_transport_close(t);
}

static void writer_made(aloop_transport *t, void *ctx) {
  side_made(t, ctx);
  pump(t);
}
static void writer_pause(aloop_transport *t, void *ctx) {
  (void)t;
  ((struct side *)ctx)->paused++;
  writer_paused = true;
}
static void writer_resume(aloop_transport *t, void *ctx) {
  ((struct side *)ctx)->resumed++;
  writer_paused = false;
  if (!aloop_transport_is_closing(t)) pump(t);
}

static void resume_later(aloop_loop *loop, void *arg) {
  (void)loop;
  struct side *s = arg;
  if (s->t) aloop_transport_resume_reading(s->t);
}

static void slow_reader(aloop_transport *t, const void *data, size_t n, void *ctx) {
  struct side *s = ctx;
  size_t before = s->received;
  count_pattern(t, data, n, ctx);
  if (before / (4 << 20) != s->received / (4 << 20)) { /* every 4 MiB: stop for a moment */
    s->paused++;
    aloop_transport_pause_reading(t);
    aloop_call_later(L, 2 * MS, resume_later, s, NULL);
  }
}

START_TEST(test_64_mib_through_a_reader_that_pauses_keeps_the_writer_bounded) {
  int sv[2];
  make_socketpair(sv);
  written = max_buffered = 0;
  writer_paused = false;
  struct side w, r;
  init_side(&w), init_side(&r);
  static const aloop_protocol writer = {.connection_made = writer_made, .connection_lost = side_lost,
                                        .pause_writing = writer_pause, .resume_writing = writer_resume};
  static const aloop_protocol reader = {.connection_made = side_made, .data_received = slow_reader,
                                        .eof_received = note_eof, .connection_lost = side_lost};
  ck_assert_ptr_nonnull(aloop_transport_new(L, sv[0], &writer, &w));
  ck_assert_ptr_nonnull(aloop_transport_new(L, sv[1], &reader, &r));
  wait_lost(&w);
  wait_lost(&r);
  ck_assert_uint_eq(r.received, BIG);
  ck_assert(r.pattern_ok);
  ck_assert_int_gt(w.paused, 0);                        /* the writer was told to stop */
  ck_assert_int_eq(w.paused, w.resumed);
  ck_assert_int_gt(r.paused, 0);
  /* Never more queued than the high mark plus the one write that crossed it. */
  ck_assert_uint_le(max_buffered, ALOOP_WRITE_HIGH_DEFAULT + PIECE);
  ck_assert_int_eq(w.lost_err, 0);
}
END_TEST

/* ---- half-close ------------------------------------------------------------------------------- */

static void collect_text(aloop_transport *t, const void *data, size_t n, void *ctx) {
  (void)t;
  struct side *s = ctx;
  ck_assert_uint_le(s->text_len + n, sizeof s->text);
  memcpy(s->text + s->text_len, data, n);
  s->text_len += n;
}

static void ping_then_eof(aloop_transport *t, void *ctx) {
  side_made(t, ctx);
  ck_assert_int_eq(aloop_transport_write(t, "ping", 4), 0);
  ck_assert_int_eq(aloop_transport_write_eof(t), 0);
  ck_assert_int_eq(aloop_transport_write(t, "late", 4), -EPIPE);
}

static bool answer_at_eof(aloop_transport *t, void *ctx) {
  struct side *s = ctx;
  s->eofs++;
  ck_assert_uint_eq(s->text_len, 4);
  ck_assert(memcmp(s->text, "ping", 4) == 0);
  aloop_transport_write(t, "pong", 4); /* the other side still reads */
  aloop_transport_close(t);            /* flushes "pong", then closes */
  return true;
}

START_TEST(test_write_eof_half_closes_and_the_other_direction_still_works) {
  int sv[2];
  make_socketpair(sv);
  struct side a, b;
  init_side(&a), init_side(&b);
  static const aloop_protocol pa = {.connection_made = ping_then_eof, .data_received = collect_text,
                                    .eof_received = note_eof, .connection_lost = side_lost};
  static const aloop_protocol pb = {.connection_made = side_made, .data_received = collect_text,
                                    .eof_received = answer_at_eof, .connection_lost = side_lost};
  aloop_transport_new(L, sv[0], &pa, &a);
  aloop_transport_new(L, sv[1], &pb, &b);
  wait_lost(&a);
  wait_lost(&b);
  ck_assert_uint_eq(a.text_len, 4);
  ck_assert(memcmp(a.text, "pong", 4) == 0);
  ck_assert_int_eq(a.eofs, 1);
  ck_assert_int_eq(b.eofs, 1);
}
END_TEST

/* ---- abort and reset -------------------------------------------------------------------------- */

START_TEST(test_abort_with_queued_data_closes_at_once) {
  int sv[2];
  make_socketpair(sv); /* sv[1] never reads */
  struct side a;
  init_side(&a);
  static const aloop_protocol pa = {.connection_made = side_made, .connection_lost = side_lost};
  aloop_transport *t = aloop_transport_new(L, sv[0], &pa, &a);
  write_pattern(t, 0, 8u << 20);
  aloop_run_once(L, 0);
  ck_assert_uint_gt(aloop_transport_get_write_buffer_size(t), 0);
  aloop_transport_abort(t);
  ck_assert_int_eq(aloop_transport_write(t, "x", 1), -EPIPE);
  wait_lost(&a);
  ck_assert_int_eq(a.lost_err, 0);
  close(sv[1]);
}
END_TEST

static void keep_writing(aloop_transport *t, void *ctx) {
  side_made(t, ctx);
  write_pattern(t, 0, 4u << 20);
}

START_TEST(test_a_peer_reset_mid_write_is_reported_to_connection_lost) {
  int lfd, cfd, sfd = tcp_connected(&lfd, &cfd);
  struct side a;
  init_side(&a);
  static const aloop_protocol pa = {.connection_made = keep_writing, .connection_lost = side_lost};
  aloop_transport_new(L, cfd, &pa, &a);
  aloop_run_once(L, 0);
  struct linger lg = {1, 0};
  setsockopt(sfd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  close(sfd); /* RST, with our data unread */
  wait_lost(&a);
  ck_assert_msg(a.lost_err == -ECONNRESET || a.lost_err == -EPIPE, "lost with %d", a.lost_err);
  close(lfd);
}
END_TEST

/* ---- paused reading --------------------------------------------------------------------------- */

static void pause_at_once(aloop_transport *t, void *ctx) {
  side_made(t, ctx);
  aloop_transport_pause_reading(t);
}

START_TEST(test_paused_reading_holds_data_until_resumed) {
  int sv[2];
  make_socketpair(sv);
  struct side b;
  init_side(&b);
  static const aloop_protocol pb = {.connection_made = pause_at_once, .data_received = collect_text,
                                    .eof_received = note_eof, .connection_lost = side_lost};
  aloop_transport *t = aloop_transport_new(L, sv[1], &pb, &b);
  ck_assert_int_eq(write(sv[0], "hello", 5), 5);
  for (int i = 0; i < 5; i++) aloop_run_once(L, 10 * MS);
  ck_assert_uint_eq(b.text_len, 0);
  aloop_transport_resume_reading(t);
  close(sv[0]);
  wait_lost(&b);
  ck_assert_uint_eq(b.text_len, 5);
  ck_assert(memcmp(b.text, "hello", 5) == 0);
  ck_assert_int_eq(b.eofs, 1);
}
END_TEST

/* ---- what arrives past a pause ------------------------------------------------------------------ */

enum { PINGS = 40, FLOOD = 8 << 20 };

struct flood {
  aloop_transport *t;
  size_t pings, received;
  uint64_t bulk_iteration;  /* when the first bulk chunk came */
  int phase;                /* 0 pings, 1 flood before the pause, 2 paused, 3 resumed, 4 measured */
  size_t past_pause;        /* the first delivery after the resume: what was read past the pause */
  unsigned char *out;       /* the peer's side */
  size_t sent;
  int peer;
};

static void flood_made(aloop_transport *t, void *ctx) { ((struct flood *)ctx)->t = t; }

static void flood_resume(aloop_loop *loop, void *arg) {
  (void)loop;
  struct flood *f = arg;
  f->phase = 3;
  aloop_transport_resume_reading(f->t);
}

static void flood_received(aloop_transport *t, const void *data, size_t n, void *ctx) {
  (void)data;
  struct flood *f = ctx;
  aloop_stats st;
  aloop_get_stats(L, &st);
  if (f->phase == 0) {
    f->pings += n;
    return;
  }
  f->received += n;
  if (f->phase == 1 && !f->bulk_iteration) f->bulk_iteration = st.iterations;
  /* Pause in a later iteration than the first bulk chunk's: whatever the connection read with
   * until then, it has had the time to take its reads bounded. */
  if (f->phase == 1 && st.iterations > f->bulk_iteration + 1) {
    f->phase = 2;
    aloop_transport_pause_reading(t);
    aloop_call_later(L, 20 * MS, flood_resume, f, NULL);
  } else if (f->phase == 3) {
    f->past_pause = n;
    f->phase = 4;
  }
}

static void flood_write(aloop_loop *loop, int fd, void *arg) {
  struct flood *f = arg;
  while (f->sent < FLOOD) {
    ssize_t n = write(fd, f->out + f->sent, FLOOD - f->sent);
    if (n <= 0) return; /* EAGAIN: called again when there is room */
    f->sent += (size_t)n;
  }
  aloop_remove_writer(loop, fd);
}

/* A connection that talked in small messages (a multishot receive pays there) and then receives
 * a flood: the bulk chunk makes its reads bounded, so when its protocol pauses, at most one chunk
 * more is read for it, not whatever a multishot receive would pull from the socket meanwhile. */
START_TEST(test_a_flood_after_small_messages_is_read_bounded_past_a_pause) {
  int lfd, cfd;
  int sfd = tcp_connected(&lfd, &cfd);
  int big = 4 << 20; /* a deep socket buffer: a multishot receive could read megabytes at once */
  setsockopt(sfd, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
  setsockopt(cfd, SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
  static struct flood f;
  memset(&f, 0, sizeof f);
  f.peer = cfd;
  static const aloop_protocol proto = {.connection_made = flood_made, .data_received = flood_received};
  ck_assert_ptr_nonnull(aloop_transport_new(L, sfd, &proto, &f));
  for (size_t i = 0; i < PINGS; i++) {
    ck_assert_int_eq(write(cfd, "p", 1), 1);
    for (int k = 0; k < 10000 && f.pings <= i; k++) aloop_run_once(L, 10 * MS);
    ck_assert_uint_eq(f.pings, i + 1);
  }
  f.out = calloc(1, FLOOD);
  f.phase = 1;
  ck_assert_int_eq(aloop_add_writer(L, cfd, flood_write, &f), 0);
  for (int k = 0; k < 100000 && f.received < FLOOD; k++) aloop_run_once(L, 10 * MS);
  ck_assert_uint_eq(f.received, FLOOD);
  ck_assert_int_eq(f.phase, 4);
  ck_assert_msg(f.past_pause <= 64 * 1024, "%zu bytes were read past the pause", f.past_pause);
  free(f.out);
  aloop_remove_writer(L, cfd);
  close(cfd);
  aloop_transport_abort(f.t);
  aloop_run_once(L, 0);
  aloop_run_once(L, 0);
  aloop_close(L, lfd);
}
END_TEST

/* ---- buffered protocols ------------------------------------------------------------------------- */

enum { BUFFERED_TOTAL = 4 << 20 };

struct buffered {
  struct side side;
  unsigned char buf[4096];
  size_t room, updates, over_room;
  unsigned char *out;
  size_t sent;
};

/* Rooms of every size from 1 byte to the whole buffer, in turn. */
static void *buffered_get(aloop_transport *t, size_t hint, size_t *n, void *ctx) {
  (void)t, (void)hint;
  struct buffered *b = ctx;
  static const size_t rooms[] = {1, 7, 100, 4096, 1500, 3};
  b->room = rooms[b->updates % (sizeof rooms / sizeof rooms[0])];
  *n = b->room;
  return b->buf;
}

static void buffered_resume(aloop_loop *loop, void *arg) {
  (void)loop;
  struct buffered *b = arg;
  if (b->side.t) aloop_transport_resume_reading(b->side.t);
}

static void buffered_updated(aloop_transport *t, size_t n, void *ctx) {
  struct buffered *b = ctx;
  if (n > b->room || !n) b->over_room++;
  count_pattern(t, b->buf, n, &b->side);
  if (++b->updates % 97 == 0) { /* pause between two pieces of one read, now and then */
    aloop_transport_pause_reading(t);
    ck_assert_int_eq(aloop_call_later(L, MS, buffered_resume, b, NULL), 0);
  }
}

static void buffered_write(aloop_loop *loop, int fd, void *arg) {
  struct buffered *b = arg;
  while (b->sent < BUFFERED_TOTAL) {
    ssize_t n = write(fd, b->out + b->sent, BUFFERED_TOTAL - b->sent);
    if (n <= 0) return; /* EAGAIN: called again when there is room */
    b->sent += (size_t)n;
  }
  aloop_remove_writer(loop, fd);
  shutdown(fd, SHUT_WR);
}

/* asyncio's BufferedProtocol: the transport reads into the protocol's own buffer, never more than
 * the room it was given, in order, through pauses that fall between two pieces of one read. */
START_TEST(test_a_buffered_protocol_gets_every_byte_within_the_room_it_gives) {
  int lfd, cfd;
  int sfd = tcp_connected(&lfd, &cfd);
  static struct buffered b;
  memset(&b, 0, sizeof b);
  init_side(&b.side);
  b.out = malloc(BUFFERED_TOTAL);
  for (size_t i = 0; i < BUFFERED_TOTAL; i++) b.out[i] = pattern_at(i);
  static const aloop_protocol proto = {.connection_made = side_made, .get_buffer = buffered_get,
                                       .buffer_updated = buffered_updated,
                                       .eof_received = note_eof, .connection_lost = side_lost};
  ck_assert_ptr_nonnull(aloop_transport_new(L, sfd, &proto, &b));
  ck_assert_int_eq(aloop_add_writer(L, cfd, buffered_write, &b), 0);
  wait_lost(&b.side);
  ck_assert_uint_eq(b.side.received, BUFFERED_TOTAL);
  ck_assert(b.side.pattern_ok);
  ck_assert_uint_eq(b.over_room, 0);
  ck_assert_int_eq(b.side.eofs, 1);
  ck_assert_int_eq(b.side.lost_err, 0);
  free(b.out);
  close(cfd);
  aloop_close(L, lfd);
}
END_TEST

/* A plain protocol that hands the connection to a buffered one partway (as start_tls does, and
 * asyncio's set_protocol): the second gets every byte the first did not, in order. */
static const aloop_protocol buffered_proto = {.connection_made = side_made,
                                              .get_buffer = buffered_get,
                                              .buffer_updated = buffered_updated,
                                              .eof_received = note_eof,
                                              .connection_lost = side_lost};

static void switch_after_a_mebibyte(aloop_transport *t, const void *data, size_t n, void *ctx) {
  struct buffered *b = ctx; /* its side is its first member: the plain protocol's ctx too */
  count_pattern(t, data, n, &b->side);
  if (b->side.received >= (1 << 20)) aloop_transport_set_protocol(t, &buffered_proto, b);
}

START_TEST(test_set_protocol_hands_a_connection_to_a_buffered_protocol_midway) {
  int lfd, cfd;
  int sfd = tcp_connected(&lfd, &cfd);
  static struct buffered b;
  memset(&b, 0, sizeof b);
  init_side(&b.side);
  b.out = malloc(BUFFERED_TOTAL);
  for (size_t i = 0; i < BUFFERED_TOTAL; i++) b.out[i] = pattern_at(i);
  static const aloop_protocol plain = {.connection_made = side_made,
                                       .data_received = switch_after_a_mebibyte,
                                       .eof_received = note_eof, .connection_lost = side_lost};
  ck_assert_ptr_nonnull(aloop_transport_new(L, sfd, &plain, &b));
  ck_assert_int_eq(aloop_add_writer(L, cfd, buffered_write, &b), 0);
  wait_lost(&b.side);
  ck_assert_uint_eq(b.side.received, BUFFERED_TOTAL);
  ck_assert(b.side.pattern_ok);
  ck_assert_uint_gt(b.updates, 0); /* the buffered protocol had its share */
  ck_assert_uint_eq(b.over_room, 0);
  ck_assert_int_eq(b.side.eofs, 1);
  free(b.out);
  close(cfd);
  aloop_close(L, lfd);
}
END_TEST

static void *no_buffer(aloop_transport *t, size_t hint, size_t *n, void *ctx) {
  (void)t, (void)hint, (void)n, (void)ctx;
  return NULL;
}

static void never_updated(aloop_transport *t, size_t n, void *ctx) {
  (void)t, (void)n, (void)ctx;
  ck_abort_msg("buffer_updated without a buffer");
}

START_TEST(test_a_buffered_protocol_without_a_buffer_fails_its_connection_in_words) {
  int sv[2];
  make_socketpair(sv);
  struct side b;
  init_side(&b);
  static const aloop_protocol proto = {.connection_made = side_made, .get_buffer = no_buffer,
                                       .buffer_updated = never_updated,
                                       .connection_lost = side_lost};
  reports_expected = 1;
  ck_assert_ptr_nonnull(aloop_transport_new(L, sv[1], &proto, &b));
  ck_assert_int_eq(write(sv[0], "hello", 5), 5);
  wait_lost(&b);
  ck_assert_int_eq(b.lost_err, -ENOBUFS);
  ck_assert_msg(strstr(reports.message, "no buffer"), "%s", reports.message);
  close(sv[0]);
}
END_TEST

/* ---- a long round of callbacks ---------------------------------------------------------------- */

struct long_round {
  aloop_transport *t;
  int peer;
  bool seen; /* the peer had the early write while the slow callback still ran */
};

static void write_early(aloop_loop *loop, void *arg) {
  (void)loop;
  struct long_round *r = arg;
  ck_assert_int_eq(aloop_transport_write(r->t, "early", 5), 0);
}

/* An application computing for a while after the write (5 ms, longer than the driver may hold
 * requests back). */
static void compute(aloop_loop *loop, void *arg) {
  (void)loop, (void)arg;
  struct timespec start, now;
  clock_gettime(CLOCK_MONOTONIC, &start);
  do clock_gettime(CLOCK_MONOTONIC, &now);
  while ((now.tv_sec - start.tv_sec) * 1000000000L + (now.tv_nsec - start.tv_nsec) < 5 * MS);
}

/* The next callback of the round watches the peer, giving up after 10 s (a driver that holds
 * the write until the round ends never delivers it meanwhile). */
static void watch_peer(aloop_loop *loop, void *arg) {
  (void)loop;
  struct long_round *r = arg;
  char buf[8];
  for (int i = 0; i < 10000 && !r->seen; i++) {
    r->seen = recv(r->peer, buf, sizeof buf, MSG_DONTWAIT) == 5;
    if (!r->seen) usleep(1000);
  }
}

/* Requests a driver queues for its next poll (io_uring's sends) reach the kernel during a long
 * round of callbacks, not when it ends: an answer written early is not held back by the slow
 * callbacks after it. */
START_TEST(test_a_write_made_early_in_a_long_round_reaches_the_peer_during_it) {
  int sv[2];
  make_socketpair(sv);
  struct side s;
  init_side(&s);
  static const aloop_protocol proto = {.connection_made = side_made, .connection_lost = side_lost};
  ck_assert_ptr_nonnull(aloop_transport_new(L, sv[1], &proto, &s));
  for (int i = 0; i < 100 && !s.t; i++) run_at_most(L, 10 * MS);
  ck_assert_ptr_nonnull(s.t);
  struct long_round r = {.t = s.t, .peer = sv[0]};
  ck_assert_int_eq(aloop_call_soon(L, write_early, &r, NULL), 0);
  ck_assert_int_eq(aloop_call_soon(L, compute, &r, NULL), 0);
  ck_assert_int_eq(aloop_call_soon(L, watch_peer, &r, NULL), 0);
  aloop_run_once(L, 0); /* one round: the three callbacks */
  ck_assert_msg(r.seen, "the write reached the peer only after the round");
  aloop_transport_abort(s.t);
  wait_lost(&s);
  close(sv[0]);
}
END_TEST

TCase *conformance_transport(void) {
  TCase *tc = conformance_tcase("transport");
  tcase_add_test(tc, test_a_protocol_echo_moves_every_byte_and_both_sides_close_cleanly);
  tcase_add_test(tc, test_64_mib_through_a_reader_that_pauses_keeps_the_writer_bounded);
  tcase_add_test(tc, test_a_flood_after_small_messages_is_read_bounded_past_a_pause);
  tcase_add_test(tc, test_write_eof_half_closes_and_the_other_direction_still_works);
  tcase_add_test(tc, test_abort_with_queued_data_closes_at_once);
  tcase_add_test(tc, test_a_peer_reset_mid_write_is_reported_to_connection_lost);
  tcase_add_test(tc, test_paused_reading_holds_data_until_resumed);
  tcase_add_test(tc, test_a_buffered_protocol_gets_every_byte_within_the_room_it_gives);
  tcase_add_test(tc, test_a_buffered_protocol_without_a_buffer_fails_its_connection_in_words);
  tcase_add_test(tc, test_set_protocol_hands_a_connection_to_a_buffered_protocol_midway);
  tcase_add_test(tc, test_a_write_made_early_in_a_long_round_reaches_the_peer_during_it);
  return tc;
}
