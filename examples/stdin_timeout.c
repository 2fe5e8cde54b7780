/* The README's example: echo byte counts from stdin, stop on EOF or after 5 s of silence. */
#include <aloop.h>
#include <stdio.h>
#include <unistd.h>

static void on_readable(aloop_loop *loop, int fd, void *arg) {
  char buf[512];
  ssize_t n = read(fd, buf, sizeof buf);
  if (n <= 0) { aloop_remove_reader(loop, fd); aloop_stop(loop); return; }
  printf("%s: %zd bytes\n", (const char *)arg, n);
}

static void on_timeout(aloop_loop *loop, void *arg) {
  (void)arg;
  puts("5 s without input: stopping");
  aloop_stop(loop);
}

int main(void) {
  aloop_loop *loop = aloop_new(NULL);            /* driver: $ALOOP_BACKEND, else auto */
  if (!loop) return 1;
  printf("running on %s\n", aloop_backend_name(loop));
  aloop_add_reader(loop, 0, on_readable, "stdin");
  aloop_handle timeout;
  aloop_call_later(loop, 5000000000LL, on_timeout, NULL, &timeout);
  aloop_run(loop);                               /* until aloop_stop() */
  aloop_cancel(loop, timeout);                   /* -ALOOP_ESTALE if it already ran: harmless */
  aloop_remove_reader(loop, 0);
  aloop_free(loop);
}
