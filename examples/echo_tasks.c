/* aloop-echo-tasks: the first server of every asyncio tutorial, in C. One task accepts; one task
 * per client receives and sends back until the client closes. Runs unchanged on every driver.
 *   aloop-echo-tasks [--backend NAME] [--port N]   (port 0: any free port; the line printed at
 *   start says which). SIGINT or SIGTERM stops it. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/cli.h"

static aloop_loop *loop;

static int64_t serve_client(void *arg) {
  int fd = (int)(intptr_t)arg;
  char buf[64 * 1024];
  int64_t n;
  while ((n = aloop_await(aloop_sock_recv_into(loop, fd, buf, sizeof buf))) > 0)
    if ((n = aloop_await(aloop_sock_sendall(loop, fd, buf, (size_t)n))) < 0) break;
  aloop_close(loop, fd);
  return n == -ECONNRESET || n == -EPIPE ? 0 : n; /* a peer that vanishes is not an error */
}

static int64_t accept_clients(void *arg) {
  int lfd = (int)(intptr_t)arg;
  for (;;) {
    int64_t fd = aloop_await(aloop_sock_accept(loop, lfd));
    if (fd == -ECANCELED) return 0;
    if (fd < 0) { /* EMFILE and friends: say so, breathe, go on serving the others */
      aloop_report_error(loop, (int)fd, lfd, "accept failed");
      aloop_await(aloop_sleep(loop, 100000000));
      continue;
    }
    aloop_future_release(aloop_task_spawn(loop, serve_client, (void *)(intptr_t)fd, NULL));
  }
}

static void on_stop_signal(aloop_loop *l, void *arg) {
  (void)l;
  aloop_future_cancel(arg);
}

static int listen_on(int port, struct sockaddr_in *addr) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;
  *addr = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof *addr;
  if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
      bind(fd, (struct sockaddr *)addr, sizeof *addr) < 0 || listen(fd, 1024) < 0 ||
      getsockname(fd, (struct sockaddr *)addr, &len) < 0) {
    perror("aloop-echo-tasks: listen");
    exit(1);
  }
  return fd;
}

int main(int argc, char **argv) {
  const char *prog = "aloop-echo-tasks", *backend;
  int rc = cli_take_backend(&argc, argv, prog, &backend);
  if (rc != CLI_CONTINUE) return rc;
  int port = 8888;
  for (int i = 1; i < argc; i++) {
    char *end;
    if (!strcmp(argv[i], "--port") && i + 1 < argc && (port = (int)strtol(argv[++i], &end, 10), !*end) &&
        port >= 0 && port < 65536)
      continue;
    int help = !strcmp(argv[i], "--help");
    fprintf(help ? stdout : stderr, "usage: %s [--backend select|libev|io_uring|auto] [--port N]\n", prog);
    return help ? 0 : CLI_EXIT_USAGE;
  }
  if (!(loop = cli_new_loop(prog, backend))) return errno == ALOOP_EBACKEND ? CLI_EXIT_USAGE : 1;
  struct sockaddr_in addr;
  int lfd = listen_on(port, &addr);
  aloop_future *acceptor = aloop_task_spawn(loop, accept_clients, (void *)(intptr_t)lfd, NULL);
  aloop_add_signal_handler(loop, SIGINT, on_stop_signal, acceptor);
  aloop_add_signal_handler(loop, SIGTERM, on_stop_signal, acceptor);
  printf("%s: %s driver, listening on 127.0.0.1:%d\n", prog, aloop_backend_name(loop),
         ntohs(addr.sin_port));
  fflush(stdout);
  int64_t outcome = aloop_run_until_complete(loop, acceptor);
  printf("%s: stopped\n", prog);
  aloop_future_release(acceptor);
  aloop_remove_signal_handler(loop, SIGINT);
  aloop_remove_signal_handler(loop, SIGTERM);
  aloop_close(loop, lfd);
  aloop_run_once(loop, 0);
  aloop_free(loop);
  return outcome < 0 ? 1 : 0;
}
