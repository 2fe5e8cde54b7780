/* aloop-udp-lookup as a user runs it, on each compiled driver: the server on an ephemeral port,
 * the client looking names up (known, unknown), a malformed datagram answered with ERROR while
 * the server goes on answering, and SIGTERM ending the server with status 0. */
#include "../run_suite.h"
#include "programs.h"

#define LOOKUP "examples/aloop-udp-lookup"

static struct program start_server(const char *backend) {
  const char *argv[] = {LOOKUP, "--backend", backend, "--serve", "--port", "0", NULL};
  return start_program(argv, false);
}

/* The client's output and exit status for `names`. */
static int query(const char *backend, int port, const char *const *names, char *out, size_t cap) {
  char portstr[16];
  snprintf(portstr, sizeof portstr, "%d", port);
  const char *argv[16] = {LOOKUP, "--backend", backend, "--port", portstr};
  size_t n = 5;
  for (; *names && n < 15; names++) argv[n++] = *names;
  argv[n] = NULL;
  FILE *tmp = tmpfile();
  ck_assert_ptr_nonnull(tmp);
  fflush(NULL);
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    dup2(fileno(tmp), 1);
    execv(LOOKUP, (char *const *)argv);
    _exit(126);
  }
  int status;
  ck_assert_int_eq(waitpid(pid, &status, 0), pid);
  rewind(tmp);
  size_t got = fread(out, 1, cap - 1, tmp);
  out[got] = '\0';
  fclose(tmp);
  ck_assert(WIFEXITED(status));
  return WEXITSTATUS(status);
}

/* A raw datagram to the server and its answer (with a receive timeout: a server that ignores it
 * fails the test instead of hanging it). */
static void raw_exchange(int port, const char *msg, size_t n, char *reply, size_t cap) {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  struct timeval tv = {30, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  ck_assert_int_eq(sendto(fd, msg, n, 0, (struct sockaddr *)&a, sizeof a), (ssize_t)n);
  ssize_t got = recv(fd, reply, cap - 1, 0);
  ck_assert_int_gt(got, 0);
  reply[got] = '\0';
  close(fd);
}

static void lookups_on(const char *backend) {
  struct program s = start_server(backend);
  char out[1024], reply[256];
  const char *const names[] = {"localhost", "example.test", "nowhere.test", "v6.example.test",
                               NULL};
  ck_assert_int_eq(query(backend, s.port, names, out, sizeof out), 0);
  ck_assert_str_eq(out, "localhost 127.0.0.1\nexample.test 192.0.2.1\nnowhere.test NXDOMAIN\n"
                        "v6.example.test 2001:db8::1\n");
  raw_exchange(s.port, "not a request", 13, reply, sizeof reply);
  ck_assert_str_eq(reply, "0 - ERROR");
  raw_exchange(s.port, "", 0, reply, sizeof reply); /* an empty datagram is one too */
  ck_assert_str_eq(reply, "0 - ERROR");
  raw_exchange(s.port, "7 localhost", 11, reply, sizeof reply); /* and it goes on serving */
  ck_assert_str_eq(reply, "7 localhost 127.0.0.1");
  stop_program(&s);
}

START_TEST(test_udp_lookups_on_every_driver) {
  const char *drivers[8];
  size_t n = usable_drivers(drivers, 8);
  ck_assert_uint_gt(n, 0);
  for (size_t i = 0; i < n; i++) lookups_on(drivers[i]);
}
END_TEST

/* With no server, each name gets its three tries and "no answer"; the client says so and fails. */
START_TEST(test_a_client_without_a_server_says_no_answer_and_fails) {
  int fd = socket(AF_INET, SOCK_DGRAM, 0); /* a port nobody answers on: bound, never read */
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof a;
  ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
  ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
  char out[256];
  const char *const names[] = {"localhost", NULL};
  ck_assert_int_eq(query("auto", ntohs(a.sin_port), names, out, sizeof out), 1);
  ck_assert_msg(strstr(out, "localhost: no answer"), "output: %s", out);
  close(fd);
}
END_TEST

int main(void) {
  Suite *suite = suite_create("udp_lookup");
  TCase *tc = tcase_create("udp_lookup");
  tcase_set_timeout(tc, 300);
  tcase_add_test(tc, test_udp_lookups_on_every_driver);
  tcase_add_test(tc, test_a_client_without_a_server_says_no_answer_and_fails);
  suite_add_tcase(suite, tc);
  return run_suite(suite);
}
