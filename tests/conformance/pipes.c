/* Pipe transports and streams: 64 MiB through a pipe to a slow reader with bounded buffers, end
 * of stream when the writer closes, EPIPE when the reader goes away, lines read from a pipe and
 * from a pty (as from stdin), and what is not a pipe refused. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

/* ---- 64 MiB to a slow reader ------------------------------------------------------------------ */

enum { TOTAL = 64 << 20, PIECE = 64 << 10, PAUSE_EVERY = 4 << 20 };

static unsigned char at(size_t i) { return (unsigned char)(i * 31 % 253); }

struct pipe_run {
  aloop_transport *w, *r;
  size_t sent, received, max_queued, next_pause;
  bool paused, pattern_ok;
  int w_lost, r_lost, w_err, r_err, eofs;
};

static void pump(struct pipe_run *p) {
  static unsigned char piece[PIECE];
  while (!p->paused && p->sent < TOTAL) {
    for (size_t i = 0; i < PIECE; i++) piece[i] = at(p->sent + i);
    ck_assert_int_eq(aloop_transport_write(p->w, piece, PIECE), 0);
    p->sent += PIECE;
    size_t queued = aloop_transport_get_write_buffer_size(p->w);
    if (queued > p->max_queued) p->max_queued = queued;
  }
  if (p->sent == TOTAL && !p->paused) ck_assert_int_eq(aloop_transport_write_eof(p->w), 0);
}

static void w_made(aloop_transport *t, void *ctx) {
  struct pipe_run *p = ctx;
  p->w = t;
  pump(p);
}
static void w_pause(aloop_transport *t, void *ctx) {
  (void)t;
  ((struct pipe_run *)ctx)->paused = true;
}
static void w_resume(aloop_transport *t, void *ctx) {
  (void)t;
  struct pipe_run *p = ctx;
  p->paused = false;
  if (p->sent < TOTAL) pump(p);
  else ck_assert_int_eq(aloop_transport_write_eof(p->w), 0);
}
static void w_lost(aloop_transport *t, int err, void *ctx) {
  (void)t;
  struct pipe_run *p = ctx;
  p->w_lost++;
  p->w_err = err;
}

static void r_resume(aloop_loop *loop, void *arg) {
  (void)loop;
  struct pipe_run *p = arg;
  if (p->r) aloop_transport_resume_reading(p->r);
}
static void r_made(aloop_transport *t, void *ctx) { ((struct pipe_run *)ctx)->r = t; }
static void r_data(aloop_transport *t, const void *data, size_t n, void *ctx) {
  struct pipe_run *p = ctx;
  const unsigned char *b = data;
  for (size_t i = 0; i < n; i++)
    if (b[i] != at(p->received + i)) p->pattern_ok = false;
  p->received += n;
  if (p->received >= p->next_pause) { /* a slow reader: it stops now and then */
    p->next_pause += PAUSE_EVERY;
    aloop_transport_pause_reading(t);
    ck_assert_int_eq(aloop_call_later(L, 2 * MS, r_resume, p, NULL), 0);
  }
}
static bool r_eof(aloop_transport *t, void *ctx) {
  (void)t;
  ((struct pipe_run *)ctx)->eofs++;
  return false;
}
static void r_lost(aloop_transport *t, int err, void *ctx) {
  (void)t;
  struct pipe_run *p = ctx;
  p->r = NULL;
  p->r_lost++;
  p->r_err = err;
  aloop_stop(L);
}

START_TEST(test_64_mib_through_a_pipe_to_a_slow_reader_with_bounded_buffers) {
  int fds[2];
  make_pipe(fds);
  static struct pipe_run p;
  memset(&p, 0, sizeof p);
  p.pattern_ok = true;
  p.next_pause = PAUSE_EVERY;
  static const aloop_protocol writer = {.connection_made = w_made, .pause_writing = w_pause,
                                        .resume_writing = w_resume, .connection_lost = w_lost};
  static const aloop_protocol reader = {.connection_made = r_made, .data_received = r_data,
                                        .eof_received = r_eof, .connection_lost = r_lost};
  ck_assert_ptr_nonnull(aloop_connect_write_pipe(L, fds[1], &writer, &p));
  ck_assert_ptr_nonnull(aloop_connect_read_pipe(L, fds[0], &reader, &p));
  ck_assert_int_eq(run_at_most(L, 120 * SEC), 1);
  aloop_run_once(L, 0); /* the writer's connection_lost, if it is still due */
  ck_assert_uint_eq(p.received, TOTAL);
  ck_assert(p.pattern_ok);
  ck_assert_int_eq(p.eofs, 1);
  ck_assert_int_eq(p.r_lost, 1);
  ck_assert_int_eq(p.r_err, 0);
  ck_assert_int_eq(p.w_lost, 1);
  ck_assert_int_eq(p.w_err, 0);
  /* The writer never queued more than the high mark plus the piece that crossed it. */
  ck_assert_uint_le(p.max_queued, ALOOP_WRITE_HIGH_DEFAULT + PIECE);
}
END_TEST

