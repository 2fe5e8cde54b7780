/* The echo servers as a user runs them: aloop-echo in each mode and the task-style example,
 * started on each compiled driver on an ephemeral port, fed payloads from 1 byte to 1 MiB by
 * several clients at once (plain blocking sockets in threads: nothing of aloop on this side),
 * checked byte for byte, then stopped with SIGTERM, with and without a connection still open;
 * with --udp / --udp-only, UDP datagrams from 0 to 65,507 bytes echoed on the same port; and with
 * --tls-cert/--tls-key, openssl s_client and a Python ssl client served over TLS. */
#include "../run_suite.h"
#include "programs.h"
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "aloop.h"

#define EXAMPLE "examples/aloop-echo-tasks"
#define ECHO "apps/aloop-echo"

struct server {
  pid_t pid;
  FILE *out;
  int port;
};

/* mode NULL: the example; else aloop-echo in that mode, with the flags in `more` (NULL-ended;
 * NULL: none). */
static struct server start_server_with(const char *backend, const char *mode,
                                       const char *const *more) {
  int p[2];
  ck_assert_int_eq(pipe(p), 0);
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    dup2(p[1], 1);
    close(p[0]);
    if (mode) {
      const char *argv[16] = {ECHO, "--backend", backend, "--mode", mode, "--port", "0",
                              "--grace", "0.2"};
      for (int i = 0; more && more[i] && i < 6; i++) argv[9 + i] = more[i];
      execv(ECHO, (char *const *)argv);
    } else
      execl(EXAMPLE, EXAMPLE, "--backend", backend, "--port", "0", (char *)NULL);
    _exit(127);
  }
  close(p[1]);
  struct server s = {pid, fdopen(p[0], "r"), 0};
  char line[256] = "";
  ck_assert_msg(fgets(line, sizeof line, s.out) != NULL, "the server printed nothing");
  char *colon = strrchr(line, ':');
  ck_assert_msg(strstr(line, backend) && colon, "unexpected first line: %s", line);
  s.port = atoi(colon + 1);
  ck_assert_int_gt(s.port, 0);
  return s;
}

static struct server start_server(const char *backend, const char *mode) {
  return start_server_with(backend, mode, NULL);
}

static int try_connect(int port) { /* -1 if refused */
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  struct timeval tv = {30, 0}; /* a hung server fails the test instead of hanging it */
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
    close(fd);
    return -1;
  }
  return fd;
}

struct client {
  int port;
  size_t size;
  int ok;
};

/* Send in pieces while reading the echo back, so that large payloads cannot deadlock on full
 * buffers in both directions. */
static void *run_client(void *arg) {
  struct client *c = arg;
  int fd = try_connect(c->port);
  if (fd < 0) return NULL;
  unsigned char *out = malloc(c->size), *in = malloc(c->size);
  for (size_t i = 0; i < c->size; i++) out[i] = (unsigned char)(i * 131 + c->size);
  size_t sent = 0, got = 0;
  while (got < c->size) {
    if (sent < c->size) {
      size_t chunk = c->size - sent < 16384 ? c->size - sent : 16384;
      ssize_t n = write(fd, out + sent, chunk);
      if (n <= 0) break;
      sent += (size_t)n;
    }
    while (got < sent) {
      ssize_t n = read(fd, in + got, sent - got);
      if (n <= 0) goto done;
      got += (size_t)n;
    }
  }
done:
  c->ok = got == c->size && memcmp(in, out, c->size) == 0;
  free(out);
  free(in);
  close(fd);
  return NULL;
}

static void stop(struct server *s, const char *backend, const char *expect) {
  kill(s->pid, SIGTERM);
  int status;
  ck_assert_int_eq(waitpid(s->pid, &status, 0), s->pid);
  ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s: exit status %d", backend, status);
  char line[256] = "";
  ck_assert_ptr_nonnull(fgets(line, sizeof line, s->out));
  ck_assert_msg(strstr(line, expect), "%s: last line '%s' lacks '%s'", backend, line, expect);
  fclose(s->out);
}

