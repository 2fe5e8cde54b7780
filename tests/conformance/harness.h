/* What every conformance test shares: the driver under test, a fresh loop per test (L), the error
 * reports it made, and a teardown that checks the test left nothing behind. Tests use the public
 * API only. */
#ifndef ALOOP_TEST_HARNESS_H
#define ALOOP_TEST_HARNESS_H

#include <check.h>
#include <stdint.h>

#include "aloop.h"
#include "cases.h"

#define MS INT64_C(1000000) /* nanoseconds */
#define SEC (1000 * MS)

extern const char *test_driver; /* the driver every loop in this run uses */
extern aloop_loop *L;           /* created before each test, checked and freed after */

/* Reports made to L's error handler (the harness installs a recording one). */
struct reports {
  int count;
  int code, fd;
  char source[32], message[256];
};
extern struct reports reports;
extern int reports_expected; /* a test that provokes reports says how many it expects */

/* A test case whose tests get a fresh L and a checked teardown, with a generous timeout. */
TCase *conformance_tcase(const char *name);

/* A new loop on the driver under test, with the recording error handler. */
aloop_loop *new_test_loop(void);
/* The same, made to run inside another program's loop (aloop_options.embedded). */
aloop_loop *new_embedded_test_loop(void);

/* Run `loop` until something calls aloop_stop, or `max_ns` passes. Returns 1 if it was stopped,
 * 0 if the time ran out (the test then fails on what it did not see). */
int run_at_most(aloop_loop *loop, int64_t max_ns);

/* Run L until f is done, at most max_ns (then f is cancelled and this gives -ETIMEDOUT); returns
 * its outcome and releases f. */
int64_t run_within(aloop_future *f, int64_t max_ns);

/* A pipe / socketpair, non-blocking and close-on-exec. */
void make_pipe(int fds[2]);
void make_socketpair(int fds[2]);

/* A non-blocking TCP listener on 127.0.0.1 at an ephemeral port (its address in *addr), and a
 * non-blocking TCP socket to connect with. */
struct sockaddr_in;
int tcp_listener(struct sockaddr_in *addr);
int tcp_socket(void);
/* A connected loopback TCP pair through the loop: returns the accepted fd; *lfd is the listener,
 * *cfd the connecting side. */
int tcp_connected(int *lfd, int *cfd);

/* Fork a process that opens n connections to addr with plain blocking sockets and, `rounds`
 * times, sends a msg-byte message on each and checks its echo byte for byte. The loop's process
 * then holds only the server side (1,000 connections stay within select's limit). */
#include <sys/types.h>
pid_t spawn_echo_clients(const struct sockaddr_in *addr, int n, int rounds, size_t msg);
/* Run `loop` until that process exits (at most max_ns) and check it succeeded. */
void run_until_child_exits(aloop_loop *loop, pid_t pid, int64_t max_ns);

#endif
