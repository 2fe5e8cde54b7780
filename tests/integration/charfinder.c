/* aloop-charfinder as a user runs it, on each compiled driver: the TCP line protocol rule by rule
 * (prompt, answers, empty lines, invalid UTF-8, control characters, end of stream, an over-long
 * line, many clients at once), HTTP over real sockets (keep-alive, pipelining, the idle timeout,
 * serving on after errors), clients that trickle requests in, never read their answers, or send
 * nothing at all, the log, the command line and SIGTERM. Clients are plain blocking
 * sockets with receive timeouts: nothing of aloop on this side. */
#include "../cf_scratch.h"
#include "../run_suite.h"
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "aloop.h"

#define PROG "apps/aloop-charfinder"


struct server {
  pid_t pid;
  char log[300];
  int tcp, http;
};

/* What the server has printed so far. */
static void read_log(const struct server *s, char *buf, size_t cap) {
  FILE *f = fopen(s->log, "r");
  size_t n = f ? fread(buf, 1, cap - 1, f) : 0;
  buf[n] = 0;
  if (f) fclose(f);
}

/* Wait (up to 30 s) for the log to contain text. */
static bool log_has(const struct server *s, const char *text) {
  static char buf[1 << 20];
  for (int i = 0; i < 3000; i++) {
    read_log(s, buf, sizeof buf);
    if (strstr(buf, text)) return true;
    usleep(10000);
  }
  return false;
}

static int port_after(const char *log, const char *label) {
  const char *p = strstr(log, label);
  if (!p) return 0;
  const char *eol = strchr(p, '\n');
  const char *colon = p;
  for (const char *q = p; q < eol; q++)
    if (*q == ':') colon = q;
  return atoi(colon + 1);
}

/* Set by the HTTPS test: the server's certificate and key (the HTTP server then speaks TLS). */
static const char *tls_cert, *tls_key;

static struct server start(const char *backend) {
  struct server s = {0};
  const char *http_label = tls_cert ? "HTTPS on" : "HTTP on";
  /* Each test's own log file. */
  snprintf(s.log, sizeof s.log, "%s/%s-%ld.log", scratch_dir, backend, (long)getpid());
  unlink(s.log);
  s.pid = fork();
  ck_assert_int_ge(s.pid, 0);
  if (s.pid == 0) {
    int fd = open(s.log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 1);
    dup2(fd, 2);
    if (tls_cert)
      execl(PROG, PROG, "--backend", backend, "--tcp", "127.0.0.1:0", "--http", "127.0.0.1:0",
            "--index", scratch_index, "--timeout", "1", "--grace", "1", "--tls-cert", tls_cert,
            "--tls-key", tls_key, (char *)NULL);
    else
      execl(PROG, PROG, "--backend", backend, "--tcp", "127.0.0.1:0", "--http", "127.0.0.1:0",
            "--index", scratch_index, "--timeout", "1", "--grace", "1", (char *)NULL);
    _exit(127);
  }
  ck_assert_msg(log_has(&s, http_label), "%s: the server did not start", backend);
  char buf[4096];
  read_log(&s, buf, sizeof buf);
  ck_assert_msg(strstr(buf, backend), "%s: log: %s", backend, buf);
  s.tcp = port_after(buf, "TCP on");
  s.http = port_after(buf, http_label);
  ck_assert_int_gt(s.tcp, 0);
  ck_assert_int_gt(s.http, 0);
  return s;
}

/* SIGTERM; the server must exit 0 and its last line say `expect`. */
static void stop(struct server *s, const char *expect) {
  kill(s->pid, SIGTERM);
  int status;
  ck_assert_int_eq(waitpid(s->pid, &status, 0), s->pid);
  ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "exit status %d", status);
  ck_assert_msg(log_has(s, expect), "the log lacks '%s'", expect);
}

static int connect_to(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  struct timeval tv = {30, 0}; /* a hung server fails the test instead of hanging it */
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
  return fd;
}

static void send_all(int fd, const void *data, size_t n) {
  for (const char *p = data; n;) {
    ssize_t w = write(fd, p, n);
    if (w <= 0) return; /* the server may have closed: the reads will tell */
    p += w;
    n -= (size_t)w;
  }
}

static void send_str(int fd, const char *s) { send_all(fd, s, strlen(s)); }

/* Read until the bytes received end with `end` (or contain it, if anywhere), the peer closes, or
 * the buffer is full. Returns the length; buf is NUL-terminated. */