static void echo_on(const char *backend, const char *mode) {
  struct server s = start_server(backend, mode);
  static const size_t sizes[] = {1, 2, 100, 1000, 4096, 65536, 100000, 1 << 20};
  enum { N = sizeof sizes / sizeof sizes[0] };
  struct client clients[N];
  pthread_t threads[N];
  for (int i = 0; i < N; i++) {
    clients[i] = (struct client){s.port, sizes[i], 0};
    pthread_create(&threads[i], NULL, run_client, &clients[i]);
  }
  for (int i = 0; i < N; i++) pthread_join(threads[i], NULL);
  for (int i = 0; i < N; i++)
    ck_assert_msg(clients[i].ok, "%s %s: %zu-byte echo differs", backend, mode ? mode : "example",
                  sizes[i]);
  stop(&s, backend, mode ? ", 0 aborted" : "stopped");
}

/* SIGTERM while a client stays connected and idle: after the grace period it is aborted, and the
 * server still exits 0 saying so; a client that is mid-echo meanwhile is served to the end. */
static void shutdown_with_a_connection_open(const char *backend, const char *mode) {
  struct server s = start_server(backend, mode);
  int idle = try_connect(s.port);
  ck_assert_int_ge(idle, 0);
  ck_assert_int_eq(write(idle, "x", 1), 1);
  char c;
  ck_assert_int_eq(read(idle, &c, 1), 1); /* it is being served */
  stop(&s, backend, "stopped: 0 connections finished, 1 aborted");
  ck_assert_int_le(read(idle, &c, 1), 0);
  close(idle);
}

static void ping(int fd, const char *backend, const char *mode) {
  char c;
  ck_assert_int_eq(write(fd, "p", 1), 1);
  ck_assert_msg(read(fd, &c, 1) == 1 && c == 'p', "%s %s: no echo", backend, mode);
}

/* --max-connections 2: a third client waits in the backlog, unserved, until one of the first two
 * leaves; then it is served like the others. */
static void limit_connections(const char *backend, const char *mode) {
  struct server s = start_server_with(backend, mode, (const char *[]){"--max-connections", "2", NULL});
  int a = try_connect(s.port), b = try_connect(s.port);
  ck_assert(a >= 0 && b >= 0);
  ping(a, backend, mode);
  ping(b, backend, mode);
  int third = try_connect(s.port); /* the kernel completes the handshake; the server waits */
  ck_assert_int_ge(third, 0);
  ck_assert_int_eq(write(third, "3", 1), 1);
  struct pollfd p = {.fd = third, .events = POLLIN};
  ck_assert_msg(poll(&p, 1, 500) == 0, "%s %s: a third connection was served", backend, mode);
  close(a);
  char c;
  ck_assert_msg(read(third, &c, 1) == 1 && c == '3', "%s %s: the third was never served", backend,
                mode);
  ping(b, backend, mode);
  close(b);
  close(third);
  stop(&s, backend, "stopped");
}

/* A connected UDP socket to 127.0.0.1:port; a server that never answers fails the test. */
static int udp_to(int port) {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  struct timeval tv = {30, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
  return fd;
}

/* One datagram at a time, so none can be lost on loopback: each comes back whole. */
static void udp_echoes(int port, const char *backend, const char *mode) {
  static const size_t sizes[] = {0, 1, 1000, 65507};
  int fd = udp_to(port);
  static unsigned char out[65507], in[65536];
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    for (size_t k = 0; k < sizes[i]; k++) out[k] = (unsigned char)(k * 7 + i);
    ck_assert_int_eq(send(fd, out, sizes[i], 0), (ssize_t)sizes[i]);
    ssize_t n = recv(fd, in, sizeof in, 0);
    ck_assert_msg(n == (ssize_t)sizes[i] && memcmp(in, out, sizes[i]) == 0,
                  "%s %s: the %zu-byte datagram came back as %zd bytes", backend, mode, sizes[i], n);
  }
  close(fd);
}

/* --udp: TCP and UDP echo on one port number. */
static void udp_too(const char *backend, const char *mode) {
  struct server s = start_server_with(backend, mode, (const char *[]){"--udp", NULL});
  udp_echoes(s.port, backend, mode);
  int tcp = try_connect(s.port);
  ck_assert_int_ge(tcp, 0);
  ping(tcp, backend, mode);
  close(tcp);
  stop(&s, backend, "stopped");
}

