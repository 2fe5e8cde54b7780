/* What the C reference peers share and what is not their subject: the command line
 * (`--host H --port P`, `--help`; exit status 2 on bad arguments) and a non-blocking listening
 * socket. Include after defining NAME (the program's name in messages). */
#ifndef ALOOP_BENCH_PEER_H
#define ALOOP_BENCH_PEER_H

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

enum { PEER_BACKLOG = 4096 };

static inline void peer_usage(FILE *f, const char *prog) {
  fprintf(f, "usage: %s [--host H] [--port P]  (defaults 127.0.0.1 and 8888; port 0 = ephemeral)\n",
          prog);
}

static inline void peer_parse_args(int argc, char **argv, const char **host, int *port) {
  for (int i = 1; i < argc; i++) {
    const char *arg = argv[i], *val = NULL;
    if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
      peer_usage(stdout, argv[0]);
      exit(0);
    }
    if (!strncmp(arg, "--host=", 7) || !strncmp(arg, "--port=", 7)) {
      val = arg + 7;
    } else if ((!strcmp(arg, "--host") || !strcmp(arg, "--port")) && i + 1 < argc) {
      val = argv[++i];
    } else {
      fprintf(stderr, "%s: bad argument: %s\n", NAME, arg);
      peer_usage(stderr, argv[0]);
      exit(2);
    }
    if (arg[2] == 'h') {
      *host = val;
    } else {
      char *end;
      errno = 0;
      long v = strtol(val, &end, 10);
      if (errno || end == val || *end || v < 0 || v > 65535) {
        fprintf(stderr, "%s: bad port: %s\n", NAME, val);
        peer_usage(stderr, argv[0]);
        exit(2);
      }
      *port = (int)v;
    }
  }
}

/* A non-blocking listening socket on host:port; *bound gets the real port. Exits on failure. */
static inline int peer_listen(const char *host, int port, int *bound) {
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                           .ai_flags = AI_PASSIVE | AI_NUMERICSERV}, *res, *ai;
  char service[8];
  snprintf(service, sizeof service, "%d", port);
  int rc = getaddrinfo(host, service, &hints, &res);
  if (rc) {
    fprintf(stderr, "%s: %s: %s\n", NAME, host, gai_strerror(rc));
    exit(1);
  }
  int fd = -1, err = 0;
  for (ai = res; ai; ai = ai->ai_next) {
    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
      err = errno;
      continue;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, PEER_BACKLOG) == 0) break;
    err = errno;
    close(fd);
    fd = -1;
  }
  freeaddrinfo(res);
  if (fd < 0) {
    fprintf(stderr, "%s: cannot listen on %s:%d: %s\n", NAME, host, port, strerror(err));
    exit(1);
  }
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  getsockname(fd, (struct sockaddr *)&ss, &sl);
  *bound = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                          : ((struct sockaddr_in *)&ss)->sin_port);
  return fd;
}

/* As many connections as the hard limit allows: a reference must not be the one to run out. */
static inline void peer_raise_fd_limit(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

#endif