static size_t read_until(int fd, const char *end, char *buf, size_t cap, bool anywhere) {
  size_t len = 0, elen = end ? strlen(end) : 0;
  buf[0] = 0;
  while (len + 1 < cap) {
    ssize_t n = read(fd, buf + len, cap - 1 - len);
    if (n <= 0) break;
    len += (size_t)n;
    buf[len] = 0;
    if (end && (anywhere ? strstr(buf, end) != NULL
                         : len >= elen && !memcmp(buf + len - elen, end, elen)))
      break;
  }
  return len;
}

/* The peer closed the connection (read gives 0 or a reset) after anything still in flight. */
static bool closed_by_peer(int fd, char *buf, size_t cap) {
  read_until(fd, NULL, buf, cap, false);
  char c;
  return read(fd, &c, 1) <= 0;
}

/* ---- TCP ------------------------------------------------------------------------------------------ */

static void tcp_rules(const struct server *s, const char *backend) {
  static char buf[1 << 17];
  int fd = connect_to(s->tcp);
  read_until(fd, "?> ", buf, sizeof buf, false);
  ck_assert_str_eq(buf, "?> ");
  send_str(fd, "chess black king\r\n");
  read_until(fd, "\r\n?> ", buf, sizeof buf, false);
  ck_assert_str_eq(buf, "U+265A \t\u265a\tBLACK CHESS KING\r\n"
                        "U+1FA0F\t\U0001FA0F\tBLACK CHESS KING ROTATED NINETY DEGREES\r\n"
                        "U+1FA24\t\U0001FA24\tBLACK CHESS TURNED KING\r\n"
                        "U+1FA39\t\U0001FA39\tBLACK CHESS KING ROTATED TWO HUNDRED SEVENTY DEGREES\r\n"
                        "4 matches for 'chess black king'\r\n?> ");
  send_str(fd, "\r\n"); /* empty: just the prompt */
  read_until(fd, "?> ", buf, sizeof buf, false);
  ck_assert_str_eq(buf, "?> ");
  send_str(fd, " \t \n"); /* whitespace only: the same */
  read_until(fd, "?> ", buf, sizeof buf, false);
  ck_assert_str_eq(buf, "?> ");
  send_str(fd, "zzzq\n");
  read_until(fd, "?> ", buf, sizeof buf, false);
  ck_assert_str_eq(buf, "No match for 'zzzq'\r\n?> ");
  send_str(fd, "it's\n");
  read_until(fd, "?> ", buf, sizeof buf, false);
  ck_assert_str_eq(buf, "No match for \"it's\"\r\n?> ");
  /* Two lines in one packet: two answers in order. */
  send_str(fd, "digit nine full stop\ndigit eight full stop\n");
  read_until(fd, "'digit eight full stop'\r\n?> ", buf, sizeof buf, false);
  ck_assert_str_eq(buf, "U+2490 \t\u2490\tDIGIT NINE FULL STOP\r\n1 match for 'digit nine full stop'\r\n?> "
                        "U+248F \t\u248f\tDIGIT EIGHT FULL STOP\r\n1 match for 'digit eight full stop'\r\n?> ");
  /* A big answer (every CJK ideograph, about 5 MB) arrives whole, in order, with its status. */
  size_t cap = 16 << 20, got = 0;
  char *big = malloc(cap);
  send_str(fd, "cjk\n");
  static const char end[] = "matches for 'cjk'\r\n?> ";
  while (got < sizeof end || memcmp(big + got - (sizeof end - 1), end, sizeof end - 1)) {
    ssize_t n = read(fd, big + got, cap - 1 - got);
    ck_assert_msg(n > 0, "%s: the answer to cjk stopped after %zu bytes", backend, got);
    got += (size_t)n;
  }
  big[got] = 0;
  size_t lines = 0;
  for (const char *p = big; (p = strstr(p, "\r\n")); p++) lines++;
  lines--; /* the status line */
  const char *status = strrchr(big, '\n') - 1;
  while (status > big && status[-1] != '\n') status--;
  ck_assert_uint_eq(lines, strtoul(status, NULL, 10));
  ck_assert_uint_gt(lines, 90000);
  ck_assert(!strncmp(big, "U+2E80 \t\u2e80\tCJK RADICAL REPEAT\r\n", 30));
  free(big);
  /* End of stream ends the session: the server closes instead of prompting forever. */
  shutdown(fd, SHUT_WR);
  ck_assert_msg(closed_by_peer(fd, buf, sizeof buf), "%s: not closed after EOF", backend);
  ck_assert_str_eq(buf, "");
  close(fd);
  ck_assert(log_has(s, ": 'chess black king', 4 results"));
  ck_assert(log_has(s, ": 'zzzq', 0 results"));
}