/* --udp-only: datagrams are echoed and nobody listens for TCP. */
static void udp_only(const char *backend, const char *mode) {
  if (strcmp(mode, "protocol")) return; /* the mode means nothing without TCP: once is enough */
  struct server s = start_server_with(backend, mode, (const char *[]){"--udp-only", NULL});
  udp_echoes(s.port, backend, "udp-only");
  ck_assert_int_lt(try_connect(s.port), 0);
  stop(&s, backend, "stopped: 0 connections");
}

static const char *const modes[] = {"sock", "protocol", "streams", NULL /* the example */};

static void on_every_driver(void (*fn)(const char *backend, const char *mode), bool with_example) {
  const char *drivers[8];
  size_t n = usable_drivers(drivers, 8);
  ck_assert_uint_gt(n, 0);
  for (size_t i = 0; i < n; i++)
    for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++)
      if (modes[m] || with_example) fn(drivers[i], modes[m]);
}

START_TEST(test_every_echo_server_serves_every_payload_on_every_driver) {
  on_every_driver(echo_on, true);
}
END_TEST

START_TEST(test_shutdown_aborts_an_idle_connection_after_the_grace_period_and_exits_0) {
  on_every_driver(shutdown_with_a_connection_open, false);
}
END_TEST

START_TEST(test_max_connections_keeps_the_next_client_in_the_backlog_until_one_leaves) {
  on_every_driver(limit_connections, false);
}
END_TEST

START_TEST(test_udp_echoes_datagrams_on_the_tcp_port_on_every_driver) {
  on_every_driver(udp_too, false);
  on_every_driver(udp_only, false);
}
END_TEST

/* ---- TLS, with independent peers: openssl s_client and Python's ssl module ------------------ */

static char tls_dir[64]; /* a test certificate (programs.h) */

static struct server start_tls_server(const char *backend, const char *mode) {
  static char cert[96], key[96];
  snprintf(cert, sizeof cert, "%s/cert.pem", tls_dir);
  snprintf(key, sizeof key, "%s/key.pem", tls_dir);
  return start_server_with(backend, mode, (const char *[]){"--tls-cert", cert, "--tls-key", key, NULL});
}

/* Python's ssl module as the client: 1 MiB in pieces while reading the echo, verified against our
 * certificate and the name localhost. Its exit status. */
static int python_client(int port) {
  static const char script[] =
      "import socket, ssl, sys\n"
      "ctx = ssl.create_default_context(cafile=sys.argv[2])\n"
      "data = bytes(i * 131 % 256 for i in range(1 << 20))\n"
      "with socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=30) as raw:\n"
      "    with ctx.wrap_socket(raw, server_hostname='localhost') as s:\n"
      "        got = bytearray()\n"
      "        for off in range(0, len(data), 65536):\n"
      "            s.sendall(data[off:off + 65536])\n"
      "            while len(got) < off + 65536:\n"
      "                got += s.recv(65536)\n"
      "        sys.exit(0 if bytes(got) == data else 3)\n";
  char portstr[16], cafile[96];
  snprintf(portstr, sizeof portstr, "%d", port);
  snprintf(cafile, sizeof cafile, "%s/cert.pem", tls_dir);
  pid_t pid = fork();
  if (pid == 0) {
    execlp("python3", "python3", "-c", script, portstr, cafile, (char *)NULL);
    _exit(127);
  }
  int status;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* openssl s_client: a line in, the same line out, verified against our certificate; then its
 * stdin closes and it says goodbye with close_notify. Whether the line came back. */
static bool s_client_echoes(int port) {
  int in[2], out[2];
  ck_assert_int_eq(pipe(in), 0);
  ck_assert_int_eq(pipe(out), 0);
  char connect[32], cafile[96];
  snprintf(connect, sizeof connect, "127.0.0.1:%d", port);
  snprintf(cafile, sizeof cafile, "%s/cert.pem", tls_dir);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(in[0], 0);
    dup2(out[1], 1);
    close(in[1]), close(out[0]);
    execlp("openssl", "openssl", "s_client", "-connect", connect, "-CAfile", cafile,
           "-verify_return_error", "-verify_hostname", "localhost", "-quiet", "-no_ign_eof",
           (char *)NULL);
    _exit(127);
  }
  close(in[0]), close(out[1]);
  const char line[] = "hello over TLS\n";
  ck_assert_int_eq(write(in[1], line, sizeof line - 1), (ssize_t)(sizeof line - 1));
  char got[64] = "";
  size_t n = 0;
  struct pollfd p = {out[0], POLLIN, 0};
  while (n < sizeof line - 1 && poll(&p, 1, 30000) == 1) {
    ssize_t k = read(out[0], got + n, sizeof got - 1 - n);
    if (k <= 0) break;
    n += (size_t)k;
  }
  close(in[1]); /* s_client ends at its stdin's end */
  close(out[0]);
  int status;
  waitpid(pid, &status, 0);
  return n == sizeof line - 1 && memcmp(got, line, n) == 0;
}

