/* The echo servers as a user runs them: aloop-echo in each mode and the task-style example,
 * started on each compiled driver on an ephemeral port, fed payloads from 1 byte to 1 MiB by
 * several clients at once (plain blocking sockets in threads: nothing of aloop on this side),
 * checked byte for byte, then stopped with SIGTERM, with and without a connection still open;
 * and with --udp / --udp-only, UDP datagrams from 0 to 65,507 bytes echoed on the same port. */
#include "../run_suite.h"
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

/* mode NULL: the example; else aloop-echo in that mode, with one more flag and its value if
 * `flag` is set (value NULL: a flag alone). */
static struct server start_server_with(const char *backend, const char *mode, const char *flag,
                                       const char *value) {
  int p[2];
  ck_assert_int_eq(pipe(p), 0);
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    dup2(p[1], 1);
    close(p[0]);
    if (mode)
      execl(ECHO, ECHO, "--backend", backend, "--mode", mode, "--port", "0", "--grace", "0.2",
            flag, value, (char *)NULL);
    else
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
  return start_server_with(backend, mode, NULL, NULL);
}

static int connect_to(int port) {
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
  int fd = connect_to(c->port);
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
  int idle = connect_to(s.port);
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
  struct server s = start_server_with(backend, mode, "--max-connections", "2");
  int a = connect_to(s.port), b = connect_to(s.port);
  ck_assert(a >= 0 && b >= 0);
  ping(a, backend, mode);
  ping(b, backend, mode);
  int third = connect_to(s.port); /* the kernel completes the handshake; the server waits */
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
  struct server s = start_server_with(backend, mode, "--udp", NULL);
  udp_echoes(s.port, backend, mode);
  int tcp = connect_to(s.port);
  ck_assert_int_ge(tcp, 0);
  ping(tcp, backend, mode);
  close(tcp);
  stop(&s, backend, "stopped");
}

/* --udp-only: datagrams are echoed and nobody listens for TCP. */
static void udp_only(const char *backend, const char *mode) {
  if (strcmp(mode, "protocol")) return; /* the mode means nothing without TCP: once is enough */
  struct server s = start_server_with(backend, mode, "--udp-only", NULL);
  udp_echoes(s.port, backend, "udp-only");
  ck_assert_int_lt(connect_to(s.port), 0);
  stop(&s, backend, "stopped: 0 connections");
}

static const char *const modes[] = {"sock", "protocol", "streams", NULL /* the example */};

static void on_every_driver(void (*fn)(const char *backend, const char *mode), bool with_example) {
  aloop_backend_info info[8];
  size_t n = aloop_list_backends(info, 8);
  for (size_t i = 0; i < n && i < 8; i++) {
    if (!info[i].available) {
      ck_assert_msg(!getenv("ALOOP_REQUIRE_ALL_DRIVERS"), "%s unavailable: %s", info[i].name, info[i].reason);
      fprintf(stderr, "%s unavailable here, not run: %s\n", info[i].name, info[i].reason);
      continue;
    }
    for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++)
      if (modes[m] || with_example) fn(info[i].name, modes[m]);
  }
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
  suite_add_tcase(suite, tc);
  return run_suite(suite);
}
