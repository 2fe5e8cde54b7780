/* aloop-charfinder: find Unicode characters by name, on the command line, over TCP (a line
 * protocol for telnet or nc) and over HTTP (a web page and a JSON API), on any aloop driver.
 *   aloop-charfinder query WORD...          print the matches and a status line, then exit
 *   aloop-charfinder [--tcp [HOST:]PORT] [--http [HOST:]PORT] ...   serve until SIGINT/SIGTERM */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "charfinder/servers.h"
#include "common/cli.h"

static const char *const prog = "aloop-charfinder";

struct endpoint {
  bool on;
  char host[256];
  int port;
};

struct options {
  const char *backend, *index_path, *unicode_data;
  const char *tls_cert, *tls_key; /* HTTPS with this certificate chain and key */
  struct endpoint tcp, http;
  bool quiet;
  double timeout, grace;
  long max_connections;
};

static void usage(FILE *out) {
  fprintf(out,
          "usage: %s query WORD...\n"
          "       %s [--tcp [HOST:]PORT] [--http [HOST:]PORT] [--backend B] [--quiet]\n"
          "          [--timeout S] [--grace S] [--max-connections N] [--index FILE]\n"
          "          [--unicode-data FILE] [--tls-cert FILE --tls-key FILE]\n"
          "       %s --list-backends\n"
          "  query        print the characters whose names have every WORD, then a status line\n"
          "  --tcp        serve the line protocol (default 127.0.0.1:2323)\n"
          "  --http       serve the web page and /api/search (default 127.0.0.1:8888)\n"
          "               with neither, both are served on their defaults; port 0: any free port\n"
          "  --backend    select|libev|io_uring|auto (default: $ALOOP_BACKEND, else auto)\n"
          "  --quiet      no line per query on stdout\n"
          "  --timeout    seconds a request may take from its first byte (an HTTP head or body,\n"
          "               a TCP line), an HTTP connection may be idle, and a client may leave\n"
          "               its answer unread before it is dropped (15)\n"
          "  --grace      on SIGINT/SIGTERM, seconds open connections may go on (2)\n"
          "  --max-connections  at most N open at once on each server; the kernel's backlog\n"
          "               holds the next ones (0: no limit; default 0)\n"
          "  --index      the index file (default: $ALOOP_CHARFINDER_INDEX, else\n"
          "               ~/.cache/aloop/charfinder.index); built when missing or stale\n"
          "  --unicode-data  the source of the index (default %s)\n"
          "  --tls-cert, --tls-key  serve HTTP over TLS (HTTPS) with this certificate chain\n"
          "               and private key (PEM)\n",
          prog, prog, prog, CF_UNICODE_DATA);
}

/* "[HOST:]PORT" into e; false if it is not that. */
static bool parse_endpoint(const char *s, const char *default_host, struct endpoint *e) {
  const char *colon = strrchr(s, ':');
  const char *port = colon ? colon + 1 : s;
  size_t hlen = colon ? (size_t)(colon - s) : 0;
  if (hlen >= sizeof e->host) return false;
  if (colon) {
    memcpy(e->host, s, hlen);
    e->host[hlen] = 0;
    if (hlen >= 2 && e->host[0] == '[' && e->host[hlen - 1] == ']') { /* [::1]:8888 */
      memmove(e->host, e->host + 1, hlen - 2);
      e->host[hlen - 2] = 0;
    }
  } else {
    snprintf(e->host, sizeof e->host, "%s", default_host);
  }
  char *end;
  long p = strtol(port, &end, 10);
  if (!*port || *end || p < 0 || p > 65535) return false;
  e->port = (int)p;
  e->on = true;
  return true;
}

