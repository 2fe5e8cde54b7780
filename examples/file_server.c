/* aloop-file-server: the files of one directory over a minimal HTTP/1.0, sent with
 * aloop_transport_sendfile (the kernel copies them to the socket; no byte of them passes through
 * this program, except where the copy is forced with ALOOP_SENDFILE=copy).
 *
 *   aloop-file-server [--backend NAME] [--host H] [--port P] DIR
 *
 * GET /NAME answers 200 with the file's bytes (HEAD: the headers alone), 404 for what is not a
 * regular file under DIR, 400 for a malformed request or a name that would leave DIR ("..",
 * "//"), 405 for other methods; then the connection closes (HTTP/1.0). Each request is logged to
 * stderr with what was sent. A client that goes away mid-file costs nothing but its log line.
 * SIGINT or SIGTERM: stop accepting, abort open connections, exit 0. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cli.h"

static const char *const prog = "aloop-file-server";

/* A request head larger than this is refused: it is a few lines for any real client. */
enum { HEAD_MAX = 8192 };

struct site {
  int dir;
  const char *path;
};

struct conn {
  const struct site *site;
  aloop_transport *t;
  char head[HEAD_MAX + 1];
  size_t len;
  bool answered;  /* the head was complete: the rest of what the client sends is ignored */
  int file;       /* being sent, or -1 */
  char what[300]; /* "METHOD /name", for the log */
  bool sending, lost;
};

static void *new_conn(void *arg) {
  struct conn *c = calloc(1, sizeof *c);
  if (c) {
    c->site = arg;
    c->file = -1;
  }
  return c;
}

static void log_request(aloop_transport *t, const struct conn *c, const char *outcome) {
  char peer[ALOOP_SOCKADDR_STRLEN] = "?";
  aloop_sockaddr a;
  if (aloop_transport_peername(t, &a) == 0) aloop_sockaddr_str(&a, peer, sizeof peer);
  fprintf(stderr, "%s: %s %s %s\n", prog, peer, c->what, outcome);
}

/* A status line and headers; with a body of its own (errors), the connection closes after it. */
static void answer(aloop_transport *t, struct conn *c, int status, const char *reason,
                   long long length, const char *body) {
  char head[256];
  int n = snprintf(head, sizeof head,
                   "HTTP/1.0 %d %s\r\nContent-Length: %lld\r\nContent-Type: %s\r\n"
                   "Connection: close\r\n\r\n%s",
                   status, reason, length, body ? "text/plain" : "application/octet-stream",
                   body ? body : "");
  aloop_transport_write(t, head, (size_t)n); /* a failure is connection_lost's news */
  if (body) {
    char outcome[64];
    snprintf(outcome, sizeof outcome, "%d", status);
    log_request(t, c, outcome);
    aloop_transport_close(t);
  }
}

static void fail_request(aloop_transport *t, struct conn *c, int status, const char *reason) {
  char body[64];
  snprintf(body, sizeof body, "%d %s\n", status, reason);
  answer(t, c, status, reason, (long long)strlen(body), body);
}

/* The name under the directory, or NULL if it would leave it: no "..", no empty segment (an
 * absolute path would make openat ignore the directory). "/" is "index.html". */
static const char *name_of(char *target) {
  if (target[0] != '/') return NULL;
  char *name = target + 1;
  if (!*name) return "index.html";
  for (char *seg = name;;) {
    char *slash = strchr(seg, '/');
    size_t len = slash ? (size_t)(slash - seg) : strlen(seg);
    if (len == 0 || (len == 2 && !memcmp(seg, "..", 2)) || (len == 1 && seg[0] == '.'))
      return NULL;
    if (!slash) return name;
    seg = slash + 1;
  }
}

static void file_sent(aloop_future *f, void *arg);

static void serve_request(aloop_transport *t, struct conn *c) {
  char *line_end = strstr(c->head, "\r\n");
  *line_end = '\0';
  char method[16], target[256], version[16];
  if (sscanf(c->head, "%15s %255s %15s", method, target, version) != 3 ||
      strncmp(version, "HTTP/1.", 7)) {
    snprintf(c->what, sizeof c->what, "(malformed)");
    fail_request(t, c, 400, "Bad Request");
    return;
  }
  snprintf(c->what, sizeof c->what, "%s %s", method, target);
  bool head_only = !strcmp(method, "HEAD");
  if (!head_only && strcmp(method, "GET")) {
    fail_request(t, c, 405, "Method Not Allowed");
    return;
  }
  char *query = strchr(target, '?');
  if (query) *query = '\0';
  const char *name = name_of(target);
  if (!name) {
    fail_request(t, c, 400, "Bad Request");
    return;
  }
  struct stat st;
  int fd = openat(c->site->dir, name, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
    if (fd >= 0) close(fd);
    fail_request(t, c, 404, "Not Found");
    return;
  }
  answer(t, c, 200, "OK", (long long)st.st_size, NULL);
  if (head_only) {
    close(fd);
    log_request(t, c, "200 (headers only)");
    aloop_transport_close(t);
    return;
  }
  /* The size now is the Content-Length promised: a file that grows meanwhile is cut there. */
  aloop_future *sent = aloop_transport_sendfile(t, fd, 0, (size_t)st.st_size);
  if (!sent || aloop_future_add_done_callback(sent, file_sent, c) < 0) {
    close(fd);
    aloop_transport_fail(t, -ENOMEM, "cannot send %s", name);
    aloop_future_release(sent);
    return;
  }
  aloop_future_release(sent); /* the transfer holds its own reference until it is done */
  c->file = fd;
  c->sending = true;
}

