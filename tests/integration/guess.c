/* The guessing game as a user runs it: aloop-guess-server and aloop-guess-client on each compiled
 * driver over 127.0.0.1 with an ephemeral port. Every session must end Correct within 5 guesses,
 * several clients at once must each get their own sessions, and bad lines must get ERROR lines
 * back while the server keeps serving, quietly (nothing on its stderr) and until SIGTERM. */
#include "../run_suite.h"
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "aloop.h"

#define SERVER "examples/aloop-guess-server"
#define CLIENT "examples/aloop-guess-client"

enum { GUESSES_MAX = 5, CLIENTS = 8 };

struct server {
  pid_t pid;
  FILE *out;
  FILE *err; /* its stderr, in a temporary file: a quiet server leaves it empty */
  int port;
};

static struct server start_server(const char *backend) {
  int p[2];
  ck_assert_int_eq(pipe(p), 0);
  struct server s = {.err = tmpfile()};
  ck_assert_ptr_nonnull(s.err);
  fflush(NULL);
  s.pid = fork();
  ck_assert_int_ge(s.pid, 0);
  if (s.pid == 0) {
    dup2(p[1], 1);
    dup2(fileno(s.err), 2);
    close(p[0]);
    execl(SERVER, SERVER, "--backend", backend, "--port", "0", (char *)NULL);
    _exit(127);
  }
  close(p[1]);
  s.out = fdopen(p[0], "r");
  char line[256] = "";
  ck_assert_msg(fgets(line, sizeof line, s.out) != NULL, "%s: the server printed nothing", backend);
  char *colon = strrchr(line, ':');
  ck_assert_msg(strstr(line, backend) && colon, "unexpected first line: %s", line);
  s.port = atoi(colon + 1);
  ck_assert_int_gt(s.port, 0);
  return s;
}

/* SIGTERM: it must exit 0, say it stopped, and have said nothing on stderr. */
static void stop_server(struct server *s, const char *backend) {
  kill(s->pid, SIGTERM);
  int status;
  ck_assert_int_eq(waitpid(s->pid, &status, 0), s->pid);
  ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s: exit status %d", backend,
                status);
  char line[256] = "";
  ck_assert_ptr_nonnull(fgets(line, sizeof line, s->out));
  ck_assert_msg(strstr(line, "stopped"), "%s: last line '%s'", backend, line);
  fclose(s->out);
  char err[512] = "";
  rewind(s->err);
  size_t n = fread(err, 1, sizeof err - 1, s->err);
  err[n] = '\0';
  ck_assert_msg(n == 0, "%s: the server said on stderr: %s", backend, err);
  fclose(s->err);
}

/* A client process, its stdout read through a pipe once it is done. */
struct client {
  pid_t pid;
  FILE *out;
};

static struct client start_client(const char *backend, int port, const char *const *sessions) {
  int p[2];
  ck_assert_int_eq(pipe(p), 0);
  char port_text[16];
  snprintf(port_text, sizeof port_text, "%d", port);
  const char *argv[32] = {CLIENT, "--backend", backend, "--port", port_text};
  int argc = 5;
  for (int i = 0; sessions && sessions[i] && argc < 29; i++) {
    argv[argc++] = "--session";
    argv[argc++] = sessions[i];
  }
  fflush(NULL);
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    dup2(p[1], 1);
    close(p[0]);
    execv(CLIENT, (char *const *)argv);
    _exit(127);
  }
  close(p[1]);
  return (struct client){pid, fdopen(p[0], "r")};
}

/* Read the client's output to its end and check it: `sessions` sessions, each a header, at most
 * GUESSES_MAX "(n, Outcome)" lines of which only the last is Correct, and its summary. */
static void check_client(struct client *c, const char *backend, int sessions) {
  char line[256];
  int seen = 0, guesses = 0, correct = 0;
  bool in_session = false;
  while (fgets(line, sizeof line, c->out)) {
    if (!strncmp(line, "session ", 8) && strstr(line, ", secret ")) {
      ck_assert_msg(!in_session, "%s: a session without its end: %s", backend, line);
      in_session = true;
      guesses = 0;
      seen++;
    } else if (line[0] == '(') {
      ck_assert_msg(in_session, "%s: a guess outside a session: %s", backend, line);
      guesses++;
      ck_assert_msg(guesses <= GUESSES_MAX, "%s: more than %d guesses", backend, GUESSES_MAX);
      if (strstr(line, ", Correct)")) correct++;
    } else if (!strncmp(line, "session ", 8)) {
      ck_assert_msg(strstr(line, ": Correct after"), "%s: a session failed: %s", backend, line);
      in_session = false;
    }
  }
  fclose(c->out);
  int status;
  ck_assert_int_eq(waitpid(c->pid, &status, 0), c->pid);
  ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s: client exit status %d",
                backend, status);
  ck_assert_int_eq(seen, sessions);
  ck_assert_int_eq(correct, sessions);
  ck_assert(!in_session);
}

static void on_every_driver(void (*fn)(const char *backend)) {
  aloop_backend_info info[8];
  size_t n = aloop_list_backends(info, 8);
  for (size_t i = 0; i < n && i < 8; i++) {
    if (!info[i].available) {
      ck_assert_msg(!getenv("ALOOP_REQUIRE_ALL_DRIVERS"), "%s unavailable: %s", info[i].name,
                    info[i].reason);
      fprintf(stderr, "%s unavailable here, not run: %s\n", info[i].name, info[i].reason);
      continue;
    }
    fn(info[i].name);
  }
}

/* ---- the tests ------------------------------------------------------------------------------- */

