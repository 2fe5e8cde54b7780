/* Sending files: aloop_transport_sendfile and aloop_sock_sendfile over loopback TCP, each test
 * every way: natively (sendfile(2), or io_uring's splices) and by the copy (ALOOP_SENDFILE=copy),
 * files of 0 bytes to 1 GiB (sparse) arrive whole, byte for byte; offsets and counts; queued
 * writes go first and writes wait for the end; a peer that goes away mid-transfer, abort and
 * close during one; a pipe transport (always the copy); what is refused. */
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

enum { KIB = 1024, MIB = 1024 * 1024 };
#define LEN(a) (sizeof(a) / sizeof((a)[0]))
#define GIB (INT64_C(1024) * MIB)

/* The paths every test runs: native, and the copy with its reads made at once from the page
 * cache where they can be and on the executor where not (ALOOP_FILE_NOWAIT=0 forces that on
 * select and libev). ALOOP_SENDFILE is read when a transfer starts, ALOOP_FILE_NOWAIT per read. */
static const char *const modes[] = {NULL, "copy", "copy, no nowait"};
static void set_mode(const char *mode) {
  if (mode)
    setenv("ALOOP_SENDFILE", "copy", 1);
  else
    unsetenv("ALOOP_SENDFILE");
  if (mode && strcmp(mode, "copy"))
    setenv("ALOOP_FILE_NOWAIT", "0", 1);
  else
    unsetenv("ALOOP_FILE_NOWAIT");
}

/* ---- files -------------------------------------------------------------------------------------
 * A test file's byte at position i: a pattern with period 251 (a prime: no chunk boundary lines
 * up with it), except in a sparse file, where it is zero between the first and last MARK bytes. */
enum { MARK = 4096 };
static unsigned char pattern_at(uint64_t i) { return (unsigned char)(i * 7 % 251 + 1); }

struct file {
  int fd;
  int64_t size;
  bool sparse;
};

static unsigned char file_byte(const struct file *f, uint64_t i) {
  if (f->sparse && i >= MARK && i + MARK < (uint64_t)f->size) return 0;
  return pattern_at(i);
}

static void write_at(int fd, int64_t at, int64_t n) {
  unsigned char buf[64 * KIB];
  while (n > 0) {
    size_t k = n < (int64_t)sizeof buf ? (size_t)n : sizeof buf;
    for (size_t i = 0; i < k; i++) buf[i] = pattern_at((uint64_t)at + i);
    ck_assert_int_eq(pwrite(fd, buf, k, at), (ssize_t)k);
    at += (int64_t)k, n -= (int64_t)k;
  }
}

/* A file of `size` bytes in /tmp, unlinked at once (closing it frees it). A sparse one holds
 * only its first and last MARK bytes: the rest is a hole, zeros that take no disk. */
static struct file make_file(int64_t size, bool sparse) {
  char path[] = "/tmp/aloop-sendfile-XXXXXX";
  struct file f = {.fd = mkstemp(path), .size = size, .sparse = sparse};
  ck_assert_int_ge(f.fd, 0);
  unlink(path);
  if (sparse && size > 2 * MARK) {
    ck_assert_int_eq(ftruncate(f.fd, size), 0);
    write_at(f.fd, 0, MARK);
    write_at(f.fd, size - MARK, MARK);
  } else {
    f.sparse = false;
    write_at(f.fd, 0, size);
  }
  ck_assert_int_eq(lseek(f.fd, 0, SEEK_SET), 0); /* the position must stay where it is */
  return f;
}

/* ---- the receiving side: checks every byte as it comes -------------------------------------- */

struct receiver {
  const struct file *file;
  uint64_t from;      /* the file offset of the first byte expected */
  uint64_t got;       /* bytes received */
  uint64_t bad;       /* how many differed from the file */
  size_t body_len;    /* the file's bytes expected, between the prefix and the suffix */
  const char *prefix, *suffix;
  uint64_t abort_after; /* > 0: abort (a peer that goes away) after this many bytes */
  int lost, lost_err;
  aloop_future *done;
};

static const unsigned char zeros[64 * KIB];

