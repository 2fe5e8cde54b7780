/* The integration tests run aloop's programs as a user does: start one with its flags, read the
 * "listening on 127.0.0.1:PORT" line it prints first, talk to it over loopback, stop it with
 * SIGTERM and expect status 0. Shared here so that every such test starts, waits for and stops its
 * server the same way, on every compiled driver. */
#ifndef ALOOP_TEST_PROGRAMS_H
#define ALOOP_TEST_PROGRAMS_H
#include <arpa/inet.h>
#include <check.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "aloop.h"

struct program {
  pid_t pid;
  int port;
  FILE *out; /* the rest of its stdout, kept open: a program that prints as it stops lives */
};

/* argv[0] is the program's path (from the build directory); stderr goes to /dev/null when
 * `quiet` (a request log). Returns once it has said where it listens. */
static inline struct program start_program(const char *const argv[], bool quiet) {
  int out[2];
  ck_assert_int_eq(pipe(out), 0);
  fflush(NULL);
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    dup2(out[1], 1);
    close(out[0]);
    close(out[1]);
    if (quiet) dup2(open("/dev/null", O_WRONLY), 2);
    execv(argv[0], (char *const *)argv);
    _exit(126);
  }
  close(out[1]);
  FILE *f = fdopen(out[0], "r");
  char line[512] = "";
  ck_assert_msg(fgets(line, sizeof line, f) != NULL, "%s printed nothing", argv[0]);
  const char *colon = strrchr(line, ':');
  ck_assert_msg(strstr(line, "on 127.0.0.1:") && colon, "%s's first line: %s", argv[0], line);
  return (struct program){pid, atoi(colon + 1), f};
}

static inline void stop_program(struct program *p) {
  kill(p->pid, SIGTERM);
  char line[512];
  while (fgets(line, sizeof line, p->out)) { /* up to its exit */
  }
  fclose(p->out);
  int status;
  ck_assert_int_eq(waitpid(p->pid, &status, 0), p->pid);
  ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "exit status %d", status);
}

/* A blocking client socket; a server that never answers fails the test after 60 s, not hangs. */
static inline int connect_to(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct timeval patience = {60, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &patience, sizeof patience);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
  return fd;
}

/* The drivers this build has and this kernel runs, into names (at most max); one the kernel
 * refuses fails the test under ALOOP_REQUIRE_ALL_DRIVERS, as everywhere in the suite. */
static inline size_t usable_drivers(const char *names[], size_t max) {
  aloop_backend_info info[8];
  size_t n = aloop_list_backends(info, 8), k = 0;
  for (size_t i = 0; i < n && i < 8; i++) {
    if (!info[i].available) {
      ck_assert_msg(!getenv("ALOOP_REQUIRE_ALL_DRIVERS"), "%s unavailable: %s", info[i].name,
                    info[i].reason);
      continue;
    }
    if (k < max) names[k++] = info[i].name;
  }
  return k;
}

/* A self-signed ECDSA certificate for localhost and 127.0.0.1 (cert.pem, key.pem) in a new
 * directory, made by the openssl command; dir gets its path (64 bytes). */
static inline void make_tls_files(char dir[64]) {
  strcpy(dir, "/tmp/aloop-tls-XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(dir));
  char cmd[512];
  snprintf(cmd, sizeof cmd,
           "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 "
           "-subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 "
           "-keyout %s/key.pem -out %s/cert.pem 2>/dev/null", dir, dir);
  ck_assert_int_eq(system(cmd), 0);
}

static inline void remove_dir(const char *dir) {
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  ck_assert_int_eq(system(cmd), 0);
}

/* Runs python3 -c script with args (NULL-terminated, at most 6); its exit status. */
static inline int run_python(const char *script, const char *const args[]) {
  const char *argv[10] = {"python3", "-c", script};
  for (int i = 0; args[i] && i < 6; i++) argv[3 + i] = args[i];
  fflush(NULL);
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    execvp("python3", (char *const *)argv);
    _exit(127);
  }
  int status;
  ck_assert_int_eq(waitpid(pid, &status, 0), pid);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}
#endif
