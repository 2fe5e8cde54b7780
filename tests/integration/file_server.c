/* aloop-file-server as a user runs it, on each compiled driver, natively and with
 * ALOOP_SENDFILE=copy: files of 0 bytes, 1 byte, 64 KiB + 1, 5 MiB and a sparse 1 GiB arrive
 * whole with the right Content-Length (the 1 GiB one counted and checked for zeros); HEAD; 404,
 * 400 for names that would leave the directory, 405; a client that goes away mid-file, after which
 * the server goes on serving; SIGTERM ends it with status 0. */
#include "../run_suite.h"
#include "programs.h"
#include <sys/stat.h>

#define SERVER "examples/aloop-file-server"
enum { KIB = 1024, MIB = 1024 * 1024 };
#define GIB (INT64_C(1024) * MIB)

static unsigned char pattern_at(uint64_t i) { return (unsigned char)(i * 13 % 251); }

static char dir[64];
static char serving[64]; /* "driver, mode": every failure message says which run it was */

static void make_file(const char *name, int64_t size, bool sparse) {
  char path[128];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  ck_assert_int_ge(fd, 0);
  if (sparse) {
    ck_assert_int_eq(ftruncate(fd, size), 0);
  } else {
    unsigned char buf[64 * KIB];
    for (int64_t at = 0; at < size;) {
      size_t k = size - at < (int64_t)sizeof buf ? (size_t)(size - at) : sizeof buf;
      for (size_t i = 0; i < k; i++) buf[i] = pattern_at((uint64_t)at + i);
      ck_assert_int_eq(write(fd, buf, k), (ssize_t)k);
      at += (int64_t)k;
    }
  }
  close(fd);
}

static void make_site(void) {
  snprintf(dir, sizeof dir, "/tmp/aloop-files-XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(dir));
  make_file("empty", 0, false);
  make_file("one", 1, false);
  make_file("mid", 64 * KIB + 1, false);
  make_file("big", 5 * MIB, false);
  make_file("huge", GIB, true);
  char sub[128];
  snprintf(sub, sizeof sub, "%s/sub", dir);
  ck_assert_int_eq(mkdir(sub, 0700), 0);
  make_file("sub/inner", 1000, false);
}

static void remove_site(void) {
  static const char *const names[] = {"empty", "one", "mid", "big", "huge", "sub/inner", "sub"};
  char path[128];
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    snprintf(path, sizeof path, "%s/%s", dir, names[i]);
    ck_assert_int_eq(remove(path), 0);
  }
  ck_assert_int_eq(rmdir(dir), 0);
}

/* The server, with the copy path forced when mode is "copy" (the child inherits it). */
static struct program start_server(const char *backend, const char *mode) {
  if (mode) setenv("ALOOP_SENDFILE", mode, 1);
  const char *argv[] = {SERVER, "--backend", backend, "--port", "0", dir, NULL};
  struct program p = start_program(argv, true); /* stderr: the request log */
  unsetenv("ALOOP_SENDFILE");
  return p;
}

/* What came back for one request: the status, Content-Length, the body's length and whether
 * every byte of it was the expected one (`sparse`: zeros; else the pattern). */
struct reply {
  int status;
  long long length;
  uint64_t body;
  uint64_t bad;
};

static struct reply request(int port, const char *req, bool sparse) {
  int fd = connect_to(port);
  ck_assert_int_eq(write(fd, req, strlen(req)), (ssize_t)strlen(req));
  struct reply r = {.length = -1};
  static char buf[256 * KIB];
  char head[4096];
  size_t head_len = 0;
  bool in_body = false;
  for (ssize_t n; (n = read(fd, buf, sizeof buf)) > 0;) {
    size_t i = 0;
    while (!in_body && i < (size_t)n) { /* the head, byte by byte up to its blank line */
      ck_assert_uint_lt(head_len, sizeof head - 1);
      head[head_len++] = buf[i++];
      head[head_len] = '\0';
      if (head_len >= 4 && !memcmp(head + head_len - 4, "\r\n\r\n", 4)) in_body = true;
    }
    static const char zeros[sizeof buf];
    if (sparse) { /* zeros: one memcmp, so a gigabyte costs little even under sanitizers */
      r.bad += memcmp(buf + i, zeros, (size_t)n - i) != 0;
      r.body += (size_t)n - i;
      continue;
    }
    for (; i < (size_t)n; i++, r.body++) r.bad += (unsigned char)buf[i] != pattern_at(r.body);
  }
  close(fd);
  ck_assert_msg(in_body, "%s: no complete head for %.40s: %s", serving, req, head);
  ck_assert_int_eq(sscanf(head, "HTTP/1.0 %d", &r.status), 1);
  const char *cl = strstr(head, "Content-Length: ");
  if (cl) r.length = atoll(cl + 16);
  return r;
}