static int parse(int argc, char **argv, struct options *o, int *query_at) {
  int rc = cli_take_backend(&argc, argv, prog, &o->backend);
  if (rc != CLI_CONTINUE) return rc;
  for (int i = 1; i < argc; i += 2) { /* an option and its value (--quiet has none: i-- below) */
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    char *end = NULL;
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      usage(stdout);
      return CLI_EXIT_OK;
    } else if (!strcmp(a, "query")) {
      *query_at = i + 1;
      return CLI_CONTINUE;
    } else if (!strcmp(a, "--quiet")) {
      o->quiet = true;
      i--;
    } else if (!strcmp(a, "--tcp") && v && parse_endpoint(v, "127.0.0.1", &o->tcp)) {
    } else if (!strcmp(a, "--http") && v && parse_endpoint(v, "127.0.0.1", &o->http)) {
    } else if (!strcmp(a, "--tls-cert") && v) {
      o->tls_cert = v;
    } else if (!strcmp(a, "--tls-key") && v) {
      o->tls_key = v;
    } else if (!strcmp(a, "--index") && v) {
      o->index_path = v;
    } else if (!strcmp(a, "--unicode-data") && v) {
      o->unicode_data = v;
    } else if (!strcmp(a, "--timeout") && v && (o->timeout = strtod(v, &end), !*end) &&
               o->timeout > 0) {
    } else if (!strcmp(a, "--grace") && v && (o->grace = strtod(v, &end), !*end) && o->grace >= 0) {
    } else if (!strcmp(a, "--max-connections") && v &&
               (o->max_connections = strtol(v, &end, 10), !*end) && o->max_connections >= 0) {
    } else {
      fprintf(stderr, "%s: bad argument '%s'%s\n", prog, a, v ? "" : " (or its value is missing)");
      usage(stderr);
      return CLI_EXIT_USAGE;
    }
  }
  if (!o->tls_cert != !o->tls_key) {
    fprintf(stderr, "%s: --tls-cert and --tls-key go together\n", prog);
    return CLI_EXIT_USAGE;
  }
  return CLI_CONTINUE;
}

static cf_index *open_index(const struct options *o) {
  char path[4096], err[512];
  const char *p = o->index_path ? o->index_path : cf_default_index_path(path, sizeof path);
  cf_index *ix = cf_index_open(p, o->unicode_data, stderr, err, sizeof err);
  if (!ix) fprintf(stderr, "%s: %s\n", prog, err);
  return ix;
}

/* As the original's command line: the query is the words joined by spaces. */
static int run_query(const cf_index *ix, int argc, char **argv, int at) {
  cf_buf q = {0}, out = {0};
  for (int i = at; i < argc; i++) {
    if (i > at) cf_buf_add(&q, " ", 1);
    cf_buf_adds(&q, argv[i]);
  }
  cf_result r;
  if (cf_find(ix, q.data ? q.data : "", q.len, &r) < 0) {
    fprintf(stderr, "%s: out of memory\n", prog);
    return 1;
  }
  for (size_t i = 0; i < r.count; i++) {
    out.len = 0;
    cf_describe(ix, r.ids[i], &out);
    cf_buf_add(&out, "\n", 1);
    fwrite(out.data, 1, out.len, stdout);
  }
  out.len = 0;
  cf_buf_add(&out, "(", 1);
  cf_status(ix, q.data ? q.data : "", q.len, r.count, &out);
  cf_buf_add(&out, ")\n", 2);
  fwrite(out.data, 1, out.len, stdout);
  cf_result_free(&r);
  cf_buf_free(&q);
  cf_buf_free(&out);
  return fflush(stdout) == 0 ? 0 : 1;
}

static aloop_future *stop_requested;
static void on_stop_signal(aloop_loop *loop, void *arg) {
  (void)loop, (void)arg;
  aloop_future_set_result(stop_requested, 0);
}

static aloop_server *start(aloop_loop *loop, aloop_future *f, const char *what,
                           const struct endpoint *e) {
  if (aloop_run_until_complete(loop, f) < 0) {
    fprintf(stderr, "%s: %s server on %s:%d: %s\n", prog, what, e->host, e->port,
            aloop_future_message(f));
    aloop_future_release(f);
    return NULL;
  }
  aloop_server *s = aloop_future_data(f);
  aloop_future_release(f);
  printf("%s: %s on %s:%d\n", prog, what, e->host, aloop_server_port(s));
  return s;
}