/* Compare data with the file from file offset `at`: zeros by memcmp, the rest byte by byte. */
static uint64_t mismatches(const struct file *f, uint64_t at, const unsigned char *p, size_t n) {
  uint64_t bad = 0;
  for (size_t i = 0; i < n;) {
    uint64_t pos = at + i;
    size_t run = n - i < sizeof zeros ? n - i : sizeof zeros;
    if (f->sparse && pos >= MARK && pos + run + MARK <= (uint64_t)f->size) {
      bad += memcmp(p + i, zeros, run) != 0;
      i += run;
      continue;
    }
    bad += p[i] != file_byte(f, pos);
    i++;
  }
  return bad;
}

static uint64_t text_mismatches(const char *text, uint64_t at, const unsigned char *p, size_t n) {
  uint64_t bad = 0;
  for (size_t i = 0; i < n; i++) bad += p[i] != (unsigned char)text[at + i];
  return bad;
}

static void receive(aloop_transport *t, const void *data, size_t n, void *ctx) {
  struct receiver *r = ctx;
  const unsigned char *p = data;
  uint64_t pre = r->prefix ? strlen(r->prefix) : 0;
  uint64_t body = r->body_len; /* the file's part */
  for (size_t i = 0; i < n;) {
    uint64_t at = r->got + i;
    size_t k;
    if (at < pre) {
      k = (size_t)(pre - at) < n - i ? (size_t)(pre - at) : n - i;
      r->bad += text_mismatches(r->prefix, at, p + i, k);
    } else if (at < pre + body) {
      k = (size_t)(pre + body - at) < n - i ? (size_t)(pre + body - at) : n - i;
      r->bad += mismatches(r->file, r->from + (at - pre), p + i, k);
    } else { /* the suffix, and nothing after it */
      uint64_t s = at - pre - body, slen = r->suffix ? strlen(r->suffix) : 0;
      k = n - i;
      for (size_t j = 0; j < k; j++) r->bad += s + j >= slen || p[i + j] != r->suffix[s + j];
    }
    i += k;
  }
  r->got += n;
  if (r->abort_after && r->got >= r->abort_after) {
    r->abort_after = 0;
    aloop_transport_abort(t); /* unread bytes in the socket: the kernel answers with a reset */
  }
}

static void receiver_lost(aloop_transport *t, int err, void *ctx) {
  (void)t;
  struct receiver *r = ctx;
  r->lost++;
  r->lost_err = err;
  aloop_future_set_result(r->done, 0);
}

static const aloop_protocol receiving = {.data_received = receive,
                                         .connection_lost = receiver_lost};

/* ---- the sending side ------------------------------------------------------------------------ */

struct sender {
  aloop_transport *t;
  const struct file *file;
  int64_t offset;
  size_t count;
  const char *prefix, *suffix;
  bool close_at_once;   /* close right after starting: the file must still go out */
  bool abort_at_once;
  bool cancel_at_once;  /* cancel the sendfile's future: the transport carries on */
  int64_t outcome;
  char message[256];
  int write_during;     /* what a write answered while the file was being sent */
  int lost, lost_err;
  aloop_future *sent, *done;
};

static void sendfile_done(aloop_future *f, void *arg) {
  struct sender *s = arg;
  s->outcome = aloop_future_outcome(f);
  snprintf(s->message, sizeof s->message, "%s", aloop_future_message(f));
  if (s->t && !aloop_transport_is_closing(s->t)) {
    if (s->suffix) ck_assert_int_eq(aloop_transport_write(s->t, s->suffix, strlen(s->suffix)), 0);
    aloop_transport_close(s->t);
    aloop_future *late = aloop_transport_sendfile(s->t, s->file->fd, 0, 0); /* closing: refused */
    ck_assert_int_eq(aloop_future_outcome(late), -EPIPE);
    aloop_future_release(late);
  }
}

static void sender_made(aloop_transport *t, void *ctx) {
  struct sender *s = ctx;
  s->t = t;
  if (s->prefix) ck_assert_int_eq(aloop_transport_write(t, s->prefix, strlen(s->prefix)), 0);
  s->sent = aloop_transport_sendfile(t, s->file->fd, s->offset, s->count);
  ck_assert_ptr_nonnull(s->sent);
  /* Until the future is done (it may be at once: a small file fits in the socket's buffer). */
  s->write_during = aloop_future_done(s->sent) ? -EBUSY : aloop_transport_write(t, "x", 1);
  ck_assert_int_eq(aloop_future_add_done_callback(s->sent, sendfile_done, s), 0);
  if (s->cancel_at_once) ck_assert_int_eq(aloop_future_cancel(s->sent), 0);
  if (s->close_at_once) aloop_transport_close(t);
  if (s->abort_at_once) aloop_transport_abort(t);
}