static void tls_echo_on(const char *backend, const char *mode) {
  if (!mode || !strcmp(mode, "sock")) return; /* TLS needs a transport */
  struct server s = start_tls_server(backend, mode);
  ck_assert_msg(s_client_echoes(s.port), "%s %s: openssl s_client got no echo", backend, mode);
  int rc = python_client(s.port);
  ck_assert_msg(rc == 0, "%s %s: the Python client exited with %d", backend, mode, rc);
  /* Plain text to the TLS port is refused, and the server goes on. */
  int fd = try_connect(s.port);
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(write(fd, "GET / HTTP/1.0\r\n\r\n", 18), 18);
  char buf[256];
  while (read(fd, buf, sizeof buf) > 0) {}
  close(fd);
  ck_assert_msg(s_client_echoes(s.port), "%s %s: no echo after plain text", backend, mode);
  stop(&s, backend, "stopped");
}

START_TEST(test_tls_echo_answers_openssl_and_python_clients_on_every_driver) {
  make_tls_files(tls_dir);
  on_every_driver(tls_echo_on, false);
  remove_dir(tls_dir);
}
END_TEST

static int exit_status(const char *prog, const char *a1, const char *a2) {
  pid_t pid = fork();
  if (pid == 0) {
    int null = open("/dev/null", O_WRONLY);
    dup2(null, 1);
    dup2(null, 2);
    execl(prog, prog, a1, a2, (char *)NULL);
    _exit(127);
  }
  int status;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

START_TEST(test_bad_flags_exit_with_status_2_and_help_with_0) {
  ck_assert_int_eq(exit_status(EXAMPLE, "--backend", "nope"), 2);
  ck_assert_int_eq(exit_status(ECHO, "--backend", "nope"), 2);
  ck_assert_int_eq(exit_status(ECHO, "--mode", "telepathy"), 2);
  ck_assert_int_eq(exit_status(ECHO, "--port", "70000"), 2);
  ck_assert_int_eq(exit_status(ECHO, "--grace", NULL), 2);
  ck_assert_int_eq(exit_status(ECHO, "--max-connections", "-1"), 2);
  ck_assert_int_eq(exit_status(ECHO, "--help", NULL), 0);
  ck_assert_int_eq(exit_status(ECHO, "--tls-cert", "x.pem"), 2); /* without --tls-key */
}
END_TEST

int main(void) {
  Suite *suite = suite_create("integration");
  TCase *tc = tcase_create("echo");
  tcase_set_timeout(tc, 600);
  tcase_add_test(tc, test_every_echo_server_serves_every_payload_on_every_driver);
  tcase_add_test(tc, test_shutdown_aborts_an_idle_connection_after_the_grace_period_and_exits_0);
  tcase_add_test(tc, test_bad_flags_exit_with_status_2_and_help_with_0);
  tcase_add_test(tc, test_max_connections_keeps_the_next_client_in_the_backlog_until_one_leaves);
  tcase_add_test(tc, test_udp_echoes_datagrams_on_the_tcp_port_on_every_driver);
  tcase_add_test(tc, test_tls_echo_answers_openssl_and_python_clients_on_every_driver);
  suite_add_tcase(suite, tc);
  return run_suite(suite);
}