/* Let open connections finish for the grace period, abort what is left; returns how many were. */
static size_t stop(aloop_loop *loop, aloop_server *s, int64_t grace_ns) {
  if (!s) return 0;
  size_t aborted = 0;
  aloop_server_close(s);
  aloop_future *closed = aloop_server_wait_closed(s);
  aloop_future *grace = aloop_wait_for(loop, closed, grace_ns);
  if (aloop_run_until_complete(loop, grace) < 0) {
    aborted = aloop_server_connections(s);
    aloop_server_abort_clients(s);
  }
  aloop_future_release(grace);
  aloop_future_release(closed);
  aloop_future *gone = aloop_server_wait_closed(s);
  aloop_run_until_complete(loop, gone);
  aloop_future_release(gone);
  aloop_server_free(s);
  return aborted;
}

static int serve(const struct options *o, const cf_index *ix) {
  aloop_loop *loop = cli_new_loop(prog, o->backend);
  if (!loop) return errno == ALOOP_EBACKEND ? CLI_EXIT_USAGE : 1;
  struct cf_config cfg = {.index = ix, .log = o->quiet ? NULL : stdout,
                          .timeout = (int64_t)(o->timeout * 1e9),
                          .max_connections = (size_t)o->max_connections};
  if (o->tls_cert) {
    char why[512];
    if (!(cfg.tls = aloop_tls_server_context(o->tls_cert, o->tls_key, why, sizeof why))) {
      fprintf(stderr, "%s: %s\n", prog, why);
      aloop_free(loop);
      return 1;
    }
  }
  printf("%s: %zu characters indexed; %s driver\n", prog, cf_index_size(ix),
         aloop_backend_name(loop));
  aloop_server *tcp = NULL, *http = NULL;
  int rc = 0;
  if (o->tcp.on &&
      !(tcp = start(loop, cf_tcp_serve(loop, &cfg, o->tcp.host, o->tcp.port), "TCP", &o->tcp)))
    rc = 1;
  if (!rc && o->http.on &&
      !(http = start(loop, cf_http_serve(loop, &cfg, o->http.host, o->http.port),
                     cfg.tls ? "HTTPS" : "HTTP", &o->http)))
    rc = 1;
  aloop_tls_context_free(cfg.tls); /* the server holds its own */
  fflush(stdout);
  if (!rc) {
    stop_requested = aloop_future_new(loop, "stop");
    aloop_add_signal_handler(loop, SIGINT, on_stop_signal, NULL);
    aloop_add_signal_handler(loop, SIGTERM, on_stop_signal, NULL);
    aloop_run_until_complete(loop, stop_requested);
    aloop_remove_signal_handler(loop, SIGINT);
    aloop_remove_signal_handler(loop, SIGTERM);
    aloop_future_release(stop_requested);
  }
  int64_t grace_ns = (int64_t)(o->grace * 1e9);
  size_t open = (tcp ? aloop_server_connections(tcp) : 0) +
                (http ? aloop_server_connections(http) : 0);
  if (tcp) aloop_server_close(tcp); /* neither accepts while the other winds down */
  if (http) aloop_server_close(http);
  cf_http_finish_all(&cfg); /* idle kept-alive connections need no grace period */
  size_t aborted = stop(loop, tcp, grace_ns) + stop(loop, http, grace_ns);
  size_t finished = open - aborted;
  if (!rc)
    printf("%s: stopped: %zu connection%s finished, %zu aborted after the %.3g s grace period\n",
           prog, finished, finished == 1 ? "" : "s", aborted, o->grace);
  aloop_run_once(loop, 0);
  aloop_free(loop);
  return rc;
}

int main(int argc, char **argv) {
  struct options o = {.unicode_data = CF_UNICODE_DATA, .timeout = 15, .grace = 2};
  int query_at = 0;
  int rc = parse(argc, argv, &o, &query_at);
  if (rc != CLI_CONTINUE) return rc;
  if (!query_at && !o.tcp.on && !o.http.on) {
    parse_endpoint("2323", "127.0.0.1", &o.tcp);
    parse_endpoint("8888", "127.0.0.1", &o.http);
  }
  signal(SIGPIPE, SIG_IGN);
  cf_index *ix = open_index(&o);
  if (!ix) return 1;
  rc = query_at ? run_query(ix, argc, argv, query_at) : serve(&o, ix);
  cf_index_close(ix);
  return rc;
}
