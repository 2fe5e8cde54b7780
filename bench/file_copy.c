/* aloop-file-copy: copying one file, aloop's file operations on each driver against plain cp(1)
 * and a thread pool of pread/pwrite. Not a test: it asserts nothing about speed, but every copy is
 * checked against its source (a copy that differs is an error, not a figure).
 *
 * Each run copies the source (made once, pseudo-random, so the page cache holds it: this measures
 * the I/O path, not the disk) to a new file and closes it, without fsync unless --fsync. The
 * figures are MiB/s of the median and the best of --repeats runs, and the CPU time the copy cost
 * (every thread of the process, the kernel's io_uring workers included, and cp's).
 *   aloop DRIVER    --depth tasks, each reading a --chunk then writing it (aloop_file_read/write)
 *   aloop io_uring (executor)   the same with ALOOP_IO_URING=no-file-ops: what select and libev do,
 *                               on io_uring's loop
 *   cp              cp(1) of the same file (GNU cp may use copy_file_range: no copy to user space)
 *   thread pool     --threads threads taking --chunk pieces in turn with pread and pwrite
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "aloop.h"
#include "random_file.h"

enum { MAX_REPEATS = 15, MAX_THREADS = 64 };

static struct {
  int64_t size, chunk;
  int depth, threads, repeats;
  bool fsync;
  char dir[256], src[320], dst[320];
} cfg = {.size = 256 << 20, .chunk = 256 << 10, .depth = 64, .threads = 4, .repeats = 3};

/* CPU seconds (user + system) of this process's threads, the kernel's io_uring workers among
 * them, and of its waited-for children (cp). */
