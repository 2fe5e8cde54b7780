/* aloop-sendfile-bench: sending one file to a loopback TCP client, aloop_sock_sendfile on each
 * driver and path against a plain sendfile(2) loop and a plain read/write loop. Not a test: it
 * asserts nothing about speed, but every transfer is counted and checksummed on the client's side
 * (a transfer that differs from the file is an error, not a figure).
 *
 * The file is made once (pseudo-random, so the page cache holds it: this measures the path to the
 * socket, not the disk). In each run a client thread connects, reads everything into one buffer
 * and checksums it; the server side sends the file once and closes. Figures: MiB/s of the median
 * and the best of --repeats runs, and the process's CPU time per GiB (the client's reads
 * included, the same for every case, and the kernel's io_uring workers).
 *   aloop io_uring            a splice pair per chunk (file to pipe, pipe to socket) in the kernel
 *   aloop io_uring (no-splice)  sendfile(2) when the socket is writable: what select and libev do
 *   aloop libev, aloop select sendfile(2) when the socket is writable
 *   aloop DRIVER (copy)       ALOOP_SENDFILE=copy: file reads into a buffer, then ordinary sends
 *   sendfile(2) loop          a blocking socket, sendfile(2) until done, no loop
 *   read/write loop           a blocking socket, read 64 KiB then write it, no loop
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "aloop.h"
#include "random_file.h"

enum { MAX_REPEATS = 15 };

static struct {
  int64_t size;
  int repeats;
  char dir[256], path[320];
  uint64_t checksum; /* of the file, computed once */
} cfg = {.size = 256 << 20, .repeats = 3};

static double cpu_s(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
         (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- the client: reads everything, checks it ---------------------------------------------------- */

struct client {
  int port;
  int64_t got;
  uint64_t h;
  unsigned char carry[8]; /* bytes of a word split across two reads */
  size_t ncarry;
};

static void *client_main(void *arg) {
  struct client *c = arg;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct timeval patience = {60, 0}; /* a stuck server ends the run, not the program */
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &patience, sizeof patience);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)c->port),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  c->h = RANDOM_FILE_SEED;
  if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
    c->got = -errno;
    close(fd);
    return NULL;
  }
  static unsigned char buf[256 * 1024];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) {
    size_t at = 0;
    while (c->ncarry && c->ncarry < 8 && at < (size_t)n) c->carry[c->ncarry++] = buf[at++];
    if (c->ncarry == 8) {
      c->h = random_file_mix(c->h, c->carry, 8);
      c->ncarry = 0;
    }
    size_t whole = ((size_t)n - at) / 8 * 8;
    c->h = random_file_mix(c->h, buf + at, whole);
    at += whole;
    while (at < (size_t)n) c->carry[c->ncarry++] = buf[at++];
    c->got += n;
  }
  c->h = random_file_mix(c->h, c->carry, c->ncarry);
  if (n < 0) c->got = -errno;
  close(fd);
  return NULL;
}

/* ---- the senders ---------------------------------------------------------------------------------- */

struct sender {
  const char *name;
  const char *driver;   /* NULL: no loop (a plain loop below) */
  const char *uring;    /* ALOOP_IO_URING for this case, or NULL */
  bool copy;            /* ALOOP_SENDFILE=copy */
  bool plain_sendfile;  /* without a loop: sendfile(2), else read/write */
};

static int64_t plain_send(int sock, int file, bool use_sendfile) {
  int64_t total = 0;
  static char buf[64 * 1024];
  for (;;) {
    ssize_t n;
    if (use_sendfile) {
      n = sendfile(sock, file, NULL, 1 << 30);
    } else {
      n = read(file, buf, sizeof buf);
      for (ssize_t put = 0, w; n > 0 && put < n; put += w)
        if ((w = write(sock, buf + put, (size_t)(n - put))) < 0) return -errno;
    }
    if (n < 0) return -errno;
    if (n == 0) return total;
    total += n;
  }
}

static int64_t aloop_send(const struct sender *s, int sock, int file) {
  if (s->uring) setenv("ALOOP_IO_URING", s->uring, 1);
  if (s->copy) setenv("ALOOP_SENDFILE", "copy", 1);
  aloop_options o = {.size = sizeof o, .backend = s->driver};
  aloop_loop *loop = aloop_new(&o);
  unsetenv("ALOOP_IO_URING");
  if (!loop) return -errno;
  fcntl(sock, F_SETFL, O_NONBLOCK);
  aloop_future *f = aloop_sock_sendfile(loop, sock, file, 0, 0);
  int64_t n = aloop_run_until_complete(loop, f);
  unsetenv("ALOOP_SENDFILE"); /* read when the transfer starts */
  aloop_future_release(f);
  aloop_free(loop);
  return n;
}

struct figures {
  double mib_s, cpu_per_gib;
};