static void sender_lost(aloop_transport *t, int err, void *ctx) {
  (void)t;
  struct sender *s = ctx;
  s->t = NULL;
  s->lost++;
  s->lost_err = err;
  aloop_future_set_result(s->done, 0);
}

static const aloop_protocol sending = {.connection_made = sender_made,
                                       .connection_lost = sender_lost};

static void wait_done(aloop_future *done) {
  aloop_future *w = aloop_wait_for(L, aloop_future_ref(done), 100 * SEC);
  ck_assert_int_eq(aloop_run_until_complete(L, w), 0);
  aloop_future_release(w);
  aloop_future_release(done); /* the reference given to wait_for, and our own */
  aloop_future_release(done);
}

/* Send s->file over a loopback TCP connection to r; runs until both transports are gone. */
static void transfer(struct sender *s, struct receiver *r) {
  int lfd, cfd;
  int sfd = tcp_connected(&lfd, &cfd);
  close(lfd);
  s->done = aloop_future_new(L, "sender");
  r->done = aloop_future_new(L, "receiver");
  r->file = s->file;
  r->from = (uint64_t)s->offset;
  r->prefix = s->prefix;
  r->suffix = s->suffix;
  ck_assert_ptr_nonnull(aloop_transport_new(L, sfd, &sending, s));
  ck_assert_ptr_nonnull(aloop_transport_new(L, cfd, &receiving, r));
  wait_done(s->done);
  wait_done(r->done);
  aloop_future_release(s->sent);
  ck_assert_int_eq(s->lost, 1);
  ck_assert_int_eq(r->lost, 1);
}

/* The bytes a sendfile of (offset, count) sends from a file of `size`. */
static uint64_t expected(int64_t size, int64_t offset, size_t count) {
  uint64_t rest = offset < size ? (uint64_t)(size - offset) : 0;
  return count && count < rest ? count : rest;
}

static void send_whole(const char *mode, int64_t size, bool sparse, int64_t offset, size_t count) {
  set_mode(mode);
  struct file f = make_file(size, sparse);
  struct sender s = {.file = &f, .offset = offset, .count = count};
  struct receiver r = {.body_len = expected(size, offset, count)};
  transfer(&s, &r);
  uint64_t want = expected(size, offset, count);
  ck_assert_msg(s.outcome == (int64_t)want, "%s, %lld bytes from %lld: sendfile gave %lld (%s)",
                mode ? mode : "native", (long long)size, (long long)offset, (long long)s.outcome,
                s.message);
  ck_assert_uint_eq(r.got, want);
  ck_assert_uint_eq(r.bad, 0);
  ck_assert_int_eq(s.write_during, -EBUSY);
  ck_assert_int_eq(s.lost_err, 0);
  ck_assert_int_eq(r.lost_err, 0);
  ck_assert_int_eq(lseek(f.fd, 0, SEEK_CUR), 0); /* the file's position never moved */
  close(f.fd);
}

START_TEST(test_files_of_0_1_64k_plus_1_and_5_mib_arrive_byte_for_byte) {
  static const int64_t sizes[] = {0, 1, 64 * KIB + 1, 5 * MIB + 3};
  for (size_t m = 0; m < LEN(modes); m++)
    for (size_t i = 0; i < LEN(sizes); i++) send_whole(modes[m], sizes[i], false, 0, 0);
}
END_TEST

START_TEST(test_a_sparse_1_gib_file_arrives_whole_natively) { send_whole(NULL, GIB, true, 0, 0); }
END_TEST

START_TEST(test_a_sparse_1_gib_file_arrives_whole_by_the_copy) {
  send_whole("copy", GIB, true, 0, 0);
}
END_TEST

START_TEST(test_offsets_and_counts_send_exactly_that_part_of_the_file) {
  static const struct {
    int64_t offset;
    size_t count;
  } parts[] = {{12345, 100000}, {1, 1}, {0, 3 * MIB}, {3 * MIB - 10, 0}, {3 * MIB - 10, 1000},
               {3 * MIB, 0}, {5 * MIB, 10}};
  for (size_t m = 0; m < LEN(modes); m++)
    for (size_t i = 0; i < LEN(parts); i++)
      send_whole(modes[m], 3 * MIB, false, parts[i].offset, parts[i].count);
}
END_TEST