/* A line that ends the session: what comes back before the close. */
static void tcp_ends_with(const struct server *s, const char *line, size_t n, const char *want) {
  static char buf[4096];
  int fd = connect_to(s->tcp);
  read_until(fd, "?> ", buf, sizeof buf, false);
  send_all(fd, line, n);
  ck_assert_msg(closed_by_peer(fd, buf, sizeof buf), "not closed after %.20s", line);
  ck_assert_str_eq(buf, want);
  close(fd);
}

static void tcp_endings(const struct server *s) {
  tcp_ends_with(s, "\x03\r\n", 3, "");               /* Ctrl-C typed in nc */
  tcp_ends_with(s, "\xff\xf4\xff\xfd\x06\r\n", 7, ""); /* Ctrl-C from telnet: undecodable */
  tcp_ends_with(s, "cat \xc3\x28\n", 7, "");        /* invalid UTF-8 anywhere */
  tcp_ends_with(s, "  \x01 cat\n", 8, "");          /* control first, after stripping */
  /* Over the 64 KiB line limit: one line saying so, then the close. */
  size_t n = 70000;
  char *big = malloc(n);
  memset(big, 'a', n);
  big[n - 1] = '\n';
  tcp_ends_with(s, big, n, "line too long: the limit is 65536 bytes; closing\r\n");
  /* Exactly at the limit (65,535 bytes and the newline) is an ordinary query. */
  static char buf[4096];
  int fd = connect_to(s->tcp);
  read_until(fd, "?> ", buf, sizeof buf, false);
  send_all(fd, big, 65535);
  send_str(fd, "\n");
  read_until(fd, "?> ", buf, sizeof buf, false);
  ck_assert_msg(!strncmp(buf, "No match for 'aaaa", 18), "got %.60s", buf);
  close(fd);
  free(big);
  ck_assert(log_has(s, "line over 65536 bytes, closed"));
}

struct client {
  int port, ok;
  char got[160]; /* the end of the first wrong answer */
};

static void *tcp_client(void *arg) {
  struct client *c = arg;
  static const char *const queries[] = {"cat face\n", "chess black\n", "hangul gag\n"};
  static const char *const status[] = {"10 matches for 'cat face'\r\n?> ",
                                       "33 matches for 'chess black'\r\n?> ",
                                       "1 match for 'hangul gag'\r\n?> "};
  char buf[16384];
  int fd = connect_to(c->port);
  read_until(fd, "?> ", buf, sizeof buf, false);
  c->ok = !strcmp(buf, "?> ");
  if (!c->ok) snprintf(c->got, sizeof c->got, "the prompt: '%.60s'", buf);
  for (int round = 0; round < 3; round++)
    for (int q = 0; q < 3; q++) {
      send_str(fd, queries[q]);
      size_t n = read_until(fd, status[q], buf, sizeof buf, false);
      bool right = n >= strlen(status[q]) && !strcmp(buf + n - strlen(status[q]), status[q]);
      if (!right && c->ok)
        snprintf(c->got, sizeof c->got, "round %d, %s%zu bytes, ending '%.60s'", round, queries[q],
                 n, n > 60 ? buf + n - 60 : buf);
      c->ok &= right;
    }
  close(fd);
  return NULL;
}

static void tcp_many_clients(const struct server *s, const char *backend) {
  enum { N = 64 };
  struct client c[N];
  pthread_t t[N];
  for (int i = 0; i < N; i++) {
    c[i] = (struct client){s->tcp, 0, ""};
    ck_assert_int_eq(pthread_create(&t[i], NULL, tcp_client, &c[i]), 0);
  }
  for (int i = 0; i < N; i++) pthread_join(t[i], NULL);
  int status = 0; /* a server that crashed (one did on a client gone while its task waited) */
  ck_assert_msg(waitpid(s->pid, &status, WNOHANG) == 0, "%s: the server died, status %d", backend,
                status);
  for (int i = 0; i < N; i++)
    ck_assert_msg(c[i].ok, "%s: client %d got a wrong answer: %s", backend, i, c[i].got);
}

/* ---- HTTP ----------------------------------------------------------------------------------------- */

