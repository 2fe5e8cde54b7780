/* What the two load clients (load.c for echo, cf_load.c for charfinder's line protocol) share:
 * the clock, the server's CPU time read from /proc, the latency record and the summary they print
 * (the JSON fields bench/run and bench/charfinder read). Header-only: each client stays one file. */
#ifndef ALOOP_BENCH_LOAD_COMMON_H
#define ALOOP_BENCH_LOAD_COMMON_H

#include <dirent.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>
#include <time.h>

static inline uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* CPU time of every thread of the server processes, in ns (schedstat's first field). */
static inline uint64_t server_cpu_ns(const pid_t *pids, int npids) {
  uint64_t total = 0;
  for (int i = 0; i < npids; i++) {
    char dir[64];
    snprintf(dir, sizeof dir, "/proc/%d/task", (int)pids[i]);
    DIR *d = opendir(dir);
    if (!d) continue;
    for (struct dirent *e; (e = readdir(d));) {
      if (e->d_name[0] == '.') continue;
      char path[320];
      snprintf(path, sizeof path, "/proc/%d/task/%s/schedstat", (int)pids[i], e->d_name);
      FILE *f = fopen(path, "r");
      unsigned long long ns = 0;
      if (f && fscanf(f, "%llu", &ns) == 1) total += ns;
      if (f) fclose(f);
    }
    closedir(d);
  }
  return total;
}

/* The options both clients take; each has its own on top (--size, --query). */
enum { LOAD_MAX_PIDS = 64 };
struct load_options {
  const char *host;
  int port, connections;
  double duration, warmup;
  pid_t pids[LOAD_MAX_PIDS]; /* the server's processes, for its CPU time */
  int npids;
  bool json;
};

#define LOAD_LONG_OPTIONS                                                                   \
  {"host", 1, 0, 'h'}, {"port", 1, 0, 'p'}, {"connections", 1, 0, 'c'},                   \
      {"duration", 1, 0, 'd'}, {"warmup", 1, 0, 'w'}, {"pid", 1, 0, 'P'}, {"json", 0, 0, 'j'}

static inline struct load_options load_defaults(void) {
  return (struct load_options){.host = "127.0.0.1", .connections = 10, .duration = 5,
                               .warmup = 1};
}

/* One of the LOAD_LONG_OPTIONS (getopt's c and optarg): 1 taken, 0 not one of them, -1 bad. */
static inline int load_option(struct load_options *o, int c, const char *arg) {
  char *end = NULL;
  switch (c) {
    case 'h': o->host = arg; return 1;
    case 'p':
      o->port = (int)strtol(arg, &end, 10);
      return *end || o->port <= 0 || o->port > 65535 ? -1 : 1;
    case 'c':
      o->connections = (int)strtol(arg, &end, 10);
      return *end || o->connections <= 0 || o->connections > 100000 ? -1 : 1;
    case 'd':
      o->duration = strtod(arg, &end);
      return *end || o->duration <= 0 || o->duration > 3600 ? -1 : 1;
    case 'w':
      o->warmup = strtod(arg, &end);
      return *end || o->warmup < 0 || o->warmup > 600 ? -1 : 1;
    case 'P':
      if (o->npids == LOAD_MAX_PIDS) return -1;
      o->pids[o->npids++] = (pid_t)strtol(arg, &end, 10);
      return *end ? -1 : 1;
    case 'j': o->json = true; return 1;
    default: return 0;
  }
}

struct results {
  uint64_t requests, errors, *lat;
  size_t nlat, cap;
};

/* One request answered after ns. */
static inline void record(struct results *r, uint64_t ns) {
  r->requests++;
  if (r->nlat == r->cap) {
    r->cap = r->cap ? r->cap * 2 : 1 << 16;
    uint64_t *p = realloc(r->lat, r->cap * sizeof *p);
    if (!p) {
      perror("load");
      exit(1);
    }
    r->lat = p;
  }
  r->lat[r->nlat++] = ns;
}

static int cmp_u64(const void *x, const void *y) {
  uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
  return a < b ? -1 : a > b;
}

struct summary {
  double rps, mibs, cpu_us, secs, pct[4]; /* p50, p90, p99, p99.9 in us */
};

/* Requests/s, MiB/s (bytes per request given), percentiles, server CPU per request. */
static inline struct summary summarize(struct results *r, double secs, size_t bytes,
                                       uint64_t cpu_ns, bool have_cpu) {
  static const double at[4] = {0.50, 0.90, 0.99, 0.999};
  struct summary s = {.secs = secs};
  if (r->nlat) qsort(r->lat, r->nlat, sizeof *r->lat, cmp_u64);
  for (int i = 0; i < 4 && r->nlat; i++)
    s.pct[i] = (double)r->lat[(size_t)(at[i] * (double)(r->nlat - 1))] / 1e3;
  s.rps = secs > 0 ? (double)r->requests / secs : 0;
  s.mibs = s.rps * (double)bytes / (1 << 20);
  s.cpu_us = r->requests && have_cpu ? (double)cpu_ns / 1e3 / (double)r->requests : 0;
  return s;
}

/* The fields both clients print: as JSON members (no braces), or as one line of text. */
static inline void print_summary(const struct summary *s, const struct results *r, bool json) {
  if (json)
    printf("\"requests_per_s\": %.1f, \"mib_per_s\": %.2f, \"p50_us\": %.1f, \"p90_us\": %.1f, "
           "\"p99_us\": %.1f, \"p999_us\": %.1f, \"errors\": %llu, \"requests\": %llu, "
           "\"server_cpu_us_per_req\": %.3f, \"seconds\": %.2f",
           s->rps, s->mibs, s->pct[0], s->pct[1], s->pct[2], s->pct[3],
           (unsigned long long)r->errors, (unsigned long long)r->requests, s->cpu_us, s->secs);
  else
    printf("%.0f req/s, %.1f MiB/s, latency p50 %.1f us, p90 %.1f us, p99 %.1f us, p99.9 %.1f us, "
           "%llu errors, server CPU %.2f us/request",
           s->rps, s->mibs, s->pct[0], s->pct[1], s->pct[2], s->pct[3],
           (unsigned long long)r->errors, s->cpu_us);
}

#endif
