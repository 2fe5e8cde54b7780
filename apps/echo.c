/* aloop-echo: the echo server in each of aloop's three styles, on any driver.
 *   sock      tasks with aloop_sock_accept / aloop_sock_recv_into / aloop_sock_sendall
 *   protocol  a protocol on transports (callbacks), served by aloop_create_server
 *   streams   a task per connection with aloop_stream_read / write / drain, by aloop_start_server
 * --udp also echoes UDP datagrams on the same port (a datagram endpoint, in every mode), and
 * --udp-only does nothing else. --tls-cert/--tls-key serve TCP over TLS (protocol and streams).
 * SIGINT or SIGTERM: stop accepting, let open connections finish for the grace period, abort the
 * rest, print one line saying so, exit 0. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/cli.h"

static const char *const prog = "aloop-echo";
static aloop_loop *loop;

/* A task's read buffer: 64 KiB as the peers in bench/ read (asyncio's reader.read and
 * sock_recv_into), so a 100 KiB message costs two reads and two sends. With 8 KiB, 100 KiB echoes
 * ran at a quarter to a third of the speed in sock and streams modes (one send per 8 KiB). It is
 * on the heap, not the task's stack: stack-clash protection (configure.ac) probes every page of a
 * large frame on entry, so a stack buffer cost all 64 KiB per idle connection (bench/memory
 * --idle: 74 KiB per connection in streams mode); fresh heap pages are touched only as reads fill
 * them. */
enum { READ_SIZE = 64 * 1024 };

/* ---- protocol mode ------------------------------------------------------------------------------ */

static void echo_data(aloop_transport *t, const void *data, size_t n, void *ctx) {
  (void)ctx;
  aloop_transport_write(t, data, n);
}

/* A client that reads nothing while we echo would make our buffer grow: stop reading until the
 * writes drain, as asyncio's flow control intends. */
static void pause_reading(aloop_transport *t, void *ctx) {
  (void)ctx;
  aloop_transport_pause_reading(t);
}
static void resume_reading(aloop_transport *t, void *ctx) {
  (void)ctx;
  aloop_transport_resume_reading(t);
}

static const aloop_protocol echo_protocol = {.data_received = echo_data,
                                             .pause_writing = pause_reading,
                                             .resume_writing = resume_reading};

/* ---- streams mode ---------------------------------------------------------------------------------- */

static int64_t echo_stream(aloop_stream *s, void *arg) {
  (void)arg;
  char *buf = malloc(READ_SIZE); /* reads complete into it while the task waits */
  int64_t n = buf ? 0 : -ENOMEM;
  while (buf && (n = aloop_await(aloop_stream_read(s, buf, READ_SIZE))) > 0) {
    aloop_stream_write(s, buf, (size_t)n);
    if ((n = aloop_await(aloop_stream_drain(s))) < 0) break;
  }
  free(buf);
  return n == -ECONNRESET || n == -EPIPE ? 0 : n; /* a peer that vanishes is not an error */
}

/* ---- sock mode ----------------------------------------------------------------------------------- */

struct sock_server {
  int fd;
  size_t clients;          /* tasks serving a connection */
  size_t max_clients;      /* --max-connections (0: no limit) */
  aloop_future *room;      /* set while the accept loop waits below the limit again */
  aloop_future *all_gone;  /* set while shutting down: done when clients reaches 0 */
  aloop_future **tasks;    /* each client's task, to cancel after the grace period */
  size_t ntasks, cap;
};
static struct sock_server sock;

static int64_t serve_sock_client(void *arg) {
  int fd = (int)(intptr_t)arg;
  char *buf = malloc(READ_SIZE);
  int64_t n = buf ? 0 : -ENOMEM;
  while (buf && (n = aloop_await(aloop_sock_recv_into(loop, fd, buf, READ_SIZE))) > 0)
    if ((n = aloop_await(aloop_sock_sendall(loop, fd, buf, (size_t)n))) < 0) break;
  free(buf);
  aloop_close(loop, fd);
  if (--sock.clients == 0 && sock.all_gone) aloop_future_set_result(sock.all_gone, 0);
  if (sock.room) aloop_future_set_result(sock.room, 0);
  return n == -ECONNRESET || n == -EPIPE || n == -ECANCELED ? 0 : n;
}