static void http_over_sockets(const struct server *s, const char *backend) {
  static char buf[1 << 17];
  int fd = connect_to(s->http);
  /* Pipelined on one kept-alive connection: both answers, in order. */
  send_str(fd, "GET /api/search?query=digit+one&stop=1 HTTP/1.1\r\nHost: t\r\n\r\n"
               "GET /api/search?query=digit+two&stop=1 HTTP/1.1\r\nHost: t\r\n\r\n");
  size_t got = 0;
  while (!strstr(buf, "DIGIT TWO\"}]}\n") && got + 1 < sizeof buf) {
    size_t n = read_until(fd, "]}\n", buf + got, sizeof buf - got, false);
    if (!n) break;
    got += n;
  }
  const char *one = strstr(buf, "DIGIT ONE"), *two = strstr(buf, "DIGIT TWO");
  ck_assert_msg(one && two && one < two, "%s: %s", backend, buf);
  /* The same connection goes on serving, the page this time. */
  send_str(fd, "GET /?query=cat+face HTTP/1.1\r\nHost: t\r\n\r\n");
  read_until(fd, "</html>\n", buf, sizeof buf, false);
  ck_assert(strstr(buf, "HTTP/1.1 200 OK\r\n") == buf);
  ck_assert(strstr(buf, "10 matches for &#39;cat face&#39;"));
  /* Idle past the timeout (1 s here) between requests: closed quietly. */
  ck_assert(closed_by_peer(fd, buf, sizeof buf));
  ck_assert_str_eq(buf, "");
  close(fd);

  /* Half a request, then silence: 408 and the close. */
  fd = connect_to(s->http);
  send_str(fd, "GET /?query=cat HTTP/1.1\r\nHo");
  ck_assert(closed_by_peer(fd, buf, sizeof buf));
  ck_assert_msg(!strncmp(buf, "HTTP/1.1 408 Request Timeout\r\n", 30), "%s: %s", backend, buf);
  close(fd);

  /* Garbage: 400 and the close; the next client is served as ever. */
  fd = connect_to(s->http);
  send_str(fd, "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 hello\r\n\r\n");
  ck_assert(closed_by_peer(fd, buf, sizeof buf));
  ck_assert_msg(!strncmp(buf, "HTTP/1.1 400 Bad Request\r\n", 26), "%s: %s", backend, buf);
  close(fd);
  fd = connect_to(s->http);
  send_str(fd, "GET /nope HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
  ck_assert(closed_by_peer(fd, buf, sizeof buf));
  ck_assert_msg(!strncmp(buf, "HTTP/1.1 404 Not Found\r\n", 24), "%s: %s", backend, buf);
  close(fd);

  /* A client that pipelines many requests for big pages and reads nothing for a while: served in
   * full once it reads, every answer present. */
  fd = connect_to(s->http);
  enum { REQUESTS = 300 };
  for (int i = 0; i < REQUESTS; i++) send_str(fd, "GET /?query=cjk HTTP/1.1\r\nHost: t\r\n\r\n");
  send_str(fd, "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
  usleep(200000);
  size_t total = 0;
  int answers = 0;
  ssize_t n;
  char *all = malloc(64 << 20);
  while ((n = read(fd, all + total, (64 << 20) - total)) > 0) total += (size_t)n;
  all[total] = 0;
  for (const char *p = all; (p = strstr(p, "HTTP/1.1 200 OK")); p++) answers++;
  ck_assert_int_eq(answers, REQUESTS + 1);
  free(all);
  close(fd);
}

/* ---- clients that are slow, silent or never read ------------------------------------------------ */

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The server runs with --timeout 1. It must never act before it (0.9: the server dates a byte by
 * its loop's clock, read when it woke, which may be a hair before the byte left us), and must act
 * within a bound no slow machine reaches. */
#define TIMEOUT_S 1.0
#define NOT_BEFORE_S 0.9
#define WITHIN_S 20.0

/* Send text a byte every 200 ms, starting now, until the server sends something or closes
 * (at most 30 s). What came back goes in buf; returns the seconds from `since` to then, or -1. */
static double trickle(int fd, const char *text, double since, char *buf, size_t cap) {
  size_t len = strlen(text), i = 0;
  buf[0] = 0;
  for (int round = 0; round < 150; round++) {
    if (i < len) send(fd, text + i++, 1, MSG_NOSIGNAL);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, 200) > 0) {
      double at = now_s() - since;
      closed_by_peer(fd, buf, cap);
      return at;
    }
  }
  return -1;
}

static void assert_in_time(double at, const char *what, const char *backend) {
  ck_assert_msg(at >= 0, "%s: %s: the server never acted", backend, what);
  ck_assert_msg(at >= NOT_BEFORE_S, "%s: %s after %.3f s, before the timeout", backend, what, at);
  ck_assert_msg(at < WITHIN_S, "%s: %s after %.3f s", backend, what, at);
}

static void http_slow_clients(const struct server *s, const char *backend) {
  static char buf[1 << 16];
  /* A head a byte at a time: 408 about the timeout after its first byte, however the bytes go on. */
  int fd = connect_to(s->http);
  double at = trickle(fd, "GET /?query=cat HTTP/1.1\r\nHost: t\r\nX-Slow: "
                      "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                      "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                      now_s(), buf, sizeof buf);
  assert_in_time(at, "a slow head was answered", backend);
  ck_assert_msg(!strncmp(buf, "HTTP/1.1 408 Request Timeout\r\n", 30), "%s: %s", backend, buf);
  ck_assert(strstr(buf, "Connection: close\r\n"));
  close(fd);

  /* A body a byte at a time after a whole head: the same, from the end of the head. */
  fd = connect_to(s->http);
  send_str(fd, "GET /?query=cat HTTP/1.1\r\nHost: t\r\nContent-Length: 500\r\n\r\n");
  at = trickle(fd, "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
                   "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
               now_s(), buf, sizeof buf);
  assert_in_time(at, "a slow body was answered", backend);
  ck_assert_msg(!strncmp(buf, "HTTP/1.1 408 Request Timeout\r\n", 30), "%s: %s", backend, buf);
  close(fd);

  /* Kept alive and idle after an answer: closed quietly after the timeout, not before. */
  fd = connect_to(s->http);
  send_str(fd, "GET /api/search?query=cat+face&stop=1 HTTP/1.1\r\nHost: t\r\n\r\n");
  read_until(fd, "]}\n", buf, sizeof buf, false);
  double answered = now_s();
  ck_assert_msg(strstr(buf, "HTTP/1.1 200 OK\r\n") == buf, "%s: %s", backend, buf);
  ck_assert(closed_by_peer(fd, buf, sizeof buf));
  assert_in_time(now_s() - answered, "an idle kept-alive connection was closed", backend);
  ck_assert_str_eq(buf, "");
  close(fd);
}

/* A socket that takes little at a time, so that what we do not read backs up in the server. */
static int connect_small(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  int small = 4096;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  struct timeval tv = {30, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
  return fd;
}

/* Read what is left until the end (or a reset); how many times `mark` occurs in it. */
static int read_all_counting(int fd, const char *mark) {
  static char buf[1 << 16];
  size_t keep = strlen(mark) - 1, have = 0;
  int count = 0;
  for (ssize_t n; (n = read(fd, buf + have, sizeof buf - 1 - have)) > 0;) {
    have += (size_t)n;
    buf[have] = 0;
    for (const char *p = buf; (p = strstr(p, mark)); p++) count++;
    if (have > keep) { /* keep a tail, where a mark may begin */
      memmove(buf, buf + have - keep, keep);
      have = keep;
    }
  }
  return count;
}

/* Clients that ask for megabytes and read none of it: aborted once nothing moved for the timeout,
 * with a line in the log; both servers go on serving. */
static void clients_that_never_read(const struct server *s, const char *backend) {
  enum { PAGES = 800, LINES = 4 }; /* 12 MB and 20 MB of answers: more than any socket buffers */
  int fd = connect_small(s->http);
  double sent = now_s();
  for (int i = 0; i < PAGES; i++) send_str(fd, "GET /?query=cjk HTTP/1.1\r\nHost: t\r\n\r\n");
  ck_assert_msg(log_has(s, "answers not read for 1 s, aborted"), "%s: HTTP client not aborted",
                backend);
  assert_in_time(now_s() - sent, "a client that does not read was aborted", backend);
  int got = read_all_counting(fd, "HTTP/1.1 200 OK");
  ck_assert_msg(got < PAGES, "%s: all %d pages were sent", backend, got);
  close(fd);

  fd = connect_small(s->tcp);
  sent = now_s();
  for (int i = 0; i < LINES; i++) send_str(fd, "cjk\n");
  ck_assert_msg(log_has(s, "answer not read for 1 s, dropped"), "%s: TCP client not dropped",
                backend);
  assert_in_time(now_s() - sent, "a TCP client that does not read was dropped", backend);
  got = read_all_counting(fd, "matches for 'cjk'");
  ck_assert_msg(got < LINES, "%s: all %d answers were sent", backend, got);
  close(fd);

  /* Still serving. */
  static char buf[4096];
  fd = connect_to(s->http);
  send_str(fd, "GET /nope HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
  ck_assert(closed_by_peer(fd, buf, sizeof buf));
  ck_assert_msg(!strncmp(buf, "HTTP/1.1 404 Not Found\r\n", 24), "%s: %s", backend, buf);
  close(fd);
}

static void tcp_slow_clients(const struct server *s, const char *backend) {
  static char buf[4096];
  /* A line a byte at a time: told and closed about the timeout after its first byte. */
  int fd = connect_to(s->tcp);
  read_until(fd, "?> ", buf, sizeof buf, false);
  double at = trickle(fd, "chess black king and a great many other words that never end", now_s(),
                      buf, sizeof buf);
  assert_in_time(at, "a slow line was refused", backend);
  ck_assert_str_eq(buf, "line not complete in time; closing\r\n");
  close(fd);
  ck_assert(log_has(s, "line not complete 1 s after its first byte, closed"));

  /* Idle at the prompt for longer than the timeout: a person at a telnet prompt, still served. */
  fd = connect_to(s->tcp);
  read_until(fd, "?> ", buf, sizeof buf, false);
  usleep((useconds_t)(2.5 * TIMEOUT_S * 1e6));
  send_str(fd, "cat face\n");
  read_until(fd, "?> ", buf, sizeof buf, false);
  ck_assert_msg(strstr(buf, "10 matches for 'cat face'\r\n?> "), "%s: %s", backend, buf);
  close(fd);
}

static void slow_clients(const struct server *s, const char *backend) {
  http_slow_clients(s, backend);
  tcp_slow_clients(s, backend);
  clients_that_never_read(s, backend);
}

/* Clients that connect and close without a byte, or send only empty lines: nothing to answer
 * (the sanitizer build once aborted on the first), and the next client is served as ever. */
static void silent_clients(const struct server *s, const char *backend) {
  static char buf[4096];
  for (int i = 0; i < 8; i++) {
    close(connect_to(s->tcp));
    close(connect_to(s->http));
  }
  int fd = connect_to(s->tcp); /* shut without a byte, after the prompt came */
  read_until(fd, "?> ", buf, sizeof buf, false);
  shutdown(fd, SHUT_WR);
  ck_assert(closed_by_peer(fd, buf, sizeof buf));
  close(fd);
  fd = connect_to(s->tcp); /* empty lines get the prompt, end of stream the close */
  read_until(fd, "?> ", buf, sizeof buf, false);
  send_str(fd, "\r\n");
  read_until(fd, "?> ", buf, sizeof buf, false);
  ck_assert_str_eq(buf, "?> ");
  send_str(fd, "\n");
  read_until(fd, "?> ", buf, sizeof buf, false);
  ck_assert_str_eq(buf, "?> ");
  shutdown(fd, SHUT_WR);
  ck_assert(closed_by_peer(fd, buf, sizeof buf));
  close(fd);
  fd = connect_to(s->http); /* empty lines before a request are skipped; then the end */
  send_str(fd, "\r\n\r\n");
  shutdown(fd, SHUT_WR);
  ck_assert(closed_by_peer(fd, buf, sizeof buf));
  ck_assert_str_eq(buf, "");
  close(fd);
  fd = connect_to(s->http);
  send_str(fd, "\n");
  ck_assert(closed_by_peer(fd, buf, sizeof buf)); /* the timeout: nothing was asked, 408 */
  ck_assert_msg(!strncmp(buf, "HTTP/1.1 408 ", 13), "%s: %s", backend, buf);
  close(fd);
  /* Served as ever, on both ports. */
  fd = connect_to(s->tcp);
  read_until(fd, "?> ", buf, sizeof buf, false);
  send_str(fd, "cat face\n");
  read_until(fd, "?> ", buf, sizeof buf, false);
  ck_assert_msg(strstr(buf, "10 matches for 'cat face'\r\n?> "), "%s: %s", backend, buf);
  close(fd);
  fd = connect_to(s->http);
  send_str(fd, "GET /api/search?query=cat+face&stop=1 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
  ck_assert(closed_by_peer(fd, buf, sizeof buf));
  ck_assert_msg(strstr(buf, "HTTP/1.1 200 OK\r\n") == buf, "%s: %s", backend, buf);
  close(fd);
}

/* ---- every driver --------------------------------------------------------------------------------- */

static void on_every_driver(void (*fn)(const struct server *s, const char *backend),
                            const char *stopped) {
  aloop_backend_info info[8];
  size_t n = aloop_list_backends(info, 8);
  for (size_t i = 0; i < n && i < 8; i++) {
    if (!info[i].available) {
      ck_assert_msg(!getenv("ALOOP_REQUIRE_ALL_DRIVERS"), "%s unavailable: %s", info[i].name,
                    info[i].reason);
      fprintf(stderr, "%s unavailable here, not run: %s\n", info[i].name, info[i].reason);
      continue;
    }
    struct server s = start(info[i].name);
    fn(&s, info[i].name);
    stop(&s, stopped);
  }
}

static void tcp_all(const struct server *s, const char *backend) {
  tcp_rules(s, backend);
  tcp_endings(s);
  tcp_many_clients(s, backend);
}

START_TEST(test_the_tcp_line_protocol_on_every_driver) {
  on_every_driver(tcp_all, "aloop-charfinder: stopped: ");
}
END_TEST

START_TEST(test_http_over_sockets_on_every_driver) {
  on_every_driver(http_over_sockets, "aloop-charfinder: stopped: ");
}
END_TEST

/* HTTPS: Python's urllib (its ssl module: an independent TLS client) gets the page and an API
 * answer, verified against the test's certificate; plain HTTP to the HTTPS port is refused and
 * serving goes on. */
static int https_get(int port, const char *path, const char *expect) {
  static const char script[] =
      "import ssl, sys, urllib.request\n"
      "ctx = ssl.create_default_context(cafile=sys.argv[1])\n"
      "url = 'https://localhost:%s%s' % (sys.argv[2], sys.argv[3])\n"
      "body = urllib.request.urlopen(url, context=ctx, timeout=30).read().decode()\n"
      "sys.exit(0 if sys.argv[4] in body else 3)\n";
  char portstr[16];
  snprintf(portstr, sizeof portstr, "%d", port);
  pid_t pid = fork();
  if (pid == 0) {
    execlp("python3", "python3", "-c", script, tls_cert, portstr, path, expect, (char *)NULL);
    _exit(127);
  }
  int status;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void https_requests(const struct server *s, const char *backend) {
  ck_assert_msg(https_get(s->http, "/", "<html") == 0, "%s: no page over HTTPS", backend);
  ck_assert_msg(https_get(s->http, "/api/search?query=cat%20face", "CAT FACE") == 0,
                "%s: no API answer over HTTPS", backend);
  int fd = connect_to(s->http);
  send_str(fd, "GET / HTTP/1.0\r\n\r\n");
  char buf[256];
  ck_assert(closed_by_peer(fd, buf, sizeof buf));
  close(fd);
  ck_assert_msg(https_get(s->http, "/", "<html") == 0, "%s: no page after plain HTTP", backend);
}

START_TEST(test_https_with_python_clients_on_every_driver) {
  char dir[300], cert[340], key[340], cmd[1200];
  snprintf(dir, sizeof dir, "%s/tls", scratch_dir);
  snprintf(cert, sizeof cert, "%s/cert.pem", dir);
  snprintf(key, sizeof key, "%s/key.pem", dir);
  snprintf(cmd, sizeof cmd,
           "mkdir -p %s && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
           "-days 2 -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 "
           "-keyout %s -out %s 2>/dev/null", dir, key, cert);
  ck_assert_int_eq(system(cmd), 0);
  tls_cert = cert;
  tls_key = key;
  on_every_driver(https_requests, "aloop-charfinder: stopped: ");
  tls_cert = tls_key = NULL;
}
END_TEST

/* A browser's kept-alive connection, idle after its answer, when SIGTERM comes: closed at once
 * (not aborted after the grace period), and the server says so. */
static int idle_fd = -1;
static void http_keep_alive_left_open(const struct server *s, const char *backend) {
  static char buf[1 << 16];
  (void)backend;
  idle_fd = connect_to(s->http);
  send_str(idle_fd, "GET /?query=cat HTTP/1.1\r\nHost: t\r\n\r\n");
  read_until(idle_fd, "</html>\n", buf, sizeof buf, false);
  ck_assert(strstr(buf, "HTTP/1.1 200 OK\r\n") == buf);
}

START_TEST(test_shutdown_closes_idle_http_connections_without_the_grace_period) {
  on_every_driver(http_keep_alive_left_open, "stopped: 1 connection finished, 0 aborted");
  char buf[64];
  ck_assert(closed_by_peer(idle_fd, buf, sizeof buf));
  close(idle_fd);
}
END_TEST

START_TEST(test_slow_and_non_reading_clients_are_timed_out_on_every_driver) {
  on_every_driver(slow_clients, "aloop-charfinder: stopped: ");
}
END_TEST

START_TEST(test_clients_that_send_nothing_or_empty_lines_on_every_driver) {
  on_every_driver(silent_clients, "aloop-charfinder: stopped: ");
}
END_TEST

/* Run the program with up to three arguments (quoted); its stdout and stderr into out. */
static int run(const char *a1, const char *a2, const char *a3, char *out, size_t cap) {
  char cmd[1024];
  int n = snprintf(cmd, sizeof cmd, "ALOOP_CHARFINDER_INDEX='%s' %s '%s'", scratch_index, PROG,
                   a1);
  if (a2) n += snprintf(cmd + n, sizeof cmd - (size_t)n, " '%s'", a2);
  if (a3) n += snprintf(cmd + n, sizeof cmd - (size_t)n, " '%s'", a3);
  snprintf(cmd + n, sizeof cmd - (size_t)n, " 2>&1");
  FILE *p = popen(cmd, "r");
  size_t got = fread(out, 1, cap - 1, p);
  out[got] = 0;
  int status = pclose(p);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

START_TEST(test_the_command_line) {
  static char out[1 << 16];
  /* The first run builds the index and says so on stderr; the answer follows on stdout. */
  ck_assert_int_eq(run("query", "zzzq", NULL, out, sizeof out), 0);
  ck_assert_msg(strstr(out, "building the index") && strstr(out, "(it does not exist)"), "%s", out);
  ck_assert_int_eq(run("query", "chess", "black king", out, sizeof out), 0);
  ck_assert_str_eq(out, "U+265A \t\u265a\tBLACK CHESS KING\n"
                        "U+1FA0F\t\U0001FA0F\tBLACK CHESS KING ROTATED NINETY DEGREES\n"
                        "U+1FA24\t\U0001FA24\tBLACK CHESS TURNED KING\n"
                        "U+1FA39\t\U0001FA39\tBLACK CHESS KING ROTATED TWO HUNDRED SEVENTY DEGREES\n"
                        "(4 matches for 'chess black king')\n");
  ck_assert_int_eq(run("query", "zzzq", NULL, out, sizeof out), 0);
  ck_assert_str_eq(out, "(No match for 'zzzq')\n");
  ck_assert_int_eq(run("--help", NULL, NULL, out, sizeof out), 0);
  ck_assert(strstr(out, "--tcp") && strstr(out, "--http") && strstr(out, "--backend"));
  ck_assert_int_eq(run("--list-backends", NULL, NULL, out, sizeof out), 0);
  ck_assert(strstr(out, "select"));
  ck_assert_int_eq(run("--backend", "nope", NULL, out, sizeof out), 2);
  ck_assert_int_eq(run("--tcp", "localhost:99999", NULL, out, sizeof out), 2);
  ck_assert_int_eq(run("--timeout", "0", NULL, out, sizeof out), 2);
  ck_assert_int_eq(run("--bogus", NULL, NULL, out, sizeof out), 2);
  /* A port in use: said in words, exit 1. */
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof a;
  ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
  ck_assert_int_eq(listen(fd, 1), 0);
  getsockname(fd, (struct sockaddr *)&a, &len);
  char taken[32];
  snprintf(taken, sizeof taken, "127.0.0.1:%d", ntohs(a.sin_port));
  ck_assert_int_eq(run("--http", taken, NULL, out, sizeof out), 1);
  ck_assert_msg(strstr(out, "HTTP server on 127.0.0.1:") && strstr(out, "in use"), "%s", out);
  close(fd);
}
END_TEST

int main(void) {
  if (!scratch_begin(false)) return EXIT_FAILURE;
  Suite *suite = suite_create("integration");
  TCase *tc = tcase_create("charfinder");
  tcase_set_timeout(tc, 600);
  tcase_add_test(tc, test_the_command_line); /* first: it builds the index the others use */
  tcase_add_test(tc, test_the_tcp_line_protocol_on_every_driver);
  tcase_add_test(tc, test_https_with_python_clients_on_every_driver);
  tcase_add_test(tc, test_http_over_sockets_on_every_driver);
  tcase_add_test(tc, test_shutdown_closes_idle_http_connections_without_the_grace_period);
  tcase_add_test(tc, test_slow_and_non_reading_clients_are_timed_out_on_every_driver);
  tcase_add_test(tc, test_clients_that_send_nothing_or_empty_lines_on_every_driver);
  suite_add_tcase(suite, tc);
  signal(SIGPIPE, SIG_IGN);
  return scratch_end(run_suite(suite));
}