static double cpu_s(void) {
  double total = 0;
  int who[] = {RUSAGE_SELF, RUSAGE_CHILDREN};
  for (size_t i = 0; i < 2; i++) {
    struct rusage ru;
    getrusage(who[i], &ru);
    total += (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
             (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
  }
  return total;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- the source and the check ----------------------------------------------------------------- */

static int checksum(const char *path, uint64_t *out) {
  enum { BLOCK = 1 << 20 };
  char *block = malloc(BLOCK);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (!block || fd < 0) {
    free(block);
    if (fd >= 0) close(fd);
    return -1;
  }
  uint64_t h = RANDOM_FILE_SEED;
  ssize_t n;
  while ((n = read(fd, block, BLOCK)) > 0) h = random_file_mix(h, block, (size_t)n);
  close(fd);
  free(block);
  *out = h;
  return n < 0 ? -1 : 0;
}


/* ---- aloop: depth tasks over one loop ----------------------------------------------------------- */

struct aloop_copy {
  aloop_loop *loop;
  int src, dst;
  int64_t next;
};

static int64_t aloop_worker(void *arg) {
  struct aloop_copy *c = arg;
  char *buf = malloc((size_t)cfg.chunk);
  if (!buf) return -ENOMEM;
  int64_t err = 0;
  while (err == 0 && c->next < cfg.size) {
    int64_t at = c->next;
    c->next += cfg.chunk;
    int64_t n = aloop_await(aloop_file_read(c->loop, c->src, buf, (size_t)cfg.chunk, at));
    if (n <= 0) err = n < 0 ? n : -EIO;
    for (int64_t put = 0; err == 0 && put < n;) { /* a short write: the rest again */
      int64_t w = aloop_await(aloop_file_write(c->loop, c->dst, buf + put, (size_t)(n - put),
                                               at + put));
      if (w <= 0) err = w < 0 ? w : -EIO;
      else put += w;
    }
  }
  free(buf);
  return err;
}

static int64_t open_in(aloop_loop *loop, const char *path, int flags) {
  aloop_future *f = aloop_file_open(loop, path, flags, 0600);
  int64_t fd = aloop_run_until_complete(loop, f);
  if (fd < 0) fprintf(stderr, "aloop-file-copy: %s\n", aloop_future_message(f));
  aloop_future_release(f);
  return fd;
}

static int64_t settle(aloop_loop *loop, aloop_future *f) {
  int64_t r = aloop_run_until_complete(loop, f);
  aloop_future_release(f);
  return r;
}

static int copy_aloop(const char *backend) {
  aloop_options opts = {.size = sizeof opts, .backend = backend};
  aloop_loop *loop = aloop_new(&opts);
  if (!loop) return -1;
  struct aloop_copy c = {.loop = loop};
  int rc = -1;
  int64_t src = open_in(loop, cfg.src, O_RDONLY);
  int64_t dst = open_in(loop, cfg.dst, O_WRONLY | O_CREAT | O_TRUNC);
  if (src >= 0 && dst >= 0) {
    c.src = (int)src;
    c.dst = (int)dst;
    aloop_future *tasks[MAX_THREADS];
    for (int i = 0; i < cfg.depth; i++) tasks[i] = aloop_task_spawn(loop, aloop_worker, &c, NULL);
    aloop_future *all = aloop_gather(loop, tasks, (size_t)cfg.depth);
    rc = settle(loop, all) == cfg.depth ? 0 : -1;
    for (int i = 0; i < cfg.depth; i++) aloop_future_release(tasks[i]);
    if (rc == 0 && cfg.fsync) rc = settle(loop, aloop_file_fsync(loop, c.dst, true)) == 0 ? 0 : -1;
  }
  if (src >= 0) settle(loop, aloop_file_close(loop, (int)src));
  if (dst >= 0) settle(loop, aloop_file_close(loop, (int)dst));
  aloop_free(loop);
  return rc;
}

static int copy_aloop_io_uring(void) { return copy_aloop("io_uring"); }
static int copy_aloop_libev(void) { return copy_aloop("libev"); }
static int copy_aloop_select(void) { return copy_aloop("select"); }

static int copy_aloop_uring_executor(void) {
  setenv("ALOOP_IO_URING", "no-file-ops", 1); /* read when the loop is created */
  int rc = copy_aloop("io_uring");
  unsetenv("ALOOP_IO_URING");
  return rc;
}

/* ---- cp(1) --------------------------------------------------------------------------------------- */

static int copy_cp(void) {
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    execlp("cp", "cp", cfg.src, cfg.dst, (char *)NULL);
    _exit(127);
  }
  int status;
  if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status)) return -1;
  if (!cfg.fsync) return 0;
  int fd = open(cfg.dst, O_WRONLY | O_CLOEXEC);
  int rc = fd >= 0 && fdatasync(fd) == 0 ? 0 : -1;
  if (fd >= 0) close(fd);
  return rc;
}

/* ---- a thread pool of pread/pwrite ------------------------------------------------------------ */

struct pool_copy {
  int src, dst;
  atomic_llong next;
  atomic_int failed;
};

static void *pool_worker(void *arg) {
  struct pool_copy *c = arg;
  char *buf = malloc((size_t)cfg.chunk);
  if (!buf) {
    c->failed = 1;
    return NULL;
  }
  for (int64_t at; !c->failed && (at = atomic_fetch_add(&c->next, cfg.chunk)) < cfg.size;) {
    ssize_t n = pread(c->src, buf, (size_t)cfg.chunk, at);
    if (n <= 0) c->failed = 1;
    for (ssize_t put = 0, w; !c->failed && put < n; put += w)
      if ((w = pwrite(c->dst, buf + put, (size_t)(n - put), at + put)) <= 0) c->failed = 1;
  }
  free(buf);
  return NULL;
}

static int copy_pool(void) {
  struct pool_copy c = {.src = open(cfg.src, O_RDONLY | O_CLOEXEC),
                        .dst = open(cfg.dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)};
  pthread_t t[MAX_THREADS];
  int started = 0;
  if (c.src >= 0 && c.dst >= 0)
    for (; started < cfg.threads; started++)
      if (pthread_create(&t[started], NULL, pool_worker, &c)) break;
  for (int i = 0; i < started; i++) pthread_join(t[i], NULL);
  int rc = c.src >= 0 && c.dst >= 0 && started == cfg.threads && !c.failed ? 0 : -1;
  if (rc == 0 && cfg.fsync && fdatasync(c.dst) < 0) rc = -1;
  if (c.src >= 0) close(c.src);
  if (c.dst >= 0) close(c.dst);
  return rc;
}