/* ---- ends ------------------------------------------------------------------------------------- */

struct ends {
  char text[64];
  size_t len;
  int eofs, lost, err;
};
static void ends_data(aloop_transport *t, const void *data, size_t n, void *ctx) {
  (void)t;
  struct ends *e = ctx;
  ck_assert_uint_le(e->len + n, sizeof e->text);
  memcpy(e->text + e->len, data, n);
  e->len += n;
}
static bool ends_eof(aloop_transport *t, void *ctx) {
  (void)t;
  ((struct ends *)ctx)->eofs++;
  return false;
}
static void ends_lost(aloop_transport *t, int err, void *ctx) {
  (void)t;
  struct ends *e = ctx;
  e->lost++;
  e->err = err;
  aloop_stop(L);
}
static const aloop_protocol ends_proto = {.data_received = ends_data, .eof_received = ends_eof,
                                          .connection_lost = ends_lost};

START_TEST(test_a_read_pipe_gets_the_bytes_then_the_end_when_the_writer_closes) {
  int fds[2];
  make_pipe(fds);
  struct ends e = {0};
  ck_assert_ptr_nonnull(aloop_connect_read_pipe(L, fds[0], &ends_proto, &e));
  ck_assert_int_eq(write(fds[1], "abc", 3), 3);
  close(fds[1]);
  ck_assert_int_eq(run_at_most(L, 30 * SEC), 1);
  ck_assert_uint_eq(e.len, 3);
  ck_assert(memcmp(e.text, "abc", 3) == 0);
  ck_assert_int_eq(e.eofs, 1);
  ck_assert_int_eq(e.lost, 1);
  ck_assert_int_eq(e.err, 0);
}
END_TEST

START_TEST(test_a_write_pipe_whose_reader_went_away_ends_with_epipe_and_the_process_lives) {
  int fds[2];
  make_pipe(fds);
  close(fds[0]);
  struct ends e = {0};
  aloop_transport *t = aloop_connect_write_pipe(L, fds[1], &ends_proto, &e);
  ck_assert_ptr_nonnull(t);
  ck_assert_int_eq(aloop_transport_write(t, "lost", 4), 0); /* the error comes to connection_lost */
  ck_assert_int_eq(run_at_most(L, 30 * SEC), 1);
  ck_assert_int_eq(e.lost, 1);
  ck_assert_int_eq(e.err, -EPIPE);
  ck_assert_str_eq(aloop_strerror(e.err), strerror(EPIPE));
}
END_TEST

/* The reader goes away while the write pipe is idle, then while bytes wait in its queue: the
 * transport ends at once, with no write to find it out (0, then -EPIPE), as asyncio's does. */
START_TEST(test_a_write_pipe_ends_as_soon_as_its_reader_goes_away) {
  for (int queued = 0; queued < 2; queued++) {
    int fds[2];
    make_pipe(fds);
    struct ends e = {0};
    aloop_transport *t = aloop_connect_write_pipe(L, fds[1], &ends_proto, &e);
    ck_assert_ptr_nonnull(t);
    static char fill[1 << 16];
    size_t written = 0;
    if (queued) /* more than a pipe holds (64 KiB), so some stays in the queue */
      while (written < (1 << 20)) {
        ck_assert_int_eq(aloop_transport_write(t, fill, sizeof fill), 0);
        written += sizeof fill;
      }
    for (int i = 0; i < 5; i++) aloop_run_once(L, 0); /* made; the pipe fills */
    ck_assert_int_eq(e.lost, 0);
    if (queued) ck_assert_uint_gt(aloop_transport_get_write_buffer_size(t), 0);
    close(fds[0]);
    ck_assert_int_eq(run_at_most(L, 30 * SEC), 1);
    ck_assert_int_eq(e.lost, 1);
    ck_assert_msg(e.err == (queued ? -EPIPE : 0), "%s: connection_lost got %d",
                  queued ? "bytes queued" : "idle", e.err);
  }
}
END_TEST

START_TEST(test_one_direction_each_and_only_pipes_ttys_and_sockets) {
  int fds[2];
  make_pipe(fds);
  struct ends e = {0};
  aloop_transport *r = aloop_connect_read_pipe(L, fds[0], &ends_proto, &e);
  aloop_transport *w = aloop_connect_write_pipe(L, fds[1], &ends_proto, &e);
  ck_assert_int_eq(aloop_transport_write(r, "x", 1), -EBADF);
  ck_assert_int_eq(aloop_transport_write_eof(r), -EBADF);
  aloop_transport_abort(r);
  aloop_transport_abort(w);
  while (e.lost < 2) ck_assert_int_eq(run_at_most(L, 30 * SEC), 1);
  char path[] = "/tmp/aloop-pipes-XXXXXX";
  int file = mkstemp(path);
  ck_assert_int_ge(file, 0);
  unlink(path);
  errno = 0;
  ck_assert_ptr_null(aloop_connect_read_pipe(L, file, &ends_proto, &e));
  ck_assert_int_eq(errno, EINVAL);
  ck_assert_int_eq(fcntl(file, F_GETFD), -1); /* owned, so closed on failure */
}
END_TEST