static void track(aloop_future *task) {
  size_t kept = 0; /* forget the finished ones first */
  for (size_t i = 0; i < sock.ntasks; i++) {
    if (aloop_future_done(sock.tasks[i]))
      aloop_future_release(sock.tasks[i]);
    else
      sock.tasks[kept++] = sock.tasks[i];
  }
  sock.ntasks = kept;
  if (sock.ntasks == sock.cap) {
    size_t cap = sock.cap ? sock.cap * 2 : 64;
    aloop_future **t = realloc(sock.tasks, cap * sizeof *t);
    if (!t) {
      aloop_future_release(task); /* it runs anyway; only its cancellation at exit is lost */
      return;
    }
    sock.tasks = t;
    sock.cap = cap;
  }
  sock.tasks[sock.ntasks++] = task;
}

/* At the connection limit: wait until a client's task ends (the backlog holds the next ones). */
static int64_t wait_for_room(void) {
  while (sock.max_clients && sock.clients >= sock.max_clients) {
    sock.room = aloop_future_new(loop, "room");
    int64_t r = aloop_await_keep(sock.room);
    aloop_future_release(sock.room);
    sock.room = NULL;
    if (r < 0) return r;
  }
  return 0;
}

static int64_t accept_sock_clients(void *arg) {
  (void)arg;
  for (unsigned accepted = 0;; accepted++) {
    /* An accept that completes at once does not give the loop a turn: after a batch, yield, so
     * that a flood of connections cannot keep the clients' tasks from running. */
    if ((accepted % ALOOP_ACCEPT_BATCH == ALOOP_ACCEPT_BATCH - 1 &&
         aloop_task_yield(loop) == -ECANCELED) ||
        wait_for_room() == -ECANCELED)
      return 0;
    int64_t fd = aloop_await(aloop_sock_accept(loop, sock.fd));
    if (fd == -ECANCELED) return 0;
    if (fd < 0) { /* EMFILE and friends: say so, breathe, go on serving the others */
      aloop_report_error(loop, (int)fd, sock.fd, "accept failed; pausing accepts for 1 s");
      if (aloop_await(aloop_sleep(loop, ALOOP_ACCEPT_PAUSE_NS)) == -ECANCELED) return 0;
      continue;
    }
    setsockopt((int)fd, IPPROTO_TCP, TCP_NODELAY, &(int){1}, sizeof(int));
    aloop_future *task = aloop_task_spawn(loop, serve_sock_client, (void *)(intptr_t)fd, NULL);
    if (!task) {
      aloop_close(loop, (int)fd);
      continue;
    }
    sock.clients++;
    track(task);
  }
}

/* ---- UDP ----------------------------------------------------------------------------------------- */

/* Each datagram goes back to its sender. While the socket's send buffer is full the write queue
 * is above its mark: datagrams that arrive then are dropped rather than queued without bound, as
 * UDP allows. */
static bool udp_paused;
static aloop_future *udp_closed;

static void udp_echo(aloop_datagram_transport *t, const void *data, size_t n,
                     const aloop_sockaddr *from, void *ctx) {
  (void)ctx;
  if (!udp_paused) aloop_datagram_sendto(t, data, n, from);
}
static void udp_pause(aloop_datagram_transport *t, void *ctx) {
  (void)t, (void)ctx;
  udp_paused = true;
}
static void udp_resume(aloop_datagram_transport *t, void *ctx) {
  (void)t, (void)ctx;
  udp_paused = false;
}
static void udp_lost(aloop_datagram_transport *t, int err, void *ctx) {
  (void)t, (void)ctx;
  aloop_future_set_result(udp_closed, err < 0 ? -err : 0);
}

static const aloop_datagram_protocol udp_protocol = {.datagram_received = udp_echo,
                                                     .pause_writing = udp_pause,
                                                     .resume_writing = udp_resume,
                                                     .connection_lost = udp_lost};

/* The UDP echo endpoint on host:port, or NULL after printing why. */
static aloop_datagram_transport *open_udp(const char *host, int port, bool reuse_port) {
  aloop_datagram_options o = {.size = sizeof o, .local_host = host, .local_port = port,
                              .reuse_port = reuse_port};
  aloop_future *f = aloop_create_datagram_endpoint(loop, &udp_protocol, NULL, &o);
  if (aloop_run_until_complete(loop, f) < 0) {
    fprintf(stderr, "%s: udp: %s\n", prog, aloop_future_message(f));
    aloop_future_release(f);
    return NULL;
  }
  aloop_datagram_transport *t = aloop_future_data(f);
  aloop_future_release(f);
  udp_closed = aloop_future_new(loop, "udp closed");
  return t;
}