/* What was written before goes first; the done callback writes after; nothing is mixed. */
START_TEST(test_queued_writes_go_first_and_writes_resume_after_the_file) {
  static char big[200 * KIB + 1];
  memset(big, 'h', sizeof big - 1); /* more than the high mark: still queued when sendfile comes */
  for (size_t m = 0; m < LEN(modes); m++) {
    set_mode(modes[m]);
    struct file f = make_file(2 * MIB + 17, false);
    struct sender s = {.file = &f, .prefix = big, .suffix = "\r\nthe end\r\n"};
    struct receiver r = {.body_len = (size_t)f.size};
    transfer(&s, &r);
    ck_assert_int_eq(s.outcome, f.size);
    ck_assert_uint_eq(r.got, sizeof big - 1 + (uint64_t)f.size + strlen(s.suffix));
    ck_assert_uint_eq(r.bad, 0);
    ck_assert_int_eq(s.write_during, -EBUSY);
    close(f.fd);
  }
}
END_TEST

/* close() right after starting: the file still goes out whole, then the connection closes. */
START_TEST(test_close_during_a_sendfile_lets_it_finish_first) {
  for (size_t m = 0; m < LEN(modes); m++) {
    set_mode(modes[m]);
    struct file f = make_file(8 * MIB, false);
    struct sender s = {.file = &f, .close_at_once = true};
    struct receiver r = {.body_len = (size_t)f.size};
    transfer(&s, &r);
    ck_assert_int_eq(s.outcome, f.size);
    ck_assert_uint_eq(r.got, (uint64_t)f.size);
    ck_assert_uint_eq(r.bad, 0);
    ck_assert_int_eq(s.lost_err, 0);
    close(f.fd);
  }
}
END_TEST

START_TEST(test_abort_during_a_sendfile_fails_it_with_econnaborted) {
  for (size_t m = 0; m < LEN(modes); m++) {
    set_mode(modes[m]);
    struct file f = make_file(64 * MIB, true); /* more than any socket buffers hold */
    struct sender s = {.file = &f, .abort_at_once = true};
    struct receiver r = {.body_len = (size_t)f.size}; /* a first chunk may have gone at once */
    transfer(&s, &r);
    ck_assert_int_eq(s.outcome, -ECONNABORTED);
    ck_assert_uint_lt(r.got, (uint64_t)f.size);
    ck_assert_msg(strstr(s.message, "aborted"), "message: %s", s.message);
    ck_assert_uint_eq(r.bad, 0);
    close(f.fd);
  }
}
END_TEST

/* Cancelling the future stops the file; the transport goes on (the next write is taken) and
 * closes cleanly. */
START_TEST(test_cancelling_a_sendfile_stops_it_and_the_transport_goes_on) {
  for (size_t m = 0; m < LEN(modes); m++) {
    set_mode(modes[m]);
    struct file f = make_file(64 * MIB, true);
    struct sender s = {.file = &f, .cancel_at_once = true, .suffix = "after"};
    struct receiver r = {.body_len = (size_t)f.size};
    transfer(&s, &r);
    ck_assert_int_eq(s.outcome, -ECANCELED);
    ck_assert_uint_lt(r.got, (uint64_t)f.size); /* part of the file, then "after" */
    ck_assert_uint_ge(r.got, strlen("after"));
    ck_assert_int_eq(s.lost_err, 0);
    ck_assert_int_eq(r.lost_err, 0);
    close(f.fd);
  }
}
END_TEST

/* The receiver takes 1 MiB of 64 MiB and goes away (a reset): the sendfile fails with the reason
 * in words, connection_lost has the same error, and nothing is left behind (the teardown). */
START_TEST(test_a_client_that_goes_away_mid_transfer_fails_the_sendfile_with_the_reason) {
  for (size_t m = 0; m < LEN(modes); m++) {
    set_mode(modes[m]);
    struct file f = make_file(64 * MIB, true);
    struct sender s = {.file = &f};
    struct receiver r = {.body_len = (size_t)f.size, .abort_after = 1 * MIB};
    transfer(&s, &r);
    ck_assert_msg(s.outcome == -ECONNRESET || s.outcome == -EPIPE, "%s: outcome %lld (%s)",
                  modes[m] ? modes[m] : "native", (long long)s.outcome, s.message);
    ck_assert_int_eq(s.lost_err, (int)s.outcome);
    ck_assert_msg(strstr(s.message, "sendfile") && strstr(s.message, "after"), "message: %s",
                  s.message);
    ck_assert_uint_ge(r.got, 1 * MIB);
    ck_assert_uint_lt(r.got, (uint64_t)f.size);
    ck_assert_uint_eq(r.bad, 0);
    close(f.fd);
  }
}
END_TEST