/* ---- streams over pipes ----------------------------------------------------------------------- */

enum { LINES = 20000 };

static int64_t write_lines(void *arg) {
  aloop_stream *s = arg;
  char line[64];
  char nothing[4];
  if (aloop_await(aloop_stream_read(s, nothing, sizeof nothing)) != 0) return -EPROTO;
  for (int i = 0; i < LINES; i++) {
    int n = snprintf(line, sizeof line, "line %d of a pipe\n", i);
    if (aloop_stream_write(s, line, (size_t)n) < 0) return -EPIPE;
    int64_t err = aloop_await(aloop_stream_drain(s));
    if (err < 0) return err;
  }
  return aloop_await(aloop_stream_close(s));
}

static int64_t read_lines(void *arg) {
  aloop_stream *s = arg;
  char line[64], want[64];
  int64_t n;
  if (aloop_stream_write(s, "x", 1) != -EBADF) return -EPROTO;
  for (int i = 0; i < LINES; i++) {
    if ((n = aloop_await(aloop_stream_readline(s, line, sizeof line))) <= 0) return n ? n : -EPIPE;
    int k = snprintf(want, sizeof want, "line %d of a pipe\n", i);
    if (n != k || memcmp(line, want, (size_t)k) != 0) return -EPROTO;
  }
  n = aloop_await(aloop_stream_readline(s, line, sizeof line)); /* the end: 0 */
  aloop_future_release(aloop_stream_close(s));
  return n;
}

START_TEST(test_streams_carry_lines_through_a_pipe_one_direction_each) {
  int fds[2];
  make_pipe(fds);
  aloop_stream *w = aloop_open_write_pipe(L, fds[1]);
  aloop_stream *r = aloop_open_read_pipe(L, fds[0], 0);
  ck_assert_ptr_nonnull(w);
  ck_assert_ptr_nonnull(r);
  aloop_future *wt = aloop_task_spawn(L, write_lines, w, NULL);
  aloop_future *rt = aloop_task_spawn(L, read_lines, r, NULL);
  ck_assert_int_eq(run_within(wt, 60 * SEC), 0);
  ck_assert_int_eq(run_within(rt, 60 * SEC), 0);
}
END_TEST

static int64_t read_one_line(void *arg) {
  aloop_stream *s = arg;
  char line[64];
  int64_t n = aloop_await(aloop_stream_readline(s, line, sizeof line));
  if (n == 6 && memcmp(line, "hello\n", 6) != 0) n = -EPROTO;
  aloop_future_release(aloop_stream_close(s));
  return n;
}

/* A terminal, as stdin is when a person types: a pty's slave side read line by line. */
START_TEST(test_a_stream_reads_lines_from_a_pty_as_from_stdin) {
  int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
  ck_assert_int_ge(master, 0);
  ck_assert_int_eq(grantpt(master), 0);
  ck_assert_int_eq(unlockpt(master), 0);
  int slave = open(ptsname(master), O_RDWR | O_NOCTTY | O_CLOEXEC);
  ck_assert_int_ge(slave, 0);
  aloop_stream *s = aloop_open_read_pipe(L, slave, 0);
  ck_assert_ptr_nonnull(s);
  aloop_future *t = aloop_task_spawn(L, read_one_line, s, NULL);
  ck_assert_int_eq(write(master, "hello\n", 6), 6); /* a line typed at the terminal */
  ck_assert_int_eq(run_within(t, 30 * SEC), 6);
  for (int i = 0; i < 3; i++) aloop_run_once(L, 0); /* the transport lets go of the slave */
  close(master);
}
END_TEST

TCase *conformance_pipes(void) {
  TCase *tc = conformance_tcase("pipes");
  tcase_add_test(tc, test_64_mib_through_a_pipe_to_a_slow_reader_with_bounded_buffers);
  tcase_add_test(tc, test_a_read_pipe_gets_the_bytes_then_the_end_when_the_writer_closes);
  tcase_add_test(tc, test_a_write_pipe_whose_reader_went_away_ends_with_epipe_and_the_process_lives);
  tcase_add_test(tc, test_a_write_pipe_ends_as_soon_as_its_reader_goes_away);
  tcase_add_test(tc, test_one_direction_each_and_only_pipes_ttys_and_sockets);
  tcase_add_test(tc, test_streams_carry_lines_through_a_pipe_one_direction_each);
  tcase_add_test(tc, test_a_stream_reads_lines_from_a_pty_as_from_stdin);
  return tc;
}
