/* File operations (aloop_file_*): the same contract whether the kernel completes them (io_uring)
 * or the executor runs them (select, libev, io_uring with no-file-ops). Every test works in its
 * own directory under /tmp, removed at the end. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "harness.h"

static char dir[64];

static void make_dir(void) {
  snprintf(dir, sizeof dir, "/tmp/aloop-file-XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void path_in_dir(char *out, size_t n, const char *name) {
  snprintf(out, n, "%s/%s", dir, name);
}

/* Remove the directory and what the tests put in it (files and a FIFO, no subdirectories). */
static void remove_dir(void) {
  static const char *const names[] = {"src", "dst", "data", "fifo", "missing"};
  char path[PATH_MAX];
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    path_in_dir(path, sizeof path, names[i]);
    unlink(path);
  }
  ck_assert_int_eq(rmdir(dir), 0);
}

static int64_t complete(aloop_future *f) { return run_within(f, 60 * SEC); }

/* The two ways a read at an offset runs where the executor serves file operations: at once when
 * the page cache holds it all (RWF_NOWAIT), else on a thread; ALOOP_FILE_NOWAIT=0 forces the
 * thread. Tests that read run both ways (_i: 0, 1). */
static void read_mode(int i) {
  if (i) setenv("ALOOP_FILE_NOWAIT", "0", 1);
  else unsetenv("ALOOP_FILE_NOWAIT");
}

/* Outcome and message of a future that must fail: the message is checked to hold `words`. */
static void expect_error(aloop_future *f, int code, const char *words, const char *more) {
  ck_assert_ptr_nonnull(f);
  int64_t outcome = aloop_run_until_complete(L, f);
  const char *message = aloop_future_message(f);
  ck_assert_msg(outcome == code, "outcome %lld (%s), expected %d", (long long)outcome, message,
                code);
  ck_assert_msg(strstr(message, words) && (!more || strstr(message, more)),
                "message '%s' lacks '%s' %s", message, words, more ? more : "");
  aloop_future_release(f);
}

static int open_now(const char *name, int flags) {
  char path[PATH_MAX];
  path_in_dir(path, sizeof path, name);
  int64_t fd = complete(aloop_file_open(L, path, flags, 0600));
  ck_assert_int_ge(fd, 0);
  return (int)fd;
}

static void close_now(int fd) { ck_assert_int_eq(complete(aloop_file_close(L, fd)), 0); }

/* ---- a big copy with many operations in flight ---------------------------------------------- */

enum {
  COPY_MIB_DEFAULT = 256,
  COPY_CHUNK = 256 * 1024, /* per operation */
  COPY_WORKERS = 64,       /* tasks, each with one read or write in flight */
};

struct copy {
  int src, dst;
  int64_t size, next; /* the next chunk's offset, taken by whichever task is free */
};

/* A checksum of a stream of 64-bit words (FNV-1a over words: order matters, cheap per byte). */
static uint64_t mix(uint64_t h, const void *buf, size_t n) {
  const unsigned char *p = buf;
  for (size_t i = 0; i + 8 <= n; i += 8) {
    uint64_t w;
    memcpy(&w, p + i, 8);
    h = (h ^ w) * UINT64_C(0x100000001b3);
  }
  return h;
}

/* Write `size` bytes of pseudo-random data to path with plain syscalls; returns their checksum. */
static uint64_t make_source(const char *path, int64_t size) {
  enum { BLOCK = 1 << 20 };
  uint64_t *block = malloc(BLOCK), x = 0x9e3779b97f4a7c15u, h = 0xcbf29ce484222325u;
  ck_assert_ptr_nonnull(block);
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  ck_assert_int_ge(fd, 0);
  for (int64_t done = 0; done < size; done += BLOCK) {
    for (size_t i = 0; i < BLOCK / 8; i++) { /* xorshift64 */
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      block[i] = x;
    }
    ck_assert_int_eq(write(fd, block, BLOCK), BLOCK);
    h = mix(h, block, BLOCK);
  }
  close(fd);
  free(block);
  return h;
}