/* One transfer: listen, let the client connect, send the file, close; checked on the client. */
static int run_once(const struct sender *s, struct figures *out) {
  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof a;
  if (bind(lfd, (struct sockaddr *)&a, sizeof a) < 0 || listen(lfd, 1) < 0 ||
      getsockname(lfd, (struct sockaddr *)&a, &len) < 0)
    return -errno;
  struct client c = {.port = ntohs(a.sin_port)};
  pthread_t th;
  pthread_create(&th, NULL, client_main, &c);
  int sock = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
  close(lfd);
  int file = open(cfg.path, O_RDONLY | O_CLOEXEC);
  double t0 = now_s(), c0 = cpu_s();
  int64_t sent = sock < 0 || file < 0 ? -errno
                 : s->driver         ? aloop_send(s, sock, file)
                                     : plain_send(sock, file, s->plain_sendfile);
  if (sock >= 0) close(sock);
  pthread_join(th, NULL);
  double t = now_s() - t0, cpu = cpu_s() - c0;
  if (file >= 0) close(file);
  if (sent < 0) return (int)sent;
  if (sent != cfg.size || c.got != cfg.size || c.h != cfg.checksum) {
    fprintf(stderr, "aloop-sendfile-bench: %s: sent %lld, received %lld bytes%s\n", s->name,
            (long long)sent, (long long)c.got, c.h != cfg.checksum ? ", not the file's" : "");
    return -EIO;
  }
  double gib = (double)cfg.size / (1 << 30);
  *out = (struct figures){(double)cfg.size / (1 << 20) / t, cpu / gib};
  return 0;
}

static int by_value(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, by_value);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void usage(FILE *out) {
  fprintf(out,
          "usage: aloop-sendfile-bench [--size MIB] [--repeats N] [--dir DIR]\n"
          "  --size     the file's size in MiB (default 256)\n"
          "  --repeats  rounds over every case, 1 to %d (default 3)\n"
          "  --dir      where the file is made (default $TMPDIR or /tmp)\n",
          MAX_REPEATS);
}

int main(int argc, char **argv) {
  const char *tmp = getenv("TMPDIR");
  snprintf(cfg.dir, sizeof cfg.dir, "%s", tmp && *tmp ? tmp : "/tmp");
  for (int i = 1; i < argc; i++) {
    char *end = NULL;
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(argv[i], "--size") && v && (cfg.size = strtoll(v, &end, 10) << 20, !*end) &&
        cfg.size > 0) {
      i++;
    } else if (!strcmp(argv[i], "--repeats") && v &&
               (cfg.repeats = (int)strtol(v, &end, 10), !*end) && cfg.repeats >= 1 &&
               cfg.repeats <= MAX_REPEATS) {
      i++;
    } else if (!strcmp(argv[i], "--dir") && v) {
      snprintf(cfg.dir, sizeof cfg.dir, "%s", argv[++i]);
    } else {
      usage(strcmp(argv[i], "--help") ? stderr : stdout);
      return strcmp(argv[i], "--help") ? 2 : 0;
    }
  }
  snprintf(cfg.path, sizeof cfg.path, "%s/aloop-sendfile-bench-%d", cfg.dir, (int)getpid());
  if (write_random_file(cfg.path, cfg.size, &cfg.checksum) < 0) {
    fprintf(stderr, "aloop-sendfile-bench: cannot write %s: %s\n", cfg.path, strerror(errno));
    unlink(cfg.path);
    return 1;
  }
  static const struct sender all[] = {
      {"aloop io_uring (splice pair)", "io_uring", NULL, false, false},
      {"aloop io_uring (no-splice: sendfile(2))", "io_uring", "no-splice", false, false},
      {"aloop libev (sendfile(2))", "libev", NULL, false, false},
      {"aloop select (sendfile(2))", "select", NULL, false, false},
      {"aloop io_uring (copy)", "io_uring", NULL, true, false},
      {"aloop libev (copy)", "libev", NULL, true, false},
      {"sendfile(2) loop, no event loop", NULL, NULL, false, true},
      {"read/write loop, no event loop", NULL, NULL, false, false},
  };
  enum { N = sizeof all / sizeof all[0] };
  double mib[N][MAX_REPEATS], cpu[N][MAX_REPEATS];
  bool skip[N] = {0};
  int rc = 0;
  for (int r = 0; r < cfg.repeats; r++) /* a round runs every case: slow spells fall on all */
    for (int i = 0; i < N; i++) {
      if (skip[i]) continue;
      struct figures f = {0, 0};
      int err = run_once(&all[i], &f);
      if (err < 0) {
        fprintf(stderr, "aloop-sendfile-bench: %s: %s\n", all[i].name, strerror(-err));
        skip[i] = true; /* a driver this kernel refuses, or a failed transfer */
        rc = err == -EIO ? 1 : rc;
        continue;
      }
      mib[i][r] = f.mib_s;
      cpu[i][r] = f.cpu_per_gib;
    }
  printf("sendfile: a %lld MiB file to one loopback TCP client, %d rounds\n\n",
         (long long)(cfg.size >> 20), cfg.repeats);
  printf("| sender | MiB/s (median of %d) | best | CPU s per GiB (median) |\n"
         "|---|---:|---:|---:|\n", cfg.repeats);
  for (int i = 0; i < N; i++) {
    if (skip[i]) {
      printf("| %s | - | - | - |\n", all[i].name);
      continue;
    }
    double best = 0;
    for (int r = 0; r < cfg.repeats; r++) best = mib[i][r] > best ? mib[i][r] : best;
    printf("| %s | %.0f | %.0f | %.2f |\n", all[i].name, median(mib[i], cfg.repeats), best,
           median(cpu[i], cfg.repeats));
  }
  unlink(cfg.path);
  return rc;
}