/* ---- pipes: the copy, always --------------------------------------------------------------- */

START_TEST(test_a_write_pipe_gets_the_file_by_the_copy) {
  int p[2];
  ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
  struct file f = make_file(3 * MIB + 5, false);
  struct sender s = {.file = &f, .offset = 7};
  struct receiver r = {.file = &f, .from = 7, .body_len = (size_t)f.size - 7};
  s.done = aloop_future_new(L, "sender");
  r.done = aloop_future_new(L, "receiver");
  ck_assert_ptr_nonnull(aloop_connect_read_pipe(L, p[0], &receiving, &r));
  ck_assert_ptr_nonnull(aloop_connect_write_pipe(L, p[1], &sending, &s));
  wait_done(s.done);
  wait_done(r.done);
  aloop_future_release(s.sent);
  ck_assert_int_eq(s.outcome, f.size - 7);
  ck_assert_uint_eq(r.got, (uint64_t)f.size - 7);
  ck_assert_uint_eq(r.bad, 0);
  close(f.fd);
}
END_TEST

/* ---- what is refused ------------------------------------------------------------------------- */

static void refuse_made(aloop_transport *t, void *ctx) {
  struct sender *s = ctx;
  int p[2];
  ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
  aloop_future *f = aloop_transport_sendfile(t, p[0], 0, 0); /* not a regular file */
  ck_assert_int_eq(aloop_future_outcome(f), -EINVAL);
  ck_assert_msg(strstr(aloop_future_message(f), "regular file"), "%s", aloop_future_message(f));
  aloop_future_release(f);
  close(p[0]), close(p[1]);
  f = aloop_transport_sendfile(t, s->file->fd, -1, 0);
  ck_assert_int_eq(aloop_future_outcome(f), -EINVAL);
  aloop_future_release(f);
  s->sent = aloop_transport_sendfile(t, s->file->fd, 0, 0);
  f = aloop_transport_sendfile(t, s->file->fd, 0, 0); /* one at a time */
  ck_assert_int_eq(aloop_future_outcome(f), -EBUSY);
  aloop_future_release(f);
  ck_assert_int_eq(aloop_transport_write_eof(t), -EBUSY);
  ck_assert_int_eq(aloop_future_add_done_callback(s->sent, sendfile_done, s), 0);
  s->t = t;
}

START_TEST(test_what_sendfile_refuses_it_says_in_words) {
  struct file f = make_file(64 * MIB, true); /* too big to go at once: still being sent */
  struct sender s = {.file = &f};
  struct receiver r = {.body_len = (size_t)f.size};
  static const aloop_protocol refusing = {.connection_made = refuse_made,
                                          .connection_lost = sender_lost};
  int lfd, cfd;
  int sfd = tcp_connected(&lfd, &cfd);
  close(lfd);
  s.done = aloop_future_new(L, "sender");
  r.done = aloop_future_new(L, "receiver");
  r.file = &f;
  ck_assert_ptr_nonnull(aloop_transport_new(L, sfd, &refusing, &s));
  ck_assert_ptr_nonnull(aloop_transport_new(L, cfd, &receiving, &r));
  wait_done(s.done);
  wait_done(r.done);
  ck_assert_int_eq(s.outcome, f.size);
  ck_assert_uint_eq(r.got, (uint64_t)f.size);
  ck_assert_uint_eq(r.bad, 0);
  aloop_future_release(s.sent);
  close(f.fd);
}
END_TEST

/* ---- aloop_sock_sendfile in a task ---------------------------------------------------------- */

struct sock_job {
  int sock;
  const struct file *file;
  int64_t offset;
  size_t count;
};

static int64_t send_in_task(void *arg) {
  struct sock_job *j = arg;
  int64_t n = aloop_await(aloop_sock_sendfile(L, j->sock, j->file->fd, j->offset, j->count));
  shutdown(j->sock, SHUT_WR);
  return n;
}