static void close_udp(aloop_datagram_transport *t) {
  aloop_datagram_close(t);
  aloop_run_until_complete(loop, udp_closed);
  aloop_future_release(udp_closed);
}

static int udp_port(const aloop_datagram_transport *t) {
  aloop_sockaddr a;
  if (aloop_datagram_sockname(t, &a) < 0) return -1;
  if (a.addr.ss_family == AF_INET6) return ntohs(((struct sockaddr_in6 *)&a.addr)->sin6_port);
  return ntohs(((struct sockaddr_in *)&a.addr)->sin_port);
}

/* ---- running and stopping -------------------------------------------------------------------------- */

struct options {
  const char *backend, *mode, *host;
  const char *tls_cert, *tls_key; /* TLS with this certificate chain and key (both, or neither) */
  int port, workers;
  bool udp, udp_only;
  long max_connections;
  double grace;
  int ready_fd; /* a worker tells its parent it listens (and on which driver) here; -1: none */
};

static void usage(FILE *out) {
  fprintf(out,
          "usage: %s [--backend select|libev|io_uring|auto] [--mode sock|protocol|streams]\n"
          "          [--host H] [--port P] [--workers N] [--grace SECONDS]\n"
          "          [--max-connections N] [--udp | --udp-only] [--list-backends]\n"
          "          [--tls-cert FILE --tls-key FILE]\n"
          "  --backend   the loop's driver (default: $ALOOP_BACKEND, else auto)\n"
          "  --mode      sock: tasks on socket operations; protocol: transports and protocols;\n"
          "              streams: a task per connection on streams (default: protocol)\n"
          "  --host      the address to listen on (default 127.0.0.1)\n"
          "  --port      the port (default 8888; 0: any free port, printed at start)\n"
          "  --workers   N processes, each with its own loop, sharing the port (SO_REUSEPORT)\n"
          "              to use every core (default 1)\n"
          "  --grace     on SIGINT/SIGTERM, how long open connections may go on (default 5)\n"
          "  --max-connections  at most N open at once per process; the kernel's backlog\n"
          "              holds the next ones (default 0: no limit)\n"
          "  --udp       also echo UDP datagrams, on the same port number\n"
          "  --udp-only  echo UDP datagrams only\n"
          "  --tls-cert, --tls-key  serve TCP over TLS with this certificate chain and private\n"
          "              key (PEM; protocol and streams modes: sock mode has no transport)\n",
          prog);
}

static int parse(int argc, char **argv, struct options *o) {
  int rc = cli_take_backend(&argc, argv, prog, &o->backend);
  if (rc != CLI_CONTINUE) return rc;
  for (int i = 1; i < argc; i += 2) { /* every option takes a value */
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    char *end = NULL;
    if (!strcmp(a, "--udp") || !strcmp(a, "--udp-only")) { /* flags without a value */
      o->udp = true;
      o->udp_only |= !strcmp(a, "--udp-only");
      i--;
    } else if (!strcmp(a, "--help")) {
      usage(stdout);
      return CLI_EXIT_OK;
    } else if (!strcmp(a, "--mode") && v && (!strcmp(v, "sock") || !strcmp(v, "protocol") ||
                                             !strcmp(v, "streams"))) {
      o->mode = v;
    } else if (!strcmp(a, "--host") && v) {
      o->host = v;
    } else if (!strcmp(a, "--tls-cert") && v) {
      o->tls_cert = v;
    } else if (!strcmp(a, "--tls-key") && v) {
      o->tls_key = v;
    } else if (!strcmp(a, "--port") && v && (o->port = (int)strtol(v, &end, 10), !*end) &&
               o->port >= 0 && o->port < 65536) {
    } else if (!strcmp(a, "--workers") && v && (o->workers = (int)strtol(v, &end, 10), !*end) &&
               o->workers >= 1 && o->workers <= 256) {
    } else if (!strcmp(a, "--grace") && v && (o->grace = strtod(v, &end), !*end) && o->grace >= 0) {
    } else if (!strcmp(a, "--max-connections") && v &&
               (o->max_connections = strtol(v, &end, 10), !*end) && o->max_connections >= 0) {
    } else {
      fprintf(stderr, "%s: bad argument '%s'%s\n", prog, a, v ? "" : " (or its value is missing)");
      usage(stderr);
      return CLI_EXIT_USAGE;
    }
  }
  if (!o->tls_cert != !o->tls_key) {
    fprintf(stderr, "%s: --tls-cert and --tls-key go together\n", prog);
    return CLI_EXIT_USAGE;
  }
  if (o->tls_cert && (!strcmp(o->mode, "sock") || o->udp_only)) {
    fprintf(stderr, "%s: TLS needs a transport: use --mode protocol or streams\n", prog);
    return CLI_EXIT_USAGE;
  }
  return CLI_CONTINUE;
}