static uint64_t checksum_of(const char *path) {
  enum { BLOCK = 1 << 20 };
  char *block = malloc(BLOCK);
  ck_assert_ptr_nonnull(block);
  uint64_t h = 0xcbf29ce484222325u;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  ck_assert_int_ge(fd, 0);
  ssize_t n;
  while ((n = read(fd, block, BLOCK)) > 0) h = mix(h, block, (size_t)n);
  ck_assert_int_eq(n, 0);
  close(fd);
  free(block);
  return h;
}

/* One worker: take a chunk, read it, write it (the rest again after a short write), repeat. */
static int64_t copy_worker(void *arg) {
  struct copy *c = arg;
  char *buf = malloc(COPY_CHUNK);
  if (!buf) return -ENOMEM;
  int64_t err = 0;
  while (err == 0 && c->next < c->size) {
    int64_t at = c->next;
    c->next += COPY_CHUNK;
    int64_t n = aloop_await(aloop_file_read(L, c->src, buf, COPY_CHUNK, at));
    if (n <= 0) {
      err = n < 0 ? n : -EIO; /* the source does not shrink: 0 here is wrong */
      break;
    }
    for (int64_t put = 0; put < n && err == 0;) {
      int64_t w = aloop_await(aloop_file_write(L, c->dst, buf + put, (size_t)(n - put), at + put));
      if (w <= 0) err = w < 0 ? w : -EIO;
      put += w;
    }
  }
  free(buf);
  return err;
}

/* ALOOP_TEST_COPY_MIB makes the copy smaller (or larger) by hand; 256 MiB by default. */
static int64_t copy_size(void) {
  const char *env = getenv("ALOOP_TEST_COPY_MIB");
  int64_t mib = env ? atoll(env) : COPY_MIB_DEFAULT;
  return (mib > 0 ? mib : COPY_MIB_DEFAULT) << 20;
}

START_TEST(test_a_256_mib_copy_with_64_operations_in_flight_matches_its_checksum) {
  read_mode(_i);
  make_dir();
  char src[PATH_MAX], dst[PATH_MAX];
  path_in_dir(src, sizeof src, "src");
  path_in_dir(dst, sizeof dst, "dst");
  struct copy c = {.size = copy_size()};
  uint64_t expected = make_source(src, c.size);
  c.src = open_now("src", O_RDONLY);
  c.dst = open_now("dst", O_WRONLY | O_CREAT | O_TRUNC);
  aloop_future *workers[COPY_WORKERS];
  for (int i = 0; i < COPY_WORKERS; i++) {
    workers[i] = aloop_task_spawn(L, copy_worker, &c, NULL);
    ck_assert_ptr_nonnull(workers[i]);
  }
  aloop_future *all = aloop_gather(L, workers, COPY_WORKERS);
  ck_assert_int_eq(complete(all), COPY_WORKERS);
  for (int i = 0; i < COPY_WORKERS; i++) aloop_future_release(workers[i]);
  struct stat st;
  ck_assert_int_eq(complete(aloop_file_fstat(L, c.dst, &st)), 0);
  ck_assert_int_eq(st.st_size, c.size);
  close_now(c.src);
  close_now(c.dst);
  ck_assert_msg(checksum_of(dst) == expected, "the copy differs from its source");
  remove_dir();
}
END_TEST

/* ---- offsets, vectors, the file position ------------------------------------------------------ */

