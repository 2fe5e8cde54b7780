/* File operations with the Nth allocation failing: open, write, writev, readv, fstat, stat,
 * fsync and close on the fault loop (select: the executor runs them), and a failed open whose
 * error is still the kernel's, in words. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "scenarios.h"

static char file_path[64], missing_path[80];

/* The outcome of a step that must give `want`: true if it did; -ENOMEM is the failure seen. */
static bool step(const char *what, int64_t rc, int64_t want) {
  fault_saw(what, rc);
  if (rc >= 0 && rc != want) fault_violation("%s gave %lld, not %lld", what, (long long)rc,
                                             (long long)want);
  return rc == want;
}

/* Writes, reads back and looks at the file open on fd. */
static bool use_file(aloop_loop *loop, int fd) {
  if (!step("file_write", fault_await(loop, aloop_file_write(loop, fd, "hello ", 6, 0), "file_write"), 6))
    return false;
  struct iovec out[] = {{"wor", 3}, {"ld", 2}};
  if (!step("file_writev", fault_await(loop, aloop_file_writev(loop, fd, out, 2, 6), "file_writev"), 5))
    return false;
  char a[6], b[5];
  struct iovec in[] = {{a, sizeof a}, {b, sizeof b}};
  if (!step("file_readv", fault_await(loop, aloop_file_readv(loop, fd, in, 2, 0), "file_readv"), 11))
    return false;
  if (memcmp(a, "hello ", 6) || memcmp(b, "world", 5)) fault_violation("read back other bytes");
  struct stat st = {0}, by_path = {0};
  if (!step("file_fstat", fault_await(loop, aloop_file_fstat(loop, fd, &st), "file_fstat"), 0) ||
      !step("file_stat", fault_await(loop, aloop_file_stat(loop, file_path, &by_path), "file_stat"), 0))
    return false;
  if (st.st_size != 11 || by_path.st_ino != st.st_ino) fault_violation("stat says otherwise");
  return step("file_fsync", fault_await(loop, aloop_file_fsync(loop, fd, true), "file_fsync"), 0);
}

/* Opening what is not there: -ENOENT with the path in words (only the errno's words when an
 * allocation failed: the message is a copy). */
static bool open_missing(aloop_loop *loop) {
  aloop_future *f = aloop_file_open(loop, missing_path, O_RDONLY, 0);
  if (!fault_got("file_open", f)) return false;
  int64_t rc = fault_await_keep(loop, f, "file_open");
  const char *message = aloop_future_message(f);
  bool ok = rc == -ENOENT && strstr(message, missing_path) && strstr(message, "cannot open");
  if (rc == -ENOENT && !ok && fault_injected()) ok = strstr(message, "No such file") != NULL;
  if (rc == -ENOENT && !ok && !fault_injected()) fault_violation("open's message: %s", message);
  else if (rc != -ENOENT) fault_saw("file_open of a missing file", rc);
  aloop_future_release(f);
  return ok;
}

void scenario_file(void) {
  aloop_loop *loop = fault_loop();
  if (!loop) return;
  snprintf(file_path, sizeof file_path, "/tmp/aloop-fault-file-%d", (int)getpid());
  snprintf(missing_path, sizeof missing_path, "%s-missing", file_path);
  int64_t fd = fault_await(loop, aloop_file_open(loop, file_path, O_RDWR | O_CREAT | O_TRUNC, 0600),
                           "file_open");
  fault_saw("file_open", fd);
  bool ok = fd >= 0 && use_file(loop, (int)fd);
  if (fd >= 0) {
    int64_t rc = fault_await(loop, aloop_file_close(loop, (int)fd), "file_close");
    if (rc == -ENOMEM) close((int)fd); /* the close never started: the fd is still ours */
    ok = step("file_close", rc, 0) && ok;
  }
  unlink(file_path);
  ok = open_missing(loop) && ok;
  fault_current->complete = ok;
  fault_free_loop(loop);
}
