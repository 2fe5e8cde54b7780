/* Command-line pieces shared by the programs in apps/. */
#include "cli.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>
#include <string.h>

void cli_list_backends(FILE *out) {
  aloop_backend_info info[8];
  size_t n = aloop_list_backends(info, 8);
  for (size_t i = 0; i < n && i < 8; i++) {
    fprintf(out, "%-9s %s", info[i].name, info[i].available ? "available" : "unavailable");
    if (!info[i].available) fprintf(out, ": %s", info[i].reason);
    aloop_options opts = {.size = sizeof opts, .backend = info[i].name};
    aloop_loop *loop = info[i].available ? aloop_new(&opts) : NULL;
    if (loop && *aloop_backend_detail(loop)) fprintf(out, " (%s)", aloop_backend_detail(loop));
    aloop_free(loop);
    if (info[i].max_fd) fprintf(out, " (fds below %d)", info[i].max_fd);
    fputc('\n', out);
  }
}

int cli_take_backend(int *argc, char **argv, const char *prog, const char **backend) {
  int kept = 1;
  *backend = NULL;
  for (int i = 1; i < *argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--list-backends") == 0) {
      cli_list_backends(stdout);
      return CLI_EXIT_OK;
    }
    if (strcmp(a, "--backend") == 0) {
      if (i + 1 >= *argc) {
        fprintf(stderr, "%s: --backend needs a name: select, libev, io_uring or auto\n", prog);
        return CLI_EXIT_USAGE;
      }
      *backend = argv[++i];
    } else if (strncmp(a, "--backend=", 10) == 0) {
      *backend = a + 10;
    } else {
      argv[kept++] = argv[i];
    }
  }
  *argc = kept;
  argv[kept] = NULL;
  return CLI_CONTINUE;
}

aloop_loop *cli_new_loop(const char *prog, const char *backend) {
  char why[256] = "";
  aloop_options opts = {.size = sizeof opts, .backend = backend, .error = why,
                        .error_size = sizeof why};
  aloop_loop *loop = aloop_new(&opts);
  if (!loop) {
    int err = errno; /* callers tell a bad name (exit 2) from other failures by it */
    fprintf(stderr, "%s: %s\n", prog, why[0] ? why : aloop_strerror(err));
    errno = err;
  }
  return loop;
}

int cli_listen(const char *prog, const char *host, int port, bool reuse_port, int *bound_port) {
  char service[16];
  snprintf(service, sizeof service, "%d", port);
  struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *ai;
  int err = getaddrinfo(host, service, &hints, &ai);
  if (err) {
    fprintf(stderr, "%s: %s:%d: %s\n", prog, host ? host : "*", port, gai_strerror(err));
    return -1;
  }
  int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;
  struct sockaddr_storage a;
  socklen_t len = sizeof a;
  if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
      (reuse_port && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) ||
      bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 1024) < 0 ||
      getsockname(fd, (struct sockaddr *)&a, &len) < 0) {
    fprintf(stderr, "%s: listen on %s:%d: %s\n", prog, host ? host : "*", port, strerror(errno));
    if (fd >= 0) close(fd);
    freeaddrinfo(ai);
    return -1;
  }
  freeaddrinfo(ai);
  *bound_port = ntohs(a.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&a)->sin6_port
                                              : ((struct sockaddr_in *)&a)->sin_port);
  return fd;
}