/* The file is sent, or could not be (the client went away: the message says after how many
 * bytes). Either way the connection closes; the conn goes with whichever of this and
 * connection_lost comes last. */
static void file_sent(aloop_future *f, void *arg) {
  struct conn *c = arg;
  int64_t n = aloop_future_outcome(f);
  char outcome[300];
  if (n >= 0)
    snprintf(outcome, sizeof outcome, "200 %lld bytes", (long long)n);
  else
    snprintf(outcome, sizeof outcome, "200 cut short: %s", aloop_future_message(f));
  close(c->file);
  c->file = -1;
  c->sending = false;
  if (c->lost) {
    fprintf(stderr, "%s: %s %s\n", prog, c->what, outcome);
    free(c);
    return;
  }
  log_request(c->t, c, outcome);
  aloop_transport_close(c->t);
}

static void made(aloop_transport *t, void *ctx) { ((struct conn *)ctx)->t = t; }

static void received(aloop_transport *t, const void *data, size_t n, void *ctx) {
  struct conn *c = ctx;
  if (c->answered) return;
  size_t room = HEAD_MAX - c->len, k = n < room ? n : room;
  memcpy(c->head + c->len, data, k);
  c->len += k;
  c->head[c->len] = '\0';
  if (strstr(c->head, "\r\n\r\n")) {
    c->answered = true;
    serve_request(t, c);
  } else if (c->len == HEAD_MAX) {
    c->answered = true;
    snprintf(c->what, sizeof c->what, "(head too large)");
    fail_request(t, c, 400, "Bad Request");
  }
}

static void lost(aloop_transport *t, int err, void *ctx) {
  (void)t, (void)err;
  struct conn *c = ctx;
  c->lost = true;
  if (!c->sending) free(c); /* else file_sent frees it, after the transfer's end */
}

static const aloop_protocol http = {.connection_made = made, .data_received = received,
                                    .connection_lost = lost};

/* ---- serving ------------------------------------------------------------------------------------ */

static void stop_on_signal(aloop_loop *loop, void *arg) {
  (void)arg;
  aloop_stop(loop);
}

static int serve(aloop_loop *loop, const struct site *site, const char *host, int port) {
  aloop_future *f = aloop_create_server(loop, &http, new_conn, (void *)site, host, port, NULL);
  int64_t err = f ? aloop_run_until_complete(loop, f) : -ENOMEM;
  if (err < 0) {
    fprintf(stderr, "%s: cannot serve on %s:%d: %s\n", prog, host, port,
            f ? aloop_future_message(f) : aloop_strerror((int)err));
    aloop_future_release(f);
    return 1;
  }
  aloop_server *server = aloop_future_data(f);
  aloop_future_release(f);
  printf("%s: %s driver, serving %s on %s:%d\n", prog, aloop_backend_name(loop), site->path, host,
         aloop_server_port(server));
  fflush(stdout);
  aloop_add_signal_handler(loop, SIGINT, stop_on_signal, NULL);
  aloop_add_signal_handler(loop, SIGTERM, stop_on_signal, NULL);
  aloop_run(loop);
  aloop_remove_signal_handler(loop, SIGINT);
  aloop_remove_signal_handler(loop, SIGTERM);
  /* Stop accepting and abort what is open (a transfer in flight fails and logs), then wait until
   * every connection is gone, so nothing is left behind. */
  aloop_server_close(server);
  aloop_server_abort_clients(server);
  aloop_future *gone = aloop_server_wait_closed(server);
  aloop_run_until_complete(loop, gone);
  aloop_future_release(gone);
  aloop_server_free(server);
  return 0;
}

static int usage(void) {
  fprintf(stderr, "usage: %s [--backend NAME] [--host H] [--port P] DIR\n", prog);
  return CLI_EXIT_USAGE;
}

int main(int argc, char **argv) {
  const char *backend = NULL, *host = "127.0.0.1", *dir = NULL;
  int rc = cli_take_backend(&argc, argv, prog, &backend);
  if (rc != CLI_CONTINUE) return rc;
  int port = 8080;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--port") && i + 1 < argc) {
      char *end;
      long v = strtol(argv[++i], &end, 10);
      if (*end || v < 0 || v > 65535) return usage();
      port = (int)v;
    } else if (!strcmp(argv[i], "--host") && i + 1 < argc) {
      host = argv[++i];
    } else if (argv[i][0] == '-' || dir) {
      return usage();
    } else {
      dir = argv[i];
    }
  }
  if (!dir) return usage();
  struct site site = {.dir = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), .path = dir};
  if (site.dir < 0) {
    fprintf(stderr, "%s: %s: %s\n", prog, dir, strerror(errno));
    return 1;
  }
  aloop_loop *loop = cli_new_loop(prog, backend);
  if (!loop) return 1;
  rc = serve(loop, &site, host, port);
  aloop_free(loop);
  close(site.dir);
  return rc;
}
