/* echo-uring: reference peer for the echo benchmark, the completion-I/O mark for a C loop library's
 * io_uring driver. Per message: the kernel's multishot recv fills a buffer it takes from a
 * registered provided-buffer ring and posts one completion; we send that same buffer back and hand
 * it to the ring again when the send completes. No copies, no per-message syscall of its own:
 * everything queued in an iteration goes in with the wait, one io_uring_submit_and_wait per loop.
 * The listener has one multishot accept. A connection has at most one send in flight (a FIFO of
 * received buffers behind it), so bytes go back in order even when a send is short. A recv that
 * finds the buffer ring empty (-ENOBUFS) is re-armed once sends have returned buffers. Signals set a
 * flag and poke an eventfd the ring polls, so a stop is never lost between check and wait.
 *
 * usage: echo-uring [--host H] [--port P]   (defaults 127.0.0.1 and 8888; port 0 = ephemeral)
 * Prints "echo-uring: listening on HOST:PORT"; on SIGINT/SIGTERM prints "echo-uring: stopped" and
 * exits 0. */
#include <errno.h>
#include <liburing.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#define NAME "echo-uring"
#include "peer.h"

enum {
  BUF_SIZE = 64 * 1024, /* as the epoll peer's per-connection buffer: 16 recvs per MiB */
  NBUFS = 512,          /* a power of two; 32 MiB in all */
  BGID = 1,
  SQ_ENTRIES = 1024,
  CQ_ENTRIES = 8192,
};

enum { OP_ACCEPT = 1, OP_RECV, OP_SEND, OP_WAKE };

/* user_data: op in the top byte, buffer id in bits 32..47, fd in the low 32 bits */
#define UD(op, fd, bid) ((uint64_t)(op) << 56 | (uint64_t)(bid) << 32 | (uint32_t)(fd))
#define UD_OP(u) ((int)((u) >> 56))
#define UD_BID(u) ((int)(((u) >> 32) & 0xffff))
#define UD_FD(u) ((int)(uint32_t)(u))

struct conn {
  int head, tail;  /* buffers waiting to go back, oldest first (linked by next_bid); -1: none */
  uint8_t recv_armed, sending; /* a multishot recv is armed; head is in a send */
  uint8_t closing;              /* no more recvs: close once nothing is in flight */
  uint8_t aborted;              /* and nothing more to send either */
  uint8_t starved;              /* its recv ended on -ENOBUFS */
  uint8_t listed;               /* the fd is on the starved list (kept across close and reuse) */
};

static struct io_uring ring;
static struct io_uring_buf_ring *br;
static char *bufs;
static int next_bid[NBUFS];
static uint32_t buf_len[NBUFS], buf_off[NBUFS];
static int bufs_free = NBUFS, returned; /* returned: added to the ring, not yet published */

static struct conn *conns;
static int nconns;
static int *starved; /* fds whose recv stopped on -ENOBUFS */
static int nstarved;

static int lfd, wake_fd;
static volatile sig_atomic_t stop;


static void on_signal(int sig) {
  (void)sig;
  stop = 1;
  uint64_t one = 1;
  if (write(wake_fd, &one, sizeof one) < 0) { /* the flag alone still stops us at EINTR */
  }
}

static struct io_uring_sqe *get_sqe(void) {
  struct io_uring_sqe *sqe;
  while (!(sqe = io_uring_get_sqe(&ring))) io_uring_submit(&ring);
  return sqe;
}

static void arm_accept(void) {
  struct io_uring_sqe *sqe = get_sqe();
  io_uring_prep_multishot_accept(sqe, lfd, NULL, NULL, SOCK_CLOEXEC);
  sqe->user_data = UD(OP_ACCEPT, lfd, 0);
}

static void arm_wake(void) {
  struct io_uring_sqe *sqe = get_sqe();
  io_uring_prep_poll_add(sqe, wake_fd, POLLIN);
  sqe->user_data = UD(OP_WAKE, wake_fd, 0);
}

static void arm_recv(int fd) {
  struct io_uring_sqe *sqe = get_sqe();
  io_uring_prep_recv_multishot(sqe, fd, NULL, 0, 0);
  sqe->flags |= IOSQE_BUFFER_SELECT;
  sqe->buf_group = BGID;
  sqe->user_data = UD(OP_RECV, fd, 0);
  conns[fd].recv_armed = 1;
}

