/* aloop-udp-lookup: a tiny DNS-style request and answer over UDP, both sides in one program.
 *
 *   aloop-udp-lookup [--backend NAME] --serve [--port P]     answer lookups (port 0: any free one)
 *   aloop-udp-lookup [--backend NAME] --port P NAME...       look names up, one line each
 *
 * A request is one datagram "ID NAME" (ID a number the client chose); the answer repeats both:
 * "ID NAME ADDRESS", or "ID NAME NXDOMAIN" for a name the table lacks, and "0 - ERROR" for a
 * datagram that is not a request. The server is a datagram protocol; the client is a task on
 * aloop_sock_sendto / aloop_sock_recvfrom that waits at most a second for each answer and asks
 * again (three times at most), as a resolver does, since a datagram may be lost. Answers to an
 * earlier try or to another id are skipped. Exit status of the client: 0 if every name had an
 * answer (NXDOMAIN is one), 1 if not. */
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/cli.h"

static const char *const prog = "aloop-udp-lookup";

enum { MSG_MAX = 512, TRIES = 3 };

static const struct {
  const char *name, *address;
} table[] = {
    {"localhost", "127.0.0.1"},
    {"example.test", "192.0.2.1"},
    {"mail.example.test", "192.0.2.25"},
    {"v6.example.test", "2001:db8::1"},
};

static const char *look_up(const char *name) {
  for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
    if (!strcmp(table[i].name, name)) return table[i].address;
  return NULL;
}

/* ---- the server: a datagram protocol ----------------------------------------------------------- */

/* "ID NAME" into its parts; false for anything else (no NUL, no space, an empty name...). */
static bool parse_request(const char *msg, size_t n, unsigned *id, char *name, size_t cap) {
  char text[MSG_MAX + 1];
  if (n == 0 || n > MSG_MAX || memchr(msg, '\0', n)) return false;
  memcpy(text, msg, n);
  text[n] = '\0';
  char *end;
  unsigned long v = strtoul(text, &end, 10);
  if (end == text || *end != ' ' || v == 0 || v > 65535) return false;
  const char *at = end + 1;
  size_t len = strlen(at);
  if (!len || len >= cap || strchr(at, ' ')) return false;
  *id = (unsigned)v;
  memcpy(name, at, len + 1);
  return true;
}

static void answer(aloop_datagram_transport *t, const void *data, size_t n,
                   const aloop_sockaddr *from, void *ctx) {
  (void)ctx;
  unsigned id;
  char name[MSG_MAX], reply[MSG_MAX * 2];
  int len;
  if (parse_request(data, n, &id, name, sizeof name)) {
    const char *address = look_up(name);
    len = snprintf(reply, sizeof reply, "%u %s %s", id, name, address ? address : "NXDOMAIN");
  } else {
    len = snprintf(reply, sizeof reply, "0 - ERROR");
  }
  aloop_datagram_sendto(t, reply, (size_t)len, from); /* its failure goes to error_received */
}

static void answer_failed(aloop_datagram_transport *t, int err, void *ctx) {
  (void)t, (void)ctx;
  fprintf(stderr, "%s: an answer was lost: %s\n", prog, aloop_strerror(err));
}

static void server_closed(aloop_datagram_transport *t, int err, void *ctx) {
  (void)err, (void)ctx;
  aloop_stop(aloop_datagram_loop(t)); /* the loop has run until the transport let go of all */
}

static const aloop_datagram_protocol server_protocol = {.datagram_received = answer,
                                                        .error_received = answer_failed,
                                                        .connection_lost = server_closed};

static void stop_on_signal(aloop_loop *loop, void *arg) {
  (void)arg;
  aloop_stop(loop);
}

static int serve(aloop_loop *loop, int port) {
  aloop_datagram_options o = {.size = sizeof o, .local_host = "127.0.0.1", .local_port = port};
  aloop_future *f = aloop_create_datagram_endpoint(loop, &server_protocol, NULL, &o);
  int64_t err = f ? aloop_run_until_complete(loop, f) : -ENOMEM;
  if (err < 0) {
    fprintf(stderr, "%s: cannot serve on 127.0.0.1:%d: %s\n", prog, port,
            f ? aloop_future_message(f) : aloop_strerror((int)err));
    aloop_future_release(f);
    return 1;
  }
  aloop_datagram_transport *t = aloop_future_data(f);
  aloop_future_release(f);
  aloop_sockaddr me;
  aloop_datagram_sockname(t, &me);
  char where[ALOOP_SOCKADDR_STRLEN];
  printf("%s: %s driver, listening on %s\n", prog, aloop_backend_name(loop),
         aloop_sockaddr_str(&me, where, sizeof where));
  fflush(stdout);
  aloop_add_signal_handler(loop, SIGINT, stop_on_signal, NULL);
  aloop_add_signal_handler(loop, SIGTERM, stop_on_signal, NULL);
  aloop_run(loop);
  aloop_remove_signal_handler(loop, SIGINT);
  aloop_remove_signal_handler(loop, SIGTERM);
  aloop_datagram_close(t);
  aloop_run(loop); /* until its connection_lost: a receive in flight is cancelled first */
  return 0;
}

