/* aloop-copy: copy a file with aloop's file operations, several pieces in flight at once.
 *   aloop-copy [--backend NAME] SOURCE DEST
 * PIECES tasks each take the next CHUNK bytes of SOURCE, read them and write them to DEST at the
 * same offset, until the end; then DEST is fsync'ed and both are closed. Prints the byte count,
 * the driver and whether the kernel (io_uring) or the executor did the work. Exits 1 with the
 * reason in words ("cannot open /x: No such file or directory") if something fails. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cli.h"

enum {
  PIECES = 8,         /* reads or writes in flight */
  CHUNK = 256 * 1024, /* per operation: the thread-pool and io_uring sweet spot of bench/ */
};

struct copy {
  aloop_loop *loop;
  const char *from, *to;
  int src, dst;       /* -1 until open */
  int64_t size, next; /* the source's size; the next piece's offset */
};

/* Await f; an error's words become the task's (aloop_await alone keeps only the code). */
static int64_t checked(aloop_future *f) {
  if (!f) return -ENOMEM;
  int64_t r = aloop_await_keep(f);
  if (r < 0) aloop_task_error(r, "%s", aloop_future_message(f));
  aloop_future_release(f);
  return r;
}

/* One piece after another until none is left; a short write is finished by another write. */
static int64_t copy_pieces(void *arg) {
  struct copy *c = arg;
  char *buf = malloc(CHUNK);
  if (!buf) return -ENOMEM;
  int64_t n = 0;
  while (n >= 0 && c->next < c->size) {
    int64_t at = c->next;
    c->next += CHUNK;
    n = checked(aloop_file_read(c->loop, c->src, buf, CHUNK, at));
    if (n == 0) n = aloop_task_error(-EIO, "the source shrank while being copied");
    for (int64_t put = 0, w; n > 0 && put < n; put += w)
      if ((w = checked(aloop_file_write(c->loop, c->dst, buf + put, (size_t)(n - put), at + put))) < 0)
        n = w;
  }
  free(buf);
  return n < 0 ? n : 0;
}

/* Open both files (the source's size from fstat), copy, fsync. 0 or the first error. */
static int64_t copy_file(struct copy *c) {
  int64_t fd = checked(aloop_file_open(c->loop, c->from, O_RDONLY, 0));
  if (fd < 0) return fd;
  c->src = (int)fd;
  struct stat st;
  int64_t rc = checked(aloop_file_fstat(c->loop, c->src, &st));
  if (rc < 0) return rc;
  c->size = st.st_size;
  if ((fd = checked(aloop_file_open(c->loop, c->to, O_WRONLY | O_CREAT | O_TRUNC, 0644))) < 0) return fd;
  c->dst = (int)fd;
  aloop_future *tasks[PIECES];
  for (int i = 0; i < PIECES; i++) tasks[i] = aloop_task_spawn(c->loop, copy_pieces, c, NULL);
  for (int i = 0; i < PIECES; i++) { /* every one awaited: none is left touching the files */
    int64_t r = checked(tasks[i]);
    if (rc == 0 && r < 0) rc = r;
  }
  return rc < 0 ? rc : checked(aloop_file_fsync(c->loop, c->dst, false));
}

static int64_t main_task(void *arg) {
  struct copy *c = arg;
  int64_t rc = copy_file(c);
  int fds[] = {c->src, c->dst};
  for (int i = 0; i < 2; i++) {
    int64_t closed = fds[i] < 0 ? 0 : checked(aloop_file_close(c->loop, fds[i]));
    if (rc == 0 && closed < 0) rc = closed;
  }
  return rc;
}

int main(int argc, char **argv) {
  const char *prog = "aloop-copy", *backend;
  int rc = cli_take_backend(&argc, argv, prog, &backend);
  if (rc != CLI_CONTINUE) return rc;
  if (argc != 3) {
    fprintf(stderr, "usage: %s [--backend NAME] [--list-backends] SOURCE DEST\n", prog);
    return CLI_EXIT_USAGE;
  }
  struct copy c = {.loop = cli_new_loop(prog, backend), .from = argv[1], .to = argv[2],
                   .src = -1, .dst = -1};
  if (!c.loop) return 1;
  aloop_future *task = aloop_task_spawn(c.loop, main_task, &c, NULL);
  int64_t outcome = task ? aloop_run_until_complete(c.loop, task) : -ENOMEM;
  if (outcome < 0)
    fprintf(stderr, "%s: %s\n", prog, task ? aloop_future_message(task) : strerror(ENOMEM));
  else
    printf("%s: %lld bytes on %s (%s)\n", prog, (long long)c.size, aloop_backend_name(c.loop),
           aloop_file_native(c.loop) ? "io_uring requests" : "the executor's threads");
  aloop_future_release(task);
  aloop_free(c.loop);
  return outcome < 0;
}
