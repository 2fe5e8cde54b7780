/* aloop-https-echo: an HTTPS server that answers every request with the request itself: a task
 * per connection on streams over TLS (aloop_start_server with a server context), HTTP/1.1 with
 * keep-alive. What a client sent (request line, headers, body) comes back as a text/plain body,
 * so curl or a browser shows exactly what reached the server after decryption.
 *
 *   aloop-https-echo [--backend NAME] [--port N] --tls-cert FILE --tls-key FILE
 *
 * A head larger than HEAD_MAX or a body larger than BODY_MAX gets 431 or 413; a malformed head
 * gets 400; each then closes its connection, and the others are served on. SIGINT or SIGTERM
 * stops it. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/cli.h"

static const char *const prog = "aloop-https-echo";
enum { HEAD_MAX = 8192, BODY_MAX = 1024 * 1024 };

/* Content-Length's value (0 without one), or -1 if it is not a number, or there are two. */
static long long content_length(const char *head) {
  long long n = 0;
  int seen = 0;
  for (const char *p = strstr(head, "\r\n"); p && p[2] != '\r'; p = strstr(p + 2, "\r\n")) {
    if (strncasecmp(p + 2, "Content-Length:", 15)) continue;
    char *end;
    errno = 0;
    n = strtoll(p + 17, &end, 10);
    if (seen++ || errno || n < 0 || (*end != '\r' && *end != ' ')) return -1;
  }
  return n;
}

/* Whether the client asked to close after this request (HTTP/1.0 without keep-alive, or
 * "Connection: close"). */
static bool wants_close(const char *head) {
  bool http10 = strstr(head, " HTTP/1.0\r\n") != NULL;
  for (const char *p = strstr(head, "\r\n"); p && p[2] != '\r'; p = strstr(p + 2, "\r\n")) {
    if (strncasecmp(p + 2, "Connection:", 11)) continue;
    const char *v = p + 13;
    if (!strncasecmp(v, "close", 5)) return true;
    if (!strncasecmp(v, "keep-alive", 10)) return false;
  }
  return http10;
}

static void reply(aloop_stream *s, int status, const char *reason, const void *body,
                  size_t body_len, const void *more, size_t more_len, bool close) {
  char head[256];
  int n = snprintf(head, sizeof head,
                   "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
                   "Content-Length: %zu\r\nConnection: %s\r\n\r\n",
                   status, reason, body_len + more_len, close ? "close" : "keep-alive");
  struct iovec iov[] = {{head, (size_t)n}, {(void *)body, body_len}, {(void *)more, more_len}};
  aloop_stream_writelines(s, iov, 3); /* a failure shows up as the next read's error */
}

static void refuse(aloop_stream *s, int status, const char *reason) {
  char body[64];
  int n = snprintf(body, sizeof body, "%d %s\n", status, reason);
  reply(s, status, reason, body, (size_t)n, NULL, 0, true);
}

/* One connection: requests in turn until the client closes or asks to. */
static int64_t serve(aloop_stream *s, void *arg) {
  (void)arg;
  char head[HEAD_MAX + 1];
  char *body = NULL;
  for (;;) {
    int64_t n = aloop_await(aloop_stream_readuntil(s, "\r\n\r\n", 4, head, sizeof head));
    if (n == -ALOOP_ELIMIT) {
      refuse(s, 431, "Request Header Fields Too Large");
      break;
    }
    if (n < 0) break; /* the client went away, or closed between requests */
    head[n] = '\0';
    long long length = content_length(head);
    if (length < 0 || !strstr(head, " HTTP/1.")) {
      refuse(s, 400, "Bad Request");
      break;
    }
    if (length > BODY_MAX) {
      refuse(s, 413, "Content Too Large");
      break;
    }
    char *grown = realloc(body, (size_t)length + 1);
    if (!grown) {
      refuse(s, 503, "Service Unavailable");
      break;
    }
    body = grown;
    if (length && aloop_await(aloop_stream_readexactly(s, body, (size_t)length)) < 0) break;
    bool close = wants_close(head);
    reply(s, 200, "OK", head, (size_t)n, body, (size_t)length, close);
    if (close || aloop_await(aloop_stream_drain(s)) < 0) break;
  }
  free(body);
  aloop_await(aloop_stream_close(s));
  return 0;
}

static void on_stop_signal(aloop_loop *loop, void *arg) {
  (void)loop;
  aloop_future_cancel(arg);
}

static void usage(FILE *out) {
  fprintf(out,
          "usage: %s [--backend select|libev|io_uring|auto] [--port N] --tls-cert FILE "
          "--tls-key FILE\n"
          "  --port      the port on 127.0.0.1 (default 8443; 0: any free one)\n"
          "  --tls-cert  the certificate chain (PEM, the server's own certificate first)\n"
          "  --tls-key   its private key (PEM)\n",
          prog);
}

int main(int argc, char **argv) {
  const char *backend, *cert = NULL, *key = NULL;
  int rc = cli_take_backend(&argc, argv, prog, &backend);
  if (rc != CLI_CONTINUE) return rc;
  int port = 8443;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    char *end;
    if (!strcmp(a, "--help")) {
      usage(stdout);
      return 0;
    } else if (!strcmp(a, "--tls-cert") && v) {
      cert = argv[++i];
    } else if (!strcmp(a, "--tls-key") && v) {
      key = argv[++i];
    } else if (!(!strcmp(a, "--port") && v && (port = (int)strtol(argv[++i], &end, 10), !*end) &&
                 port >= 0 && port < 65536)) {
      usage(stderr);
      return CLI_EXIT_USAGE;
    }
  }
  if (!cert || !key) {
    fprintf(stderr, "%s: --tls-cert and --tls-key are needed\n", prog);
    return CLI_EXIT_USAGE;
  }
  char why[512];
  aloop_tls_context *tls = aloop_tls_server_context(cert, key, why, sizeof why);
  if (!tls) {
    fprintf(stderr, "%s: %s\n", prog, why);
    return 1;
  }
  aloop_loop *loop = cli_new_loop(prog, backend);
  if (!loop) return errno == ALOOP_EBACKEND ? CLI_EXIT_USAGE : 1;
  aloop_server_options o = {.size = sizeof o, .tls = tls};
  aloop_future *f = aloop_start_server(loop, serve, NULL, "127.0.0.1", port, &o);
  aloop_tls_context_free(tls); /* the server holds its own reference */
  if (aloop_run_until_complete(loop, f) < 0) {
    fprintf(stderr, "%s: %s\n", prog, aloop_future_message(f));
    return 1;
  }
  aloop_server *server = aloop_future_data(f);
  aloop_future_release(f);
  aloop_future *stop = aloop_future_new(loop, "stop");
  aloop_add_signal_handler(loop, SIGINT, on_stop_signal, stop);
  aloop_add_signal_handler(loop, SIGTERM, on_stop_signal, stop);
  printf("%s: %s driver, listening on 127.0.0.1:%d\n", prog, aloop_backend_name(loop),
         aloop_server_port(server));
  fflush(stdout);
  aloop_run_until_complete(loop, stop);
  aloop_future_release(stop);
  aloop_server_close(server);
  aloop_server_abort_clients(server); /* keep-alive connections would wait for their clients */
  aloop_future *gone = aloop_server_wait_closed(server);
  aloop_run_until_complete(loop, gone);
  aloop_future_release(gone);
  aloop_server_free(server);
  aloop_remove_signal_handler(loop, SIGINT);
  aloop_remove_signal_handler(loop, SIGTERM);
  aloop_free(loop);
  printf("%s: stopped\n", prog);
  return 0;
}