/* ---- running the cases --------------------------------------------------------------------------- */

struct bench_case {
  const char *name, *driver; /* driver: the aloop driver it needs, or NULL */
  int (*copy)(void);
};

static const struct bench_case cases[] = {
    {"aloop io_uring (kernel requests)", "io_uring", copy_aloop_io_uring},
    {"aloop io_uring (executor: no-file-ops)", "io_uring", copy_aloop_uring_executor},
    {"aloop libev (executor)", "libev", copy_aloop_libev},
    {"aloop select (executor)", "select", copy_aloop_select},
    {"cp", NULL, copy_cp},
    {"thread pool (pread/pwrite)", NULL, copy_pool},
};

/* Why the driver cannot run here, or NULL if it can. */
static const char *unavailable(const char *driver, char *why, size_t n) {
  aloop_backend_info info[8];
  size_t count = aloop_list_backends(info, 8);
  for (size_t i = 0; i < count && i < 8; i++)
    if (!strcmp(info[i].name, driver)) {
      if (info[i].available) return NULL;
      snprintf(why, n, "%s", info[i].reason);
      return why;
    }
  snprintf(why, n, "not compiled in");
  return why;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

enum { NCASES = sizeof cases / sizeof cases[0] };

struct result {
  const char *skipped, *failed; /* why not, or NULL */
  char why[160];
  double mibs[MAX_REPEATS], cpu[MAX_REPEATS]; /* MiB/s and CPU s per GiB of each run */
};

/* One timed copy of case bc into r's run `run`, checked against the source's checksum. */
static void run_once(const struct bench_case *bc, struct result *r, int run, uint64_t expected) {
  unlink(cfg.dst);
  double t0 = now_s(), c0 = cpu_s();
  int rc = bc->copy();
  double t = now_s() - t0;
  r->cpu[run] = (cpu_s() - c0) / ((double)cfg.size / (1 << 30));
  r->mibs[run] = (double)cfg.size / (1 << 20) / t;
  uint64_t got = 0;
  if (rc < 0 || checksum(cfg.dst, &got) < 0 || got != expected)
    r->failed = rc < 0 ? "the copy failed" : "the copy differs from its source";
}

static void print_row(const struct bench_case *bc, struct result *r) {
  if (r->skipped || r->failed) {
    printf("| %s | %s: %s | | |\n", bc->name, r->skipped ? "skipped" : "FAILED",
           r->skipped ? r->skipped : r->failed);
    return;
  }
  qsort(r->mibs, (size_t)cfg.repeats, sizeof r->mibs[0], cmp_double);
  qsort(r->cpu, (size_t)cfg.repeats, sizeof r->cpu[0], cmp_double);
  printf("| %s | %.0f | %.0f | %.2f |\n", bc->name, r->mibs[cfg.repeats / 2],
         r->mibs[cfg.repeats - 1], r->cpu[cfg.repeats / 2]);
}

/* Every case once per round, --repeats rounds: a slow spell of a shared machine falls on all of
 * them alike, not on whichever case ran then. Returns 0, or -1 if a copy failed or differed. */
static int run_cases(uint64_t expected) {
  static struct result results[NCASES];
  for (size_t i = 0; i < NCASES; i++)
    if (cases[i].driver)
      results[i].skipped = unavailable(cases[i].driver, results[i].why, sizeof results[i].why);
  for (int run = 0; run < cfg.repeats; run++)
    for (size_t i = 0; i < NCASES; i++)
      if (!results[i].skipped && !results[i].failed)
        run_once(&cases[i], &results[i], run, expected);
  int rc = 0;
  for (size_t i = 0; i < NCASES; i++) {
    print_row(&cases[i], &results[i]);
    if (results[i].failed) rc = -1;
  }
  return rc;
}

static int usage(const char *prog, int rc) {
  fprintf(rc ? stderr : stdout,
          "usage: %s [--size MIB] [--chunk KIB] [--depth N (1-%d)] [--threads N (1-%d)]\n"
          "          [--repeats N (1-%d)] [--dir DIR] [--fsync] [--quick]\n"
          "Copies a file of --size MiB (256) in DIR ($TMPDIR or /tmp) with aloop on each driver\n"
          "(--depth tasks, 64), cp(1) and a pool of --threads pread/pwrite threads (4), in pieces\n"
          "of --chunk KiB (256); prints MiB/s, median and best of --repeats (3). --quick: 64 MiB.\n",
          prog, MAX_THREADS, MAX_THREADS, MAX_REPEATS);
  return rc;
}

static int parse_args(int argc, char **argv) {
  const char *tmp = getenv("TMPDIR");
  snprintf(cfg.dir, sizeof cfg.dir, "%s", tmp && *tmp ? tmp : "/tmp");
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--fsync")) cfg.fsync = true;
    else if (!strcmp(a, "--quick")) cfg.size = 64 << 20;
    else if (!strcmp(a, "--help")) return usage(argv[0], 0), 1;
    else if (!v) return usage(argv[0], 2);
    else if (!strcmp(a, "--size")) cfg.size = atoll(v) << 20, i++;
    else if (!strcmp(a, "--chunk")) cfg.chunk = atoll(v) << 10, i++;
    else if (!strcmp(a, "--depth")) cfg.depth = atoi(v), i++;
    else if (!strcmp(a, "--threads")) cfg.threads = atoi(v), i++;
    else if (!strcmp(a, "--repeats")) cfg.repeats = atoi(v), i++;
    else if (!strcmp(a, "--dir")) snprintf(cfg.dir, sizeof cfg.dir, "%s", v), i++;
    else return usage(argv[0], 2);
  }
  if (cfg.size <= 0 || cfg.chunk <= 0 || cfg.depth < 1 || cfg.depth > MAX_THREADS ||
      cfg.threads < 1 || cfg.threads > MAX_THREADS || cfg.repeats < 1 || cfg.repeats > MAX_REPEATS)
    return usage(argv[0], 2);
  return 0;
}