static void send_head(int fd) {
  struct conn *c = &conns[fd];
  int bid = c->head;
  struct io_uring_sqe *sqe = get_sqe();
  io_uring_prep_send(sqe, fd, bufs + (size_t)bid * BUF_SIZE + buf_off[bid],
                     buf_len[bid] - buf_off[bid], MSG_NOSIGNAL | MSG_WAITALL);
  sqe->user_data = UD(OP_SEND, fd, bid);
  c->sending = 1;
}

/* Give a buffer back to the kernel; published by io_uring_buf_ring_advance after the batch. */
static void return_buf(int bid) {
  io_uring_buf_ring_add(br, bufs + (size_t)bid * BUF_SIZE, BUF_SIZE, (unsigned short)bid,
                        io_uring_buf_ring_mask(NBUFS), returned++);
  bufs_free++;
}

static void maybe_close(int fd) {
  struct conn *c = &conns[fd];
  if (c->closing && !c->recv_armed && !c->sending) {
    close(fd);
    *c = (struct conn){.head = -1, .tail = -1, .listed = c->listed};
  }
}

/* The peer is gone (reset, failed send): drop what was still to be sent and close. A buffer that
 * is in a send stays queued; on_send returns it. */
static void abort_conn(int fd) {
  struct conn *c = &conns[fd];
  int bid = c->sending ? next_bid[c->head] : c->head;
  for (; bid >= 0; bid = next_bid[bid]) return_buf(bid);
  if (c->sending) {
    next_bid[c->head] = -1;
    c->tail = c->head;
  } else {
    c->head = c->tail = -1;
  }
  c->closing = c->aborted = 1;
  if (c->recv_armed) shutdown(fd, SHUT_RDWR); /* ends the multishot recv */
  maybe_close(fd);
}

static void grow_conns(int fd) {
  int n = nconns ? nconns : 1024;
  while (n <= fd) n *= 2;
  conns = realloc(conns, (size_t)n * sizeof *conns);
  starved = realloc(starved, (size_t)n * sizeof *starved);
  if (!conns || !starved) {
    fprintf(stderr, "%s: out of memory\n", NAME);
    exit(1);
  }
  for (int i = nconns; i < n; i++) conns[i] = (struct conn){.head = -1, .tail = -1};
  nconns = n;
}

static void on_accept(struct io_uring_cqe *cqe) {
  if (!(cqe->flags & IORING_CQE_F_MORE)) arm_accept();
  int fd = cqe->res;
  if (fd < 0) return;
  if (fd >= nconns) grow_conns(fd);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  conns[fd] = (struct conn){.head = -1, .tail = -1, .listed = conns[fd].listed};
  arm_recv(fd);
}

static void on_recv(int fd, struct io_uring_cqe *cqe) {
  struct conn *c = &conns[fd];
  int more = cqe->flags & IORING_CQE_F_MORE;
  if (!more) c->recv_armed = 0;
  int bid = -1;
  if (cqe->flags & IORING_CQE_F_BUFFER) {
    bid = (int)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
    bufs_free--;
  }
  if (cqe->res > 0 && !c->closing) {
    buf_len[bid] = (uint32_t)cqe->res;
    buf_off[bid] = 0;
    next_bid[bid] = -1;
    if (c->tail >= 0) next_bid[c->tail] = bid;
    else c->head = bid;
    c->tail = bid;
    if (!c->sending) send_head(fd);
    if (!more) arm_recv(fd);
    return;
  }
  if (bid >= 0) return_buf(bid);
  if (c->closing) {
    maybe_close(fd);
  } else if (cqe->res == -ENOBUFS) {
    c->starved = 1; /* re-armed once sends have given buffers back */
    if (!c->listed) {
      c->listed = 1;
      starved[nstarved++] = fd;
    }
  } else if (cqe->res == 0) {
    c->closing = 1; /* EOF: send back what is queued, then close */
    maybe_close(fd);
  } else {
    abort_conn(fd);
  }
}

static void on_send(int fd, int bid, int res) {
  struct conn *c = &conns[fd];
  c->sending = 0;
  if (res <= 0 || c->aborted) {
    abort_conn(fd);
    return;
  }
  buf_off[bid] += (uint32_t)res;
  if (buf_off[bid] < buf_len[bid]) { /* short send: the rest goes before anything else */
    send_head(fd);
    return;
  }
  c->head = next_bid[bid];
  if (c->head < 0) c->tail = -1;
  return_buf(bid);
  if (c->head >= 0) send_head(fd);
  else maybe_close(fd);
}