START_TEST(test_sock_sendfile_in_a_task_sends_the_part_asked_for) {
  static const struct {
    int64_t size, offset;
    size_t count;
    bool sparse;
  } cases[] = {{0, 0, 0, false}, {1, 0, 0, false}, {64 * KIB + 1, 0, 0, false},
               {5 * MIB, 1000, 3 * MIB, false}, {64 * MIB, 5, 0, true}};
  for (size_t m = 0; m < LEN(modes); m++) {
    for (size_t i = 0; i < LEN(cases); i++) {
      set_mode(modes[m]);
      struct file f = make_file(cases[i].size, cases[i].sparse);
      int lfd, cfd;
      int sfd = tcp_connected(&lfd, &cfd);
      close(lfd);
      struct sock_job j = {sfd, &f, cases[i].offset, cases[i].count};
      struct receiver r = {.file = &f, .from = (uint64_t)j.offset,
                           .body_len = expected(f.size, j.offset, j.count)};
      r.done = aloop_future_new(L, "receiver");
      ck_assert_ptr_nonnull(aloop_transport_new(L, cfd, &receiving, &r));
      aloop_future *task = aloop_task_spawn(L, send_in_task, &j, NULL);
      ck_assert_int_eq(run_within(task, 100 * SEC), (int64_t)r.body_len);
      wait_done(r.done);
      ck_assert_uint_eq(r.got, r.body_len);
      ck_assert_uint_eq(r.bad, 0);
      ck_assert_int_eq(aloop_close(L, sfd), 0);
      close(f.fd);
    }
  }
}
END_TEST

START_TEST(test_sock_sendfile_to_a_peer_that_went_away_fails_with_the_reason) {
  for (size_t m = 0; m < LEN(modes); m++) {
    set_mode(modes[m]);
    struct file f = make_file(64 * MIB, true);
    int lfd, cfd;
    int sfd = tcp_connected(&lfd, &cfd);
    close(lfd);
    struct linger lin = {1, 0}; /* close with a reset */
    setsockopt(cfd, SOL_SOCKET, SO_LINGER, &lin, sizeof lin);
    close(cfd);
    aloop_future *fut = aloop_sock_sendfile(L, sfd, f.fd, 0, 0);
    aloop_future *w = aloop_wait_for(L, aloop_future_ref(fut), 100 * SEC);
    int64_t res = aloop_run_until_complete(L, w);
    aloop_future_release(w);
    aloop_future_release(fut); /* the reference given to wait_for */
    ck_assert_msg(res == -ECONNRESET || res == -EPIPE, "outcome %lld (%s)", (long long)res,
                  aloop_future_message(fut));
    ck_assert_msg(strstr(aloop_future_message(fut), "sock_sendfile"), "%s",
                  aloop_future_message(fut));
    aloop_future_release(fut);
    ck_assert_int_eq(aloop_close(L, sfd), 0);
    close(f.fd);
  }
}
END_TEST

TCase *conformance_sendfile(void) {
  TCase *tc = conformance_tcase("sendfile");
  tcase_add_test(tc, test_files_of_0_1_64k_plus_1_and_5_mib_arrive_byte_for_byte);
  tcase_add_test(tc, test_a_sparse_1_gib_file_arrives_whole_natively);
  tcase_add_test(tc, test_a_sparse_1_gib_file_arrives_whole_by_the_copy);
  tcase_add_test(tc, test_offsets_and_counts_send_exactly_that_part_of_the_file);
  tcase_add_test(tc, test_queued_writes_go_first_and_writes_resume_after_the_file);
  tcase_add_test(tc, test_close_during_a_sendfile_lets_it_finish_first);
  tcase_add_test(tc, test_abort_during_a_sendfile_fails_it_with_econnaborted);
  tcase_add_test(tc, test_cancelling_a_sendfile_stops_it_and_the_transport_goes_on);
  tcase_add_test(tc, test_a_client_that_goes_away_mid_transfer_fails_the_sendfile_with_the_reason);
  tcase_add_test(tc, test_a_write_pipe_gets_the_file_by_the_copy);
  tcase_add_test(tc, test_what_sendfile_refuses_it_says_in_words);
  tcase_add_test(tc, test_sock_sendfile_in_a_task_sends_the_part_asked_for);
  tcase_add_test(tc, test_sock_sendfile_to_a_peer_that_went_away_fails_with_the_reason);
  return tc;
}