static void expect_file(int port, const char *name, int64_t size, bool sparse) {
  char req[256];
  snprintf(req, sizeof req, "GET /%s HTTP/1.0\r\nHost: test\r\n\r\n", name);
  struct reply r = request(port, req, sparse);
  ck_assert_msg(r.status == 200, "%s: %s: status %d", serving, name, r.status);
  ck_assert_msg(r.length == size, "%s: %s: Content-Length %lld", serving, name, r.length);
  ck_assert_msg(r.body == (uint64_t)size, "%s: %s: %llu of %lld bytes", serving, name,
                (unsigned long long)r.body, (long long)size);
  ck_assert_msg(r.bad == 0, "%s: %s: %llu bad reads", serving, name, (unsigned long long)r.bad);
}

static void expect_status(int port, const char *req, int status) {
  struct reply r = request(port, req, false);
  ck_assert_msg(r.status == status, "%s: %s-> %d, not %d", serving, req, r.status, status);
  ck_assert_int_eq(r.body, (uint64_t)r.length);
}

/* Ask for the 1 GiB file, take 1 MiB and hang up with unread bytes (a reset). */
static void go_away_mid_file(int port) {
  int fd = connect_to(port);
  const char *req = "GET /huge HTTP/1.0\r\n\r\n";
  ck_assert_int_eq(write(fd, req, strlen(req)), (ssize_t)strlen(req));
  static char buf[64 * KIB];
  size_t got = 0;
  for (ssize_t n; got < MIB && (n = read(fd, buf, sizeof buf)) > 0;) got += (size_t)n;
  ck_assert_msg(got >= MIB, "%s: the huge file stopped after %zu bytes", serving, got);
  struct linger lin = {1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &lin, sizeof lin);
  close(fd);
}

static void serve_on(const char *backend, const char *mode) {
  snprintf(serving, sizeof serving, "%s, %s", backend, mode ? mode : "native");
  struct program s = start_server(backend, mode);
  expect_file(s.port, "empty", 0, false);
  expect_file(s.port, "one", 1, false);
  expect_file(s.port, "mid", 64 * KIB + 1, false);
  expect_file(s.port, "big", 5 * MIB, false);
  expect_file(s.port, "sub/inner", 1000, false);
  expect_file(s.port, "huge", GIB, true);
  struct reply head = request(s.port, "HEAD /big HTTP/1.0\r\n\r\n", false);
  ck_assert_int_eq(head.status, 200);
  ck_assert_int_eq(head.length, 5 * MIB);
  ck_assert_uint_eq(head.body, 0);
  expect_status(s.port, "GET /nothing-here HTTP/1.0\r\n\r\n", 404);
  expect_status(s.port, "GET /sub HTTP/1.0\r\n\r\n", 404); /* a directory */
  expect_status(s.port, "GET /../etc/passwd HTTP/1.0\r\n\r\n", 400);
  expect_status(s.port, "GET //etc/passwd HTTP/1.0\r\n\r\n", 400);
  expect_status(s.port, "POST /big HTTP/1.0\r\n\r\n", 405);
  expect_status(s.port, "nonsense\r\n\r\n", 400);
  go_away_mid_file(s.port);
  expect_file(s.port, "big", 5 * MIB, false); /* and it goes on serving */
  stop_program(&s);
}

START_TEST(test_the_file_server_serves_every_file_whole_on_every_driver_both_ways) {
  make_site();
  const char *drivers[8];
  size_t n = usable_drivers(drivers, 8);
  ck_assert_uint_gt(n, 0);
  for (size_t i = 0; i < n; i++) {
    serve_on(drivers[i], NULL);
    serve_on(drivers[i], "copy");
  }
  remove_site();
}
END_TEST

int main(void) {
  Suite *suite = suite_create("file_server");
  TCase *tc = tcase_create("file_server");
  tcase_set_timeout(tc, 600);
  tcase_add_test(tc, test_the_file_server_serves_every_file_whole_on_every_driver_both_ways);
  suite_add_tcase(suite, tc);
  return run_suite(suite);
}