START_TEST(test_reads_and_writes_at_offsets_leave_the_file_position_alone) {
  read_mode(_i);
  make_dir();
  int fd = open_now("data", O_RDWR | O_CREAT | O_TRUNC);
  ck_assert_int_eq(complete(aloop_file_write(L, fd, "hello", 5, 0)), 5);
  char a[] = "wor", b[] = "ld";
  struct iovec out[] = {{a, 3}, {b, 2}};
  ck_assert_int_eq(complete(aloop_file_writev(L, fd, out, 2, 100)), 5); /* a hole between */
  ck_assert_int_eq(lseek(fd, 0, SEEK_CUR), 0);

  char head[5], tail[8];
  struct iovec in[] = {{head, sizeof head}, {tail, sizeof tail}};
  memset(tail, 'x', sizeof tail);
  ck_assert_int_eq(complete(aloop_file_readv(L, fd, in, 2, 98)), 7); /* short: the end */
  ck_assert_int_eq(memcmp(head, "\0\0wor", 5), 0);
  ck_assert_int_eq(memcmp(tail, "ldxxxxxx", 8), 0);
  char buf[16];
  ck_assert_int_eq(complete(aloop_file_read(L, fd, buf, sizeof buf, 0)), 16);
  ck_assert_int_eq(memcmp(buf, "hello\0", 6), 0);
  ck_assert_int_eq(complete(aloop_file_read(L, fd, buf, sizeof buf, 105)), 0); /* past the end */

  /* At the file position: it moves, as with read(2) and write(2). */
  ck_assert_int_eq(complete(aloop_file_write(L, fd, "HE", 2, ALOOP_FILE_POSITION)), 2);
  ck_assert_int_eq(complete(aloop_file_write(L, fd, "LLO", 3, ALOOP_FILE_POSITION)), 3);
  ck_assert_int_eq(lseek(fd, 0, SEEK_CUR), 5);
  ck_assert_int_eq(lseek(fd, 1, SEEK_SET), 1);
  ck_assert_int_eq(complete(aloop_file_read(L, fd, buf, 4, ALOOP_FILE_POSITION)), 4);
  ck_assert_int_eq(memcmp(buf, "ELLO", 4), 0);
  ck_assert_int_eq(lseek(fd, 0, SEEK_CUR), 5);
  close_now(fd);
  remove_dir();
}
END_TEST

/* Where the executor serves file operations, a read the page cache holds is done before
 * aloop_file_read returns, with no thread; forced onto the executor it is not. (Only where this
 * filesystem takes RWF_NOWAIT, which the test asks it first.) */
START_TEST(test_a_cached_read_needs_no_thread_where_the_executor_serves_files) {
  make_dir();
  int fd = open_now("data", O_RDWR | O_CREAT | O_TRUNC);
  char text[] = "in the page cache", buf[sizeof text];
  ck_assert_int_eq(pwrite(fd, text, sizeof text, 0), (ssize_t)sizeof text);
  struct iovec iov = {buf, sizeof buf};
  bool nowait = preadv2(fd, &iov, 1, 0, RWF_NOWAIT) == (ssize_t)sizeof buf;
  for (int forced = 0; forced < 2; forced++) {
    read_mode(forced);
    memset(buf, 0, sizeof buf);
    aloop_future *f = aloop_file_read(L, fd, buf, sizeof buf, 0);
    ck_assert_ptr_nonnull(f);
    if (!aloop_file_native(L) && nowait)
      ck_assert_msg(aloop_future_done(f) == !forced, "%s: the read is %sdone at once",
                    forced ? "ALOOP_FILE_NOWAIT=0" : "cached", aloop_future_done(f) ? "" : "not ");
    ck_assert_int_eq(complete(f), (int64_t)sizeof buf);
    ck_assert_str_eq(buf, text);
  }
  read_mode(0);
  close_now(fd);
  remove_dir();
}
END_TEST

START_TEST(test_fsync_and_stat_report_what_was_written) {
  read_mode(_i);
  make_dir();
  int fd = open_now("data", O_WRONLY | O_CREAT | O_TRUNC);
  static char block[12345];
  memset(block, 'q', sizeof block);
  ck_assert_int_eq(complete(aloop_file_write(L, fd, block, sizeof block, 0)), sizeof block);
  ck_assert_int_eq(complete(aloop_file_fsync(L, fd, false)), 0);
  ck_assert_int_eq(complete(aloop_file_fsync(L, fd, true)), 0);
  struct stat st, plain;
  ck_assert_int_eq(complete(aloop_file_fstat(L, fd, &st)), 0);
  ck_assert_int_eq(fstat(fd, &plain), 0);
  ck_assert_int_eq(st.st_size, sizeof block);
  ck_assert(S_ISREG(st.st_mode));
  ck_assert_int_eq(st.st_mode & 0777, 0600);
  ck_assert_int_eq(st.st_ino, plain.st_ino);
  ck_assert_int_eq(st.st_dev, plain.st_dev);
  ck_assert_int_eq(st.st_mtim.tv_sec, plain.st_mtim.tv_sec);
  ck_assert_int_eq(st.st_mtim.tv_nsec, plain.st_mtim.tv_nsec);
  close_now(fd);
  char path[PATH_MAX];
  path_in_dir(path, sizeof path, "data");
  memset(&st, 0, sizeof st);
  ck_assert_int_eq(complete(aloop_file_stat(L, path, &st)), 0);
  ck_assert_int_eq(st.st_size, sizeof block);
  ck_assert_int_eq(st.st_ino, plain.st_ino);
  ck_assert_int_eq(complete(aloop_file_stat(L, dir, &st)), 0);
  ck_assert(S_ISDIR(st.st_mode));
  remove_dir();
}
END_TEST