/* Every secret of two ranges, at both ends and inside, and the tutorial's own two sessions. */
static const char *const many_sessions[] = {
    "1,5,3", "10,15,12", "1,5,1", "1,5,5", "10,15,10", "10,15,15", "10,15,11",
    "1,15,14", "1,15,1", "-7,8,-7", "-7,8,8", "100,100,100", NULL};

static void sessions_end_correct(const char *backend) {
  struct server s = start_server(backend);
  struct client c = start_client(backend, s.port, NULL); /* the defaults: (1,5,3), (10,15,12) */
  check_client(&c, backend, 2);
  c = start_client(backend, s.port, many_sessions);
  check_client(&c, backend, (int)(sizeof many_sessions / sizeof many_sessions[0]) - 1);
  stop_server(&s, backend);
}

START_TEST(test_every_session_ends_correct_within_five_guesses_on_every_driver) {
  on_every_driver(sessions_end_correct);
}
END_TEST

static void clients_at_once(const char *backend) {
  struct server s = start_server(backend);
  struct client c[CLIENTS];
  for (int i = 0; i < CLIENTS; i++) c[i] = start_client(backend, s.port, many_sessions);
  for (int i = 0; i < CLIENTS; i++)
    check_client(&c[i], backend, (int)(sizeof many_sessions / sizeof many_sessions[0]) - 1);
  stop_server(&s, backend);
}

START_TEST(test_several_clients_at_once_each_get_their_own_sessions) {
  on_every_driver(clients_at_once);
}
END_TEST

static int connect_to(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  struct timeval tv = {30, 0}; /* a hung server fails the test instead of hanging it */
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
  return fd;
}

/* Send one line and read one answer line; returns it without the newline. */
static const char *exchange(FILE *in, int fd, const char *request) {
  static char reply[256];
  ck_assert_int_eq(write(fd, request, strlen(request)), (ssize_t)strlen(request));
  ck_assert_msg(fgets(reply, sizeof reply, in), "no answer to %s", request);
  reply[strcspn(reply, "\n")] = '\0';
  return reply;
}

static void expect_error(FILE *in, int fd, const char *request) {
  const char *reply = exchange(in, fd, request);
  ck_assert_msg(!strncmp(reply, "ERROR ", 6), "'%.*s' got '%s', not an ERROR line",
                (int)strcspn(request, "\n"), request, reply);
}

static void bad_lines(const char *backend) {
  struct server s = start_server(backend);
  int fd = connect_to(s.port);
  FILE *in = fdopen(dup(fd), "r");
  expect_error(in, fd, "HELLO\n");
  expect_error(in, fd, "NUMBER\n");                /* no session yet */
  expect_error(in, fd, "PARAMS 5 1\n");            /* lower above upper */
  expect_error(in, fd, "PARAMS one two\n");
  expect_error(in, fd, "PARAMS 1 99999999999999\n");
  expect_error(in, fd, "PARAMS 1 2 3 4 5\n");
  ck_assert_str_eq(exchange(in, fd, "PARAMS 1 3\n"), "OK");
  expect_error(in, fd, "REPORT 2 Correct\n");      /* nothing guessed yet */
  ck_assert_str_eq(exchange(in, fd, "NUMBER\n"), "NUMBER 2");
  expect_error(in, fd, "NUMBER\n");                /* the last one is not reported */
  expect_error(in, fd, "REPORT 9 Unsure\n");       /* not the number given */
  expect_error(in, fd, "REPORT 2 Hot\n");
  expect_error(in, fd, "REPORT 2 Warmer\n");       /* a first guess cannot be warmer */
  ck_assert_str_eq(exchange(in, fd, "REPORT 2 Unsure\n"), "OK");
  const char *second = exchange(in, fd, "NUMBER\n");
  ck_assert_msg(!strcmp(second, "NUMBER 1") || !strcmp(second, "NUMBER 3"), "got %s", second);
  ck_assert_str_eq(exchange(in, fd, "PARAMS 7 7\r\n"), "OK"); /* a new session; CRLF is fine */
  ck_assert_str_eq(exchange(in, fd, "NUMBER\n"), "NUMBER 7");
  ck_assert_str_eq(exchange(in, fd, "REPORT 7 Correct\n"), "OK");
  expect_error(in, fd, "NUMBER\n");                /* that session is over */
  char huge[2000];
  memset(huge, 'x', sizeof huge - 1);
  huge[sizeof huge - 2] = '\n';
  huge[sizeof huge - 1] = '\0';
  ck_assert_str_eq(exchange(in, fd, huge), "ERROR line too long");
  char c;
  ck_assert_int_eq(read(fd, &c, 1), 0); /* and that connection ends */
  fclose(in);
  close(fd);

  fd = connect_to(s.port); /* a session cut off at end of stream, mid-line: quietly */
  ck_assert_int_eq(write(fd, "PARAMS 1 9\nNUMB", 15), 15);
  close(fd);
  struct client cl = start_client(backend, s.port, NULL); /* and the server still plays */
  check_client(&cl, backend, 2);
  stop_server(&s, backend);
}

START_TEST(test_bad_lines_get_error_lines_and_the_server_goes_on_quietly) {
  on_every_driver(bad_lines);
}
END_TEST

int main(void) {
  Suite *suite = suite_create("guess");
  TCase *tc = tcase_create("guess");
  tcase_set_timeout(tc, 600);
  tcase_add_test(tc, test_every_session_ends_correct_within_five_guesses_on_every_driver);
  tcase_add_test(tc, test_several_clients_at_once_each_get_their_own_sessions);
  tcase_add_test(tc, test_bad_lines_get_error_lines_and_the_server_goes_on_quietly);
  suite_add_tcase(suite, tc);
  return run_suite(suite);
}