static aloop_future *stop_requested;
static void on_stop_signal(aloop_loop *l, void *arg) {
  (void)l, (void)arg;
  aloop_future_set_result(stop_requested, 0); /* a second signal finds it done: harmless */
}

struct shutdown_counts {
  size_t finished, aborted;
};

/* Stop accepting, give open connections the grace period, abort the rest. */
static struct shutdown_counts stop_server(aloop_server *server, int64_t grace_ns) {
  struct shutdown_counts c = {0, 0};
  size_t open = aloop_server_connections(server);
  aloop_server_close(server);
  aloop_future *closed = aloop_server_wait_closed(server);
  aloop_future *grace = aloop_wait_for(loop, closed, grace_ns);
  if (aloop_run_until_complete(loop, grace) < 0) {
    c.aborted = aloop_server_connections(server);
    aloop_server_abort_clients(server);
  }
  aloop_future_release(grace);
  aloop_future_release(closed);
  c.finished = open - c.aborted;
  aloop_future *gone = aloop_server_wait_closed(server);
  aloop_run_until_complete(loop, gone);
  aloop_future_release(gone);
  aloop_server_free(server);
  return c;
}

static struct shutdown_counts stop_sock(aloop_future *acceptor, int64_t grace_ns) {
  struct shutdown_counts c = {0, 0};
  aloop_future_cancel(acceptor);
  aloop_run_until_complete(loop, acceptor);
  aloop_close(loop, sock.fd);
  size_t open = sock.clients;
  if (open) {
    sock.all_gone = aloop_future_new(loop, "clients");
    aloop_future *grace = aloop_wait_for(loop, sock.all_gone, grace_ns);
    if (aloop_run_until_complete(loop, grace) < 0) {
      c.aborted = sock.clients;
      for (size_t i = 0; i < sock.ntasks; i++) aloop_future_cancel(sock.tasks[i]);
    }
    aloop_future_release(grace);
  }
  for (size_t i = 0; i < sock.ntasks; i++) {
    aloop_run_until_complete(loop, sock.tasks[i]);
    aloop_future_release(sock.tasks[i]);
  }
  free(sock.tasks);
  if (sock.all_gone) aloop_future_release(sock.all_gone);
  c.finished = open - c.aborted;
  return c;
}

/* One loop serving until SIGINT/SIGTERM. A worker (ready_fd >= 0) reports to its parent instead
 * of printing. */
static int serve(const struct options *o) {
  if (!(loop = cli_new_loop(prog, o->backend))) return errno == ALOOP_EBACKEND ? CLI_EXIT_USAGE : 1;
  aloop_server_options sopts = {.size = sizeof sopts, .reuse_port = o->workers > 1,
                                .max_connections = (size_t)o->max_connections};
  if (o->tls_cert) {
    char why[512];
    if (!(sopts.tls = aloop_tls_server_context(o->tls_cert, o->tls_key, why, sizeof why))) {
      fprintf(stderr, "%s: %s\n", prog, why);
      return 1;
    }
  }
  sock.max_clients = (size_t)o->max_connections;
  aloop_server *server = NULL;
  aloop_future *acceptor = NULL;
  aloop_datagram_transport *udp = NULL;
  int port = o->port;
  if (o->udp_only) {
    /* no TCP */
  } else if (!strcmp(o->mode, "sock")) {
    if ((sock.fd = cli_listen(prog, o->host, o->port, o->workers > 1, &port)) < 0) return 1;
    acceptor = aloop_task_spawn(loop, accept_sock_clients, NULL, NULL);
  } else {
    aloop_future *f = !strcmp(o->mode, "streams")
                          ? aloop_start_server(loop, echo_stream, NULL, o->host, o->port, &sopts)
                          : aloop_create_server(loop, &echo_protocol, NULL, NULL, o->host, o->port,
                                                &sopts);
    aloop_tls_context_free(sopts.tls); /* the server holds its own */
    if (aloop_run_until_complete(loop, f) < 0) {
      fprintf(stderr, "%s: %s\n", prog, aloop_future_message(f));
      return 1;
    }
    server = aloop_future_data(f);
    aloop_future_release(f);
    port = aloop_server_port(server);
  }
  if (o->udp) { /* on the port TCP has (what port 0 became), or the one asked for */
    if (!(udp = open_udp(o->host, port, o->workers > 1))) return 1;
    port = udp_port(udp);
  }
  char mode[32];
  snprintf(mode, sizeof mode, "%s%s%s", o->udp_only ? "udp" : o->mode, o->tls_cert ? "+tls" : "",
           o->udp && !o->udp_only ? "+udp" : "");

  stop_requested = aloop_future_new(loop, "stop");
  aloop_add_signal_handler(loop, SIGINT, on_stop_signal, NULL);
  aloop_add_signal_handler(loop, SIGTERM, on_stop_signal, NULL);
  if (o->ready_fd >= 0) {
    dprintf(o->ready_fd, "%s\n", aloop_backend_name(loop));
    close(o->ready_fd);
  } else {
    printf("%s: %s driver, %s mode, listening on %s:%d\n", prog, aloop_backend_name(loop), mode,
           o->host, port);
    fflush(stdout);
  }
  aloop_run_until_complete(loop, stop_requested);

  int64_t grace_ns = (int64_t)(o->grace * 1e9);
  if (udp) close_udp(udp);
  struct shutdown_counts c = {0, 0};
  if (server)
    c = stop_server(server, grace_ns);
  else if (acceptor)
    c = stop_sock(acceptor, grace_ns);
  if (o->ready_fd < 0)
    printf("%s: stopped: %zu connection%s finished, %zu aborted after the %.3g s grace period\n",
           prog, c.finished, c.finished == 1 ? "" : "s", c.aborted, o->grace);
  aloop_future_release(acceptor);
  aloop_future_release(stop_requested);
  aloop_remove_signal_handler(loop, SIGINT);
  aloop_remove_signal_handler(loop, SIGTERM);
  aloop_run_once(loop, 0);
  aloop_free(loop);
  return 0;
}