int main(int argc, char **argv) {
  int rc = parse_args(argc, argv);
  if (rc) return rc == 1 ? 0 : rc;
  char dir[300];
  snprintf(dir, sizeof dir, "%s/aloop-file-copy-XXXXXX", cfg.dir);
  if (!mkdtemp(dir)) {
    fprintf(stderr, "aloop-file-copy: cannot make a directory in %s: %s\n", cfg.dir,
            strerror(errno));
    return 1;
  }
  snprintf(cfg.src, sizeof cfg.src, "%s/src", dir);
  snprintf(cfg.dst, sizeof cfg.dst, "%s/dst", dir);
  uint64_t expected = 0;
  if (write_random_file(cfg.src, cfg.size, &expected) < 0) {
    fprintf(stderr, "aloop-file-copy: cannot write %s: %s\n", cfg.src, strerror(errno));
    rc = 1;
  } else {
    printf("file copy: %lld MiB in %lld KiB pieces, %d in flight (aloop), %d threads (pool), "
           "%s, in %s (page cache warm)\n\n",
           (long long)(cfg.size >> 20), (long long)(cfg.chunk >> 10), cfg.depth, cfg.threads,
           cfg.fsync ? "fdatasync at the end" : "no fsync", cfg.dir);
    printf("| copy | MiB/s (median of %d) | best | CPU s per GiB (median) |\n"
           "|---|---:|---:|---:|\n", cfg.repeats);
    fflush(stdout);
    if (run_cases(expected) < 0) rc = 1;
  }
  unlink(cfg.src);
  unlink(cfg.dst);
  rmdir(dir);
  return rc;
}