/* ---- errors ------------------------------------------------------------------------------------ */

START_TEST(test_errors_carry_the_errno_and_say_what_failed_in_words) {
  read_mode(_i);
  make_dir();
  char missing[PATH_MAX], data[PATH_MAX], words[PATH_MAX + 32];
  path_in_dir(missing, sizeof missing, "missing");
  path_in_dir(data, sizeof data, "data");
  struct stat st;

  snprintf(words, sizeof words, "cannot open %s", missing);
  expect_error(aloop_file_open(L, missing, O_RDONLY, 0), -ENOENT, words,
               "No such file or directory");
  snprintf(words, sizeof words, "cannot stat %s", missing);
  expect_error(aloop_file_stat(L, missing, &st), -ENOENT, words, "No such file or directory");
  snprintf(words, sizeof words, "cannot open %s", dir);
  expect_error(aloop_file_open(L, dir, O_WRONLY, 0), -EISDIR, words, "Is a directory");

  char buf[8];
  int dfd = open_now("", O_RDONLY | O_DIRECTORY); /* the directory itself */
  snprintf(words, sizeof words, "cannot read fd %d", dfd);
  expect_error(aloop_file_read(L, dfd, buf, sizeof buf, 0), -EISDIR, words, "Is a directory");
  close_now(dfd);

  int wfd = open_now("data", O_WRONLY | O_CREAT);
  snprintf(words, sizeof words, "cannot read fd %d", wfd);
  expect_error(aloop_file_read(L, wfd, buf, sizeof buf, 0), -EBADF, words, "Bad file descriptor");
  close_now(wfd);
  snprintf(words, sizeof words, "cannot write fd %d", wfd); /* closed now */
  expect_error(aloop_file_write(L, wfd, "x", 1, 0), -EBADF, words, "Bad file descriptor");
  expect_error(aloop_file_fsync(L, wfd, false), -EBADF, "cannot fsync fd", "Bad file descriptor");
  expect_error(aloop_file_fstat(L, wfd, &st), -EBADF, "cannot stat fd", "Bad file descriptor");
  expect_error(aloop_file_close(L, wfd), -EBADF, "cannot close fd", "Bad file descriptor");
  expect_error(aloop_file_read(L, -1, buf, sizeof buf, 0), -EBADF, "cannot read fd -1", NULL);
  expect_error(aloop_file_fstat(L, AT_FDCWD, &st), -EBADF, "cannot stat fd", NULL);
  expect_error(aloop_file_stat(L, NULL, &st), -EFAULT, "cannot stat (a NULL path)", NULL);
  expect_error(aloop_file_stat(L, missing, NULL), -EFAULT, "cannot stat", NULL);

  int fd = open_now("data", O_RDONLY);
  expect_error(aloop_file_read(L, fd, buf, sizeof buf, -2), -EINVAL, "cannot read fd",
               "Invalid argument");
  struct iovec none[1] = {{buf, 1}};
  expect_error(aloop_file_readv(L, fd, none, 0, 0), -EINVAL, "cannot read fd", NULL);
  close_now(fd);
  ck_assert_int_eq(unlink(data), 0);
  remove_dir();
}
END_TEST

/* ---- cancellation ------------------------------------------------------------------------------ */

static int count_pending(aloop_future *const *futures, int n) {
  int pending = 0;
  for (int i = 0; i < n; i++) pending += !aloop_future_done(futures[i]);
  return pending;
}

/* Reads of a FIFO nobody writes to sleep until cancelled. Natively each ends with -ECANCELED. On
 * the executor ALOOP_EXECUTOR_THREADS of them hold its threads and the one more waits in its
 * queue: that one is dropped at once, while a read a thread has started finishes when data comes
 * (one byte each, written one at a time here), as file.h says. Either way nothing is left
 * reading: a new read afterwards gets the byte written for it. */