/* --workers N: N processes, each its own loop and listening socket on the same port. The parent
 * only starts them, relays SIGINT/SIGTERM, and says when they are all done. */
static int run_workers(struct options *o) {
  if (o->port == 0) { /* any free port: find one and let it go; the first worker binds it at once */
    int probe = cli_listen(prog, o->host, 0, true, &o->port);
    if (probe < 0) return 1;
    close(probe);
  }
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGCHLD);
  sigprocmask(SIG_BLOCK, &stop, NULL); /* from now on they wait for sigwaitinfo below */
  pid_t pids[256];
  char driver[32] = "?";
  for (int i = 0; i < o->workers; i++) {
    int p[2];
    if (pipe(p) < 0 || (pids[i] = fork()) < 0) {
      perror(prog);
      return 1;
    }
    if (pids[i] == 0) {
      sigprocmask(SIG_UNBLOCK, &stop, NULL);
      close(p[0]);
      o->ready_fd = p[1];
      _exit(serve(o));
    }
    close(p[1]);
    ssize_t n = read(p[0], driver, sizeof driver - 1);
    close(p[0]);
    if (n <= 0) {
      fprintf(stderr, "%s: worker %d did not start\n", prog, i + 1);
      for (int k = 0; k <= i; k++) kill(pids[k], SIGTERM);
      return 1;
    }
    driver[n - 1] = 0;
  }
  printf("%s: %s driver, %s%s mode, %d workers, listening on %s:%d\n", prog, driver,
         o->udp_only ? "udp" : o->mode, o->udp && !o->udp_only ? "+udp" : "", o->workers, o->host,
         o->port);
  fflush(stdout);
  siginfo_t info;
  while (sigwaitinfo(&stop, &info) < 0 && errno == EINTR) {
  }
  int failed = 0;
  for (int i = 0; i < o->workers; i++) kill(pids[i], SIGTERM);
  for (int i = 0; i < o->workers; i++) {
    int status;
    if (waitpid(pids[i], &status, 0) != pids[i] || !WIFEXITED(status) || WEXITSTATUS(status))
      failed++;
  }
  printf("%s: stopped: %d worker%s, %d failed\n", prog, o->workers, o->workers == 1 ? "" : "s",
         failed);
  return failed ? 1 : 0;
}

int main(int argc, char **argv) {
  struct options o = {.mode = "protocol", .host = "127.0.0.1", .port = 8888, .workers = 1,
                      .grace = 5, .ready_fd = -1};
  int rc = parse(argc, argv, &o);
  if (rc != CLI_CONTINUE) return rc;
  signal(SIGPIPE, SIG_IGN);
  return o.workers > 1 ? run_workers(&o) : serve(&o);
}