int main(int argc, char **argv) {
  const char *host = "127.0.0.1";
  int port = 8888;
  peer_parse_args(argc, argv, &host, &port);

  peer_raise_fd_limit();
  signal(SIGPIPE, SIG_IGN);
  wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd < 0) {
    perror(NAME ": eventfd");
    return 1;
  }
  struct sigaction sa = {.sa_handler = on_signal}; /* no SA_RESTART: the wait returns -EINTR */
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);

  static const struct {
    unsigned flags;
    const char *name;
  } setups[] = {
      {IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN, "SINGLE_ISSUER|DEFER_TASKRUN"},
      {IORING_SETUP_COOP_TASKRUN, "COOP_TASKRUN"},
      {0, "no setup flags"},
  };
  int rc = -1;
  for (size_t i = 0; i < sizeof setups / sizeof setups[0]; i++) {
    struct io_uring_params p = {.flags = setups[i].flags | IORING_SETUP_CQSIZE,
                                .cq_entries = CQ_ENTRIES};
    rc = io_uring_queue_init_params(SQ_ENTRIES, &ring, &p);
    if (rc == 0) {
      if (i) fprintf(stderr, "%s: io_uring set up with %s\n", NAME, setups[i].name);
      break;
    }
  }
  if (rc < 0) {
    fprintf(stderr, "%s: io_uring_queue_init: %s\n", NAME, strerror(-rc));
    return 1;
  }

  /* The provided-buffer ring, by hand (liburing 2.3 has no io_uring_setup_buf_ring). */
  br = mmap(NULL, NBUFS * sizeof(struct io_uring_buf), PROT_READ | PROT_WRITE,
            MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
  bufs = mmap(NULL, (size_t)NBUFS * BUF_SIZE, PROT_READ | PROT_WRITE,
              MAP_ANONYMOUS | MAP_PRIVATE | MAP_POPULATE, -1, 0);
  if (br == MAP_FAILED || bufs == MAP_FAILED) {
    perror(NAME ": mmap");
    return 1;
  }
  struct io_uring_buf_reg reg = {.ring_addr = (unsigned long)br, .ring_entries = NBUFS,
                                 .bgid = BGID};
  rc = io_uring_register_buf_ring(&ring, &reg, 0);
  if (rc < 0) {
    fprintf(stderr, "%s: io_uring_register_buf_ring: %s\n", NAME, strerror(-rc));
    return 1;
  }
  io_uring_buf_ring_init(br);
  for (int i = 0; i < NBUFS; i++)
    io_uring_buf_ring_add(br, bufs + (size_t)i * BUF_SIZE, BUF_SIZE, (unsigned short)i,
                          io_uring_buf_ring_mask(NBUFS), i);
  io_uring_buf_ring_advance(br, NBUFS);

  int bound;
  lfd = peer_listen(host, port, &bound);
  grow_conns(lfd);
  arm_accept();
  arm_wake();

  printf("%s: listening on %s:%d\n", NAME, host, bound);
  fflush(stdout);

  while (!stop) {
    rc = io_uring_submit_and_wait(&ring, 1);
    if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) {
      fprintf(stderr, "%s: io_uring_submit_and_wait: %s\n", NAME, strerror(-rc));
      return 1;
    }
    unsigned head, seen = 0;
    struct io_uring_cqe *cqe;
    io_uring_for_each_cqe(&ring, head, cqe) {
      uint64_t u = cqe->user_data;
      switch (UD_OP(u)) {
      case OP_RECV: on_recv(UD_FD(u), cqe); break;
      case OP_SEND: on_send(UD_FD(u), UD_BID(u), cqe->res); break;
      case OP_ACCEPT: on_accept(cqe); break;
      case OP_WAKE: stop = 1; break;
      }
      seen++;
    }
    io_uring_cq_advance(&ring, seen);
    if (returned) {
      io_uring_buf_ring_advance(br, returned);
      returned = 0;
    }
    if (nstarved && bufs_free > 0) {
      for (int i = 0; i < nstarved; i++) {
        struct conn *c = &conns[starved[i]];
        if (c->starved && !c->recv_armed && !c->closing) arm_recv(starved[i]);
        c->starved = c->listed = 0;
      }
      nstarved = 0;
    }
  }
  printf("%s: stopped\n", NAME);
  fflush(stdout);
  return 0;
}
