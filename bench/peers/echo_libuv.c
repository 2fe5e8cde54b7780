/* echo-libuv: reference peer for the echo benchmark, a TCP echo server on plain libuv written in
 * libuv's own idiom, to show what a mature C loop library costs over raw epoll. Per message: libuv
 * reads into the connection's 64 KiB buffer (the alloc callback hands out the same one every time)
 * and the read callback sends the bytes back with uv_try_write, which on a ping-pong load almost
 * always writes everything at once, so there is no request, no allocation and no copy. Only when
 * the socket is full does the rest go through uv_write; reading stops until that write completes,
 * which keeps the one buffer valid for it and bounds what a connection holds.
 *
 * usage: echo-libuv [--host H] [--port P]   (defaults 127.0.0.1 and 8888; port 0 = ephemeral)
 * Prints "echo-libuv: listening on HOST:PORT"; on SIGINT/SIGTERM prints "echo-libuv: stopped" and
 * exits 0. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define NAME "echo-libuv"
#include "peer.h"

enum { BUF_SIZE = 64 * 1024 };

struct conn {
  uv_tcp_t tcp; /* first: the handle's address is the connection's */
  uv_write_t wreq;
  char buf[BUF_SIZE];
};

static uv_loop_t *loop;


static void on_close(uv_handle_t *h) { free(h); }

static void drop(struct conn *c) {
  if (!uv_is_closing((uv_handle_t *)&c->tcp)) uv_close((uv_handle_t *)&c->tcp, on_close);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)suggested;
  *buf = uv_buf_init(((struct conn *)h)->buf, BUF_SIZE);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void on_write(uv_write_t *req, int status) {
  struct conn *c = req->data;
  if (status < 0 || uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0) drop(c);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  struct conn *c = (struct conn *)s;
  if (nread < 0) { /* UV_EOF, or the peer is gone */
    drop(c);
    return;
  }
  if (nread == 0) return; /* EAGAIN */
  uv_buf_t b = uv_buf_init(buf->base, (unsigned)nread);
  int w = uv_try_write(s, &b, 1);
  if (w == nread) return;
  if (w < 0) {
    if (w != UV_EAGAIN) {
      drop(c);
      return;
    }
    w = 0;
  }
  b.base += w;
  b.len -= (size_t)w;
  uv_read_stop(s); /* the buffer belongs to the write until on_write */
  c->wreq.data = c;
  if (uv_write(&c->wreq, s, &b, 1, on_write) < 0) drop(c);
}

static void on_connection(uv_stream_t *server, int status) {
  if (status < 0) return;
  struct conn *c = malloc(sizeof *c);
  if (!c) return;
  uv_tcp_init(loop, &c->tcp);
  if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0) {
    drop(c);
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0) drop(c);
}

static void on_signal(uv_signal_t *h, int signum) {
  (void)signum;
  uv_stop(h->loop);
}

int main(int argc, char **argv) {
  const char *host = "127.0.0.1";
  int port = 8888;
  peer_parse_args(argc, argv, &host, &port);
  signal(SIGPIPE, SIG_IGN);
  loop = uv_default_loop();

  /* The listening socket is made as the other C peers make theirs, then handed to libuv. */
  int bound, fd = peer_listen(host, port, &bound);
  static uv_tcp_t server;
  uv_tcp_init(loop, &server);
  int rc = uv_tcp_open(&server, fd);
  if (rc == 0) rc = uv_listen((uv_stream_t *)&server, PEER_BACKLOG, on_connection);
  if (rc) {
    fprintf(stderr, "%s: cannot listen on %s:%d: %s\n", NAME, host, port, uv_strerror(rc));
    return 1;
  }

  static uv_signal_t sigint, sigterm;
  uv_signal_init(loop, &sigint);
  uv_signal_start(&sigint, on_signal, SIGINT);
  uv_signal_init(loop, &sigterm);
  uv_signal_start(&sigterm, on_signal, SIGTERM);

  printf("%s: listening on %s:%d\n", NAME, host, bound);
  fflush(stdout);
  uv_run(loop, UV_RUN_DEFAULT);
  printf("%s: stopped\n", NAME);
  fflush(stdout);
  return 0;
}