/* ---- the client: a task on socket operations --------------------------------------------------- */

struct query {
  aloop_loop *loop;
  int port;
  char **names;
  int count, answered;
};

/* The answer to "id name" into reply, waiting at most a second: its length, -ETIMEDOUT, or an
 * error. Datagrams that answer something else are skipped. */
static int64_t await_answer(aloop_loop *loop, int fd, unsigned id, const char *name, char *reply) {
  char want[MSG_MAX + 16];
  int wn = snprintf(want, sizeof want, "%u %s ", id, name);
  int64_t deadline = aloop_time(loop) + 1000000000;
  for (;;) {
    int64_t left = deadline - aloop_time(loop);
    if (left <= 0) return -ETIMEDOUT;
    aloop_future *recv = aloop_sock_recvfrom(loop, fd, reply, MSG_MAX, NULL);
    if (!recv) return -ENOMEM;
    int64_t n = aloop_await(aloop_wait_for(loop, recv, left)); /* wait_for holds its own ref */
    aloop_future_release(recv);
    if (n < 0) return n;
    reply[n] = '\0';
    if (n > wn && !memcmp(reply, want, (size_t)wn)) return n;
  }
}

static int64_t ask_all(void *arg) {
  struct query *q = arg;
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return aloop_task_error(-errno, "socket");
  aloop_sockaddr server = {.len = sizeof(struct sockaddr_in)};
  struct sockaddr_in *sin = (struct sockaddr_in *)&server.addr;
  *sin = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons((uint16_t)q->port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  for (int i = 0; i < q->count; i++) {
    unsigned id = (unsigned)(i + 1);
    char request[MSG_MAX + 16], reply[MSG_MAX + 1];
    int len = snprintf(request, sizeof request, "%u %s", id, q->names[i]);
    int64_t n = -ETIMEDOUT;
    for (int k = 0; k < TRIES && n == -ETIMEDOUT; k++) {
      n = aloop_await(aloop_sock_sendto(q->loop, fd, request, (size_t)len, &server));
      if (n >= 0) n = await_answer(q->loop, fd, id, q->names[i], reply);
    }
    if (n < 0) {
      printf("%s: no answer (%s)\n", q->names[i], aloop_strerror((int)n));
      continue;
    }
    printf("%s %s\n", q->names[i], strrchr(reply, ' ') + 1);
    q->answered++;
  }
  aloop_close(q->loop, fd);
  return 0;
}

static int query(aloop_loop *loop, int port, char **names, int count) {
  struct query q = {loop, port, names, count, 0};
  aloop_future *t = aloop_task_spawn(loop, ask_all, &q, NULL);
  int64_t rc = t ? aloop_run_until_complete(loop, t) : -ENOMEM;
  if (rc < 0) fprintf(stderr, "%s: %s\n", prog, t ? aloop_future_message(t) : aloop_strerror((int)rc));
  aloop_future_release(t);
  return rc == 0 && q.answered == count ? 0 : 1;
}

/* ---- the command line ------------------------------------------------------------------------------ */

static int usage(void) {
  fprintf(stderr,
          "usage: %s [--backend NAME] --serve [--port P]\n"
          "       %s [--backend NAME] --port P NAME...\n",
          prog, prog);
  return CLI_EXIT_USAGE;
}

int main(int argc, char **argv) {
  const char *backend = NULL;
  int rc = cli_take_backend(&argc, argv, prog, &backend);
  if (rc != CLI_CONTINUE) return rc;
  bool server = false;
  int port = -1, first_name = argc;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--serve")) {
      server = true;
    } else if (!strcmp(argv[i], "--port") && i + 1 < argc) {
      char *end;
      long v = strtol(argv[++i], &end, 10);
      if (*end || v < 0 || v > 65535) return usage();
      port = (int)v;
    } else if (argv[i][0] == '-') {
      return usage();
    } else {
      first_name = i;
      break;
    }
  }
  if (server ? first_name != argc : (port <= 0 || first_name == argc)) return usage();
  aloop_loop *loop = cli_new_loop(prog, backend);
  if (!loop) return 1;
  rc = server ? serve(loop, port < 0 ? 0 : port) : query(loop, port, argv + first_name,
                                                         argc - first_name);
  aloop_free(loop);
  return rc;
}