START_TEST(test_cancelling_reads_of_a_fifo_in_flight_ends_or_drains_them) {
  enum { READS = ALOOP_EXECUTOR_THREADS + 1 };
  make_dir();
  char path[PATH_MAX];
  path_in_dir(path, sizeof path, "fifo");
  ck_assert_int_eq(mkfifo(path, 0600), 0);
  int fd = open(path, O_RDWR | O_CLOEXEC); /* a reader and a writer: open never waits */
  ck_assert_int_ge(fd, 0);
  char bufs[READS][16];
  aloop_future *reads[READS];
  for (int i = 0; i < READS; i++) {
    reads[i] = aloop_file_read(L, fd, bufs[i], sizeof bufs[i], ALOOP_FILE_POSITION);
    ck_assert_ptr_nonnull(reads[i]);
  }
  ck_assert_int_ge(aloop_run_once(L, 0), 0); /* the requests reach the kernel, or the threads */
  for (int i = 0; i < READS; i++) ck_assert(!aloop_future_done(reads[i]));

  bool native = aloop_file_native(L);
  for (int i = READS - 1; i >= 0; i--) ck_assert_int_eq(aloop_future_cancel(reads[i]), 0);
  if (!native) ck_assert(aloop_future_cancelled(reads[READS - 1])); /* queued: dropped */
  /* Started on a thread: each ends when data comes. One byte at a time, for whichever takes it. */
  for (int pending; !native && (pending = count_pending(reads, READS)) > 0;) {
    ck_assert_int_eq(write(fd, "d", 1), 1);
    while (count_pending(reads, READS) == pending) ck_assert_int_ge(aloop_run_once(L, 100 * MS), 0);
  }
  for (int i = 0; i < READS; i++) {
    int64_t outcome = complete(aloop_future_ref(reads[i]));
    if (native || outcome < 0)
      ck_assert_msg(outcome == -ECANCELED, "read %d: %lld", i, (long long)outcome);
    else
      ck_assert_msg(outcome == 1 && bufs[i][0] == 'd', "read %d: %lld", i, (long long)outcome);
    aloop_future_release(reads[i]);
  }
  ck_assert_int_eq(write(fd, "z", 1), 1);
  char c = 0;
  ck_assert_int_eq(complete(aloop_file_read(L, fd, &c, 1, ALOOP_FILE_POSITION)), 1);
  ck_assert_int_eq(c, 'z');
  close(fd);
  remove_dir();
}
END_TEST

START_TEST(test_a_cancelled_open_leaves_no_fd_behind) {
  make_dir();
  char path[PATH_MAX];
  path_in_dir(path, sizeof path, "data");
  int probe = open("/dev/null", O_RDONLY | O_CLOEXEC); /* the lowest free fd now */
  ck_assert_int_ge(probe, 0);
  close(probe);
  aloop_future *f = aloop_file_open(L, path, O_RDWR | O_CREAT, 0600);
  ck_assert_int_eq(aloop_future_cancel(f), 0);
  int64_t outcome = complete(f);
  ck_assert_msg(outcome == -ECANCELED, "outcome %lld", (long long)outcome);
  int again = open("/dev/null", O_RDONLY | O_CLOEXEC); /* the same number: nothing kept it */
  ck_assert_int_eq(again, probe);
  close(again);
  remove_dir();
}
END_TEST

TCase *conformance_file(void) {
  TCase *tc = conformance_tcase("file");
  tcase_add_loop_test(tc, test_a_256_mib_copy_with_64_operations_in_flight_matches_its_checksum, 0, 2);
  tcase_add_loop_test(tc, test_reads_and_writes_at_offsets_leave_the_file_position_alone, 0, 2);
  tcase_add_loop_test(tc, test_fsync_and_stat_report_what_was_written, 0, 2);
  tcase_add_loop_test(tc, test_errors_carry_the_errno_and_say_what_failed_in_words, 0, 2);
  tcase_add_test(tc, test_a_cached_read_needs_no_thread_where_the_executor_serves_files);
  tcase_add_test(tc, test_cancelling_reads_of_a_fifo_in_flight_ends_or_drains_them);
  tcase_add_test(tc, test_a_cancelled_open_leaves_no_fd_behind);
  return tc;
}
