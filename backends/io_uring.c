/* The io_uring driver: completion I/O for socket operations, readiness through poll requests,
 * everything an iteration queued submitted together with its wait.
 *
 * What the interface costs and where it breaks:
 *  a) It may be missing or forbidden: old kernels (ENOSYS), kernel.io_uring_disabled, seccomp
 *     filters in containers (EPERM). The probe creates a small ring and says which in words.
 *  b) A poll request holds its own reference to the file: closing the fd does not end it. A poll
 *     armed on a closed fd fails with EBADF, which the core hears as "invalid".
 *  c) Multishot poll reports edges (a new CQE per wake-up of the file), but aloop's readers and
 *     writers are level-triggered like asyncio's: a reader that leaves data behind must run again.
 *     So each poll is one-shot and re-armed after its callback ran, in the next batch of
 *     submissions: level semantics for one SQE per event and no extra syscall.
 *  d) A completion may arrive for a request we already replaced or removed. user_data carries the
 *     fd and a generation; a CQE whose generation is not the fd's current one is ignored.
 *  e) SINGLE_ISSUER|DEFER_TASKRUN (6.1+) suits a single-threaded loop best, then COOP_TASKRUN
 *     (5.19+), then nothing. With either, completions wait for the loop to enter the kernel, and a
 *     zero-timeout poll that only submits would never see them while callbacks keep the ready
 *     queue busy: TASKRUN_FLAG makes the kernel flag pending work in the SQ ring, and liburing's
 *     submit then enters for it (and only then: an idle poll stays a memory read). A single-issuer ring belongs to the thread that first submits, so the
 *     ring starts disabled and is enabled by the first poll, on the thread that runs the loop.
 *  f) The SQ can fill up between polls (10,000 fds added at once): submit what is queued and go on.
 *  g) CQ overflow: with IORING_FEAT_NODROP the kernel keeps overflowed CQEs; without it the ring
 *     is refused by the probe.
 *  h) Socket operations are native: accept, recv, recvmsg, send, sendmsg and connect are submitted as
 *     requests and complete in the kernel; user_data is the operation. Cancelling one is a request too, and the
 *     operation's own completion (-ECANCELED or its result, if it won the race) still follows:
 *     only then may its buffer be reused.
 *  i) A listening socket that keeps being asked to accept gets one multishot accept (5.19+): each
 *     connection is a CQE. A connection nobody waits for yet is kept, and the multishot is then
 *     cancelled (the kernel's backlog holds the rest; one sweep may have taken several, which stay
 *     kept until asked for); the next is armed only after the cancelled one's last completion
 *     (see struct acceptor). An error such as EMFILE
 *     ends the multishot and goes to the first waiter; it is re-armed while someone waits. The peer
 *     address comes from getpeername, since one multishot request has one address buffer. Kernels
 *     without multishot accept answer EINVAL: the driver falls back to one accept per operation.
 *  j) Streams (transports) read with multishot recv into a provided-buffer ring, registered by hand
 *     (Debian's liburing 2.3 has no io_uring_setup_buf_ring). A buffer goes back to the ring only
 *     after the consumer's callback returned. ENOBUFS means every buffer is out: re-arm, it is not
 *     an end of stream; a recv that ends without IORING_CQE_F_MORE is re-armed too. Kernels without
 *     buffer rings decline the operation and the core reads on readiness (poll requests) instead.
 *     Kernels without multishot recv (before 6.0) get one buffer-selecting recv per chunk, and so
 *     does an operation marked bounded (op.h: a transport whose peer sends bulk or that paused),
 *     since a multishot recv reads on past the consumer's pause until its cancel lands.
 *  k) A single-issuer ring belongs to the first thread that submits: another thread's enter fails
 *     with EEXIST on every call. That is a fatal poll error in words, never a spin.
 *  l) sqe->len is 32 bits: a 4 GiB request would become a 0-byte one (a false end of stream, or a
 *     send that never progresses). Each request asks for at most IO_MAX bytes.
 *  m) A request may only reach the kernel while its fd is the file it was meant for: whatever is
 *     queued for an fd is submitted before aloop_close returns (the ring is enabled for it if the
 *     loop never ran). Cancelling by fd (IORING_ASYNC_CANCEL_FD|ALL) needs 5.19; before that each
 *     operation in flight is tracked and cancelled by its user_data.
 *  n) An accept completion of a multishot that is being cancelled still carries a connection:
 *     while the listening socket is open it goes to the next accept; once aloop_close let go of
 *     the socket it is closed, never given to a later file with the same fd number.
 *  o) Embedding (aloop_backend_fd): the ring's fd polls readable while completions wait in the CQ,
 *     and a host can sleep on it, except on a DEFER_TASKRUN ring: completions wait there as task
 *     work until the issuer enters the kernel, and a poll(2) on the ring fd is not woken when such
 *     work arrives (Linux 6.18: it slept its whole timeout with a completion pending). A registered
 *     eventfd does not save it: when the completion comes from an eventfd write (aloop's own
 *     wake-ups), the kernel defers the signal behind a flag it never clears, so it is signalled
 *     once and never again (a conformance test lost a wake-up that way). So a loop created with
 *     aloop_options.embedded starts from COOP_TASKRUN, whose ring fd wakes a host, and a deferred
 *     ring answers ALOOP_EUNAVAIL. Requests queued since the last submit (sends from callbacks,
 *     re-armed polls) reach the kernel only with the next poll: holds_requests says so, and the
 *     host does not sleep until then.
 *  p) Datagram sockets read with multishot recvmsg (6.0+) into a second provided-buffer ring whose
 *     buffers hold the largest UDP datagram: each CQE is one datagram behind a header with the
 *     sender's address (io_uring_recvmsg_out), so one request serves a burst. Any error ends the
 *     request (an ICMP refusal on a connected socket is -ECONNREFUSED): the consumer hears it
 *     and starts again, as after ENOBUFS the driver does itself. Kernels without multishot
 *     recvmsg get one buffer-selecting recvmsg per datagram; without buffer rings, the readiness
 *     path. A single recvmsg (aloop_sock_recvfrom) is a plain request into the caller's buffer.
 *  q) A child process is waited for by the kernel's waitid (6.7+) on its pidfd: the request reaps
 *     it and fills the siginfo. Cancel-by-fd does not reach waitid requests (the pidfd is only
 *     read when the request is issued), so one is cancelled by its user_data. Older kernels
 *     leave it to the readiness path (a poll on the pidfd, then waitid).
 *  r) File operations (aloop_file_*) are requests: openat, read/readv, write/writev, fsync, statx,
 *     close. The kernel serves a regular file's read from the page cache inline and hands the
 *     rest (a read that must wait for the disk, every fsync) to its own worker threads, so the
 *     loop never blocks, with no thread of ours. Offset -1 means the file position (5.6+). A
 *     request's iovecs, path and statx buffer are the op's until its completion, cancelled or
 *     not. A cancel ends a request that waits (a FIFO read armed on a poll, or asleep in a
 *     worker: -ECANCELED or -EINTR, which file.c counts as cancelled) but not one a worker is busy
 *     with (a regular file's read or write, an fsync: its result comes). A kernel missing any of
 *     these opcodes gets them all from the executor instead, as the readiness drivers do.
 *  s) A file goes to a socket by two splices through a pipe of the transfer's own: file -> pipe,
 *     hard-linked to pipe -> socket. Splice runs on io-wq workers and honours the socket's
 *     O_NONBLOCK: a full socket answers -EAGAIN instead of waiting as send requests do. So a pipe
 *     left holding bytes is emptied by a poll for POLLOUT linked to another pipe -> socket splice
 *     (a plain link: a poll cancelled by aloop_close must cancel the splice too), and an
 *     operation completes only with its pipe empty (or an error). A short file -> pipe splice
 *     (end of file, a page-cache miss) would break a plain link: hence the hard link, with
 *     SPLICE_F_NONBLOCK on the pipe side so that an empty pipe answers -EAGAIN at once. Both
 *     requests carry the operation in user_data, the first with UD_FIRST. Kernels without splice
 *     (before 5.7) send with sendfile(2) on the readiness path.
 *
 * ALOOP_IO_URING forces the fallbacks, so that each runs in make check on any kernel. A comma-
 * separated list of words, read when a loop is created (unknown words are an error in words):
 *   setup=deferred|cooperative|plain  only this ring setup (single issuer + DEFER_TASKRUN,
 *                                     COOP_TASKRUN, or no flags); the loop fails if refused
 *   no-buf-ring     stream and datagram reads on readiness (poll requests), as without provided
 *                   buffers
 *   single-accept   one accept request per operation, as without multishot accept
 *   recv-per-op     one recv per chunk, as without multishot recv (before 6.0)
 *   recvmsg-per-op  one recvmsg per datagram, as without multishot recvmsg (before 6.0)
 *   no-waitid       children waited for on readiness, as without the waitid request (before 6.7)
 *   no-splice       files sent with sendfile(2) on readiness, as without splice (before 5.7)
 *   cancel-per-op   aloop_close cancels each operation, as without cancel-by-fd (before 5.19)
 *   no-file-ops     file operations on the executor, as without the file opcodes (before 5.6)
 *   sq=N cq=N       ring sizes (default 256 and 4096; the kernel rounds up to powers of two)
 *   bufs=N          provided buffers, a power of two up to 32768 (default 128)
 * Example: ALOOP_IO_URING=setup=plain,no-buf-ring,sq=4,cq=8.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <liburing.h>

/* Newer than some liburing headers (2.3 has neither): the kernel's numbers. */
enum { OP_WAITID = 50 }; /* IORING_OP_WAITID, Linux 6.7 */

#include "driver.h"

enum {
  RECV_BUFS = 128,    /* provided buffers (j): 128 x 32 KiB, mapped lazily, untouched pages free */
  RECV_BUFS_MAX = 32768, /* the kernel's limit for a buffer ring */
  RECV_BUF_SIZE = 32 * 1024,
  RECV_BGID = 1,
  /* Datagram buffers (p): a multishot recvmsg's header and the sender's address, then room for
   * the largest datagram delivered whole. */
  DGRAM_BUF_SIZE = sizeof(struct io_uring_recvmsg_out) + sizeof(struct sockaddr_storage) +
                   ALOOP__DATAGRAM_MAX,
  DGRAM_BGID = 2,
  SQ_ENTRIES = 256,   /* per-iteration batch; a fuller SQ is flushed early (trap f) */
  CQ_ENTRIES = 4096,  /* completions one wait can return before overflow handling kicks in */
  RING_ENTRIES_MAX = 32768, /* the kernel's limit for the SQ (the CQ may be larger) */
  IO_MAX = 1 << 30,   /* bytes per request (trap l): within 32 bits and the kernel's MAX_RW_COUNT */
  /* A file transfer's pipe (trap s): asked for 256 KiB (4 x the default, within the unprivileged
   * 1 MiB maximum), so one splice pair moves more per round; the default 64 KiB if refused. */
  SPLICE_PIPE = 256 * 1024,
};

/* The file operations (trap r), native together or not at all. */
#define FILE_OP_KINDS                                                                              \
  (ALOOP__OP_BIT(ALOOP__OP_FILE_OPEN) | ALOOP__OP_BIT(ALOOP__OP_FILE_READ) |                        \
   ALOOP__OP_BIT(ALOOP__OP_FILE_WRITE) | ALOOP__OP_BIT(ALOOP__OP_FILE_FSYNC) |                      \
   ALOOP__OP_BIT(ALOOP__OP_FILE_STATX) | ALOOP__OP_BIT(ALOOP__OP_FILE_CLOSE))

/* user_data, told apart by its two low bits:
 *   ...01  a poll: the fd in the high 32 bits, its generation in bits 2-31 (trap d)
 *   ...10  an operation: the address of its struct aloop__op (aligned, so the bits are free)
 *   0      a removal or cancel request: its own completion carries nothing */
#define UD_POLL 1u
#define UD_OP 2u
#define UD_ACCEPT 3u /* a multishot accept: fd and generation, as a poll */
#define UD_KIND(ud) ((ud) & 3u)
#define UD_FIRST 4u /* an operation's first request of a linked pair (trap s): ops are 8-aligned */
#define UD_OP_PTR(ud) ((struct aloop__op *)(uintptr_t)((ud) & ~(uint64_t)7))
#define GEN_MASK 0x3fffffffu
#define UD_FOR(fd, gen, kind) (((uint64_t)(uint32_t)(fd) << 32) | (((gen) & GEN_MASK) << 2) | (kind))
#define UD(fd, gen) UD_FOR(fd, gen, UD_POLL)
#define UD_FD(ud) ((int)((ud) >> 32))
#define UD_GEN(ud) ((uint32_t)((ud) & 0xffffffffu) >> 2)
#define UD_IGNORE 0

/* A listening socket's multishot accept (trap i). */
struct acceptor {
  int fd;
  uint32_t gen;
  uint32_t first_gen; /* the first generation of the listening socket open now (trap n) */
  bool armed;
  /* A cancelled multishot has not given its last completion yet: no other is armed until then.
   * Two accept requests on one listener can lose a connection's wakeup: it may go to the one
   * being cancelled (accept waits are exclusive), which ends without accepting, while the new
   * one sleeps with a connection in the backlog (seen on cooperative and plain rings). Armed
   * after the old one's end, the new one finds the backlog at once. */
  bool cancelling;
  struct aloop__op *waiting, **waiting_tail; /* accept operations, in order */
  int *kept;                                 /* connections accepted before anyone asked */
  size_t nkept, kept_cap;
  struct acceptor *next;                     /* all of the loop's, to clean up */
};

struct uring_fd {
  uint32_t gen;  /* bumped whenever the armed poll is removed */
  uint8_t mask;  /* ALOOP__READ|ALOOP__WRITE interest */
  bool armed;    /* a poll for (fd, gen) is in flight or queued */
  bool queued_rearm;
  struct acceptor *acceptor;
  struct aloop__op *inflight; /* cancel-per-op only: operations in the kernel, through op->next */
};

/* What ALOOP_IO_URING asks for (see the header comment). */
struct uring_config {
  int setup;                 /* index in setups[], or -1: the best the kernel takes */
  bool no_buf_ring, single_accept, recv_per_op, recvmsg_per_op, cancel_per_op, no_waitid;
  bool no_file_ops;
  bool no_splice;
  unsigned sq, cq, bufs;
};

/* A provided-buffer ring: cfg.bufs buffers of `size` bytes in group `bgid`, set up on first use. */
struct buf_ring {
  struct io_uring_buf_ring *br;
  unsigned char *bufs;
  size_t size;
  unsigned short bgid;
  bool refused; /* no buffer rings here (or no-buf-ring): reads of its kind go the readiness way */
};

struct uring_state {
  struct io_uring ring;
  struct uring_config cfg;
  bool enabled;
  int failed;        /* a fatal poll error, said once and answered to every later poll */
  const char *setup; /* which setup flags the kernel took, for aloop_backend_detail */
  int *rearm;        /* fds whose one-shot poll completed this iteration */
  size_t nrearm, rearm_cap;
  struct aloop__op **reads; /* stream reads to re-arm with the next submit (trap j) */
  size_t nreads, reads_cap;
  struct io_uring_sqe *backlog; /* requests that found the SQ full and the kernel busy (f, g) */
  size_t nbacklog, backlog_cap;
  struct acceptor *acceptors;
  bool single_accepts; /* the kernel has no multishot accept */
  struct buf_ring stream_bufs;   /* stream reads (j) */
  struct buf_ring dgram_bufs;    /* datagram reads (p) */
  bool deferred;                /* DEFER_TASKRUN: the ring fd cannot wake a host (trap o) */
};

enum { SETUP_COOP = 1 }; /* setups[] index of cooperative task work */

static const struct {
  const char *word;
  unsigned flags;
  const char *name;
} setups[] = {
    {"deferred",
     IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_TASKRUN_FLAG |
         IORING_SETUP_R_DISABLED,
     "single issuer, deferred task work"},
    {"cooperative", IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG, "cooperative task work"},
    {"plain", 0, "plain"},
};

/* ---- ALOOP_IO_URING ------------------------------------------------------------------------- */

static int parse_count(const char *word, const char *val, unsigned max, unsigned *out, char *why,
                       size_t n) {
  char *end;
  unsigned long v = strtoul(val, &end, 10);
  if (!*val || *end || v == 0 || v > max) {
    snprintf(why, n, "ALOOP_IO_URING: %s wants a number from 1 to %u, not '%s'", word, max, val);
    return -EINVAL;
  }
  *out = (unsigned)v;
  return 0;
}

static int parse_word(struct uring_config *c, const char *w, char *why, size_t n) {
  static const struct {
    const char *word;
    size_t offset;
  } flags[] = {
      {"no-buf-ring", offsetof(struct uring_config, no_buf_ring)},
      {"single-accept", offsetof(struct uring_config, single_accept)},
      {"recv-per-op", offsetof(struct uring_config, recv_per_op)},
      {"recvmsg-per-op", offsetof(struct uring_config, recvmsg_per_op)},
      {"cancel-per-op", offsetof(struct uring_config, cancel_per_op)},
      {"no-waitid", offsetof(struct uring_config, no_waitid)},
      {"no-file-ops", offsetof(struct uring_config, no_file_ops)},
      {"no-splice", offsetof(struct uring_config, no_splice)},
  };
  for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++)
    if (!strcmp(w, flags[i].word)) return *(bool *)((char *)c + flags[i].offset) = true, 0;
  if (!strncmp(w, "setup=", 6)) {
    for (size_t i = 0; i < sizeof setups / sizeof setups[0]; i++)
      if (!strcmp(w + 6, setups[i].word)) return c->setup = (int)i, 0;
    snprintf(why, n, "ALOOP_IO_URING: unknown setup '%s' (deferred, cooperative or plain)", w + 6);
    return -EINVAL;
  }
  if (!strncmp(w, "sq=", 3)) return parse_count("sq", w + 3, RING_ENTRIES_MAX, &c->sq, why, n);
  if (!strncmp(w, "cq=", 3)) return parse_count("cq", w + 3, 2 * RING_ENTRIES_MAX, &c->cq, why, n);
  if (!strncmp(w, "bufs=", 5)) {
    int err = parse_count("bufs", w + 5, RECV_BUFS_MAX, &c->bufs, why, n);
    if (err == 0 && (c->bufs & (c->bufs - 1))) {
      snprintf(why, n, "ALOOP_IO_URING: bufs must be a power of two, not %u", c->bufs);
      err = -EINVAL;
    }
    return err;
  }
  snprintf(why, n,
           "ALOOP_IO_URING: unknown word '%s' (known: setup=deferred|cooperative|plain, "
           "no-buf-ring, single-accept, recv-per-op, recvmsg-per-op, cancel-per-op, no-waitid, "
           "no-file-ops, no-splice, sq=N, cq=N, bufs=N)", w);
  return -EINVAL;
}

static int read_config(struct uring_config *c, char *why, size_t n) {
  *c = (struct uring_config){.setup = -1, .sq = SQ_ENTRIES, .cq = CQ_ENTRIES, .bufs = RECV_BUFS};
  const char *env = getenv("ALOOP_IO_URING");
  if (!env) return 0;
  char copy[256];
  if (strlen(env) >= sizeof copy) {
    snprintf(why, n, "ALOOP_IO_URING is too long");
    return -EINVAL;
  }
  strcpy(copy, env);
  char *save = NULL;
  for (char *w = strtok_r(copy, ", ", &save); w; w = strtok_r(NULL, ", ", &save)) {
    int err = parse_word(c, w, why, n);
    if (err < 0) return err;
  }
  if (c->cq < c->sq) {
    snprintf(why, n, "ALOOP_IO_URING: cq=%u is smaller than sq=%u", c->cq, c->sq);
    return -EINVAL;
  }
  return 0;
}

/* ---- setting up --------------------------------------------------------------------------- */

static void say_why_not(int err, char *why, size_t n) {
  if (err == -ENOSYS)
    snprintf(why, n, "io_uring_setup: %s (kernel without io_uring)", strerror(-err));
  else if (err == -EPERM || err == -EACCES)
    snprintf(why, n, "io_uring_setup: %s (seccomp or kernel.io_uring_disabled?)", strerror(-err));
  else
    snprintf(why, n, "io_uring_setup: %s", strerror(-err));
}

static int check_ring(struct io_uring *ring, char *why, size_t n) {
  if (!(ring->features & IORING_FEAT_NODROP)) {
    snprintf(why, n, "kernel io_uring lacks IORING_FEAT_NODROP (needs Linux 5.5+)");
    return -ALOOP_EUNAVAIL;
  }
  struct io_uring_probe *probe = io_uring_get_probe_ring(ring);
  if (!probe) {
    snprintf(why, n, "cannot probe io_uring opcodes (needs Linux 5.6+)");
    return -ALOOP_EUNAVAIL;
  }
  static const int needed[] = {IORING_OP_POLL_ADD, IORING_OP_POLL_REMOVE, IORING_OP_ASYNC_CANCEL,
                               IORING_OP_ACCEPT,   IORING_OP_CONNECT,     IORING_OP_SEND,
                               IORING_OP_SENDMSG,   IORING_OP_RECV};
  int ok = 1;
  for (size_t i = 0; i < sizeof needed / sizeof needed[0]; i++)
    ok &= io_uring_opcode_supported(probe, needed[i]) != 0;
  io_uring_free_probe(probe);
  if (!ok) {
    snprintf(why, n, "kernel io_uring lacks poll or socket operations (needs Linux 5.6+)");
    return -ALOOP_EUNAVAIL;
  }
  return 0;
}

/* A ring with setup `i` and the configured sizes. */
static int make_ring(struct io_uring *ring, const struct uring_config *c, size_t i) {
  struct io_uring_params p;
  memset(&p, 0, sizeof p);
  p.flags = setups[i].flags | IORING_SETUP_CQSIZE;
  p.cq_entries = c->cq;
  return io_uring_queue_init_params(c->sq, ring, &p);
}

static void say_setup_refused(const struct uring_config *c, int err, char *why, size_t n) {
  snprintf(why, n, "ALOOP_IO_URING asks for setup=%s, which this kernel refuses: %s",
           setups[c->setup].word, strerror(-err));
}

static int uring_probe(char *why, size_t n) {
  struct uring_config c;
  if (read_config(&c, why, n) < 0) return -ALOOP_EUNAVAIL;
  struct io_uring ring;
  int err = io_uring_queue_init(2, &ring, 0);
  if (err < 0) {
    say_why_not(err, why, n);
    return -ALOOP_EUNAVAIL;
  }
  err = check_ring(&ring, why, n);
  io_uring_queue_exit(&ring);
  if (err == 0 && c.setup >= 0) { /* a forced setup must be one this kernel takes */
    if ((err = make_ring(&ring, &c, (size_t)c.setup)) < 0) {
      say_setup_refused(&c, err, why, n);
      return -ALOOP_EUNAVAIL;
    }
    io_uring_queue_exit(&ring);
  }
  return err;
}

/* Ask a throwaway ring what the kernel does with one request (its result), or 0 if it cannot. */
static int32_t try_request(struct io_uring *ring) {
  struct io_uring_cqe *cqe;
  if (io_uring_submit_and_wait(ring, 1) < 0 || io_uring_peek_cqe(ring, &cqe) < 0) return 0;
  int32_t res = cqe->res;
  io_uring_cqe_seen(ring, cqe);
  return res;
}

/* The opcodes of file operations (trap r): all or none. */
static bool file_ops_supported(struct io_uring_probe *probe) {
  static const int ops[] = {IORING_OP_OPENAT, IORING_OP_READ,  IORING_OP_WRITE, IORING_OP_READV,
                            IORING_OP_WRITEV, IORING_OP_FSYNC, IORING_OP_STATX, IORING_OP_CLOSE};
  for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
    if (!io_uring_opcode_supported(probe, ops[i])) return false;
  return true;
}

/* Features newer than the probe's minimum, asked of the kernel rather than guessed from its
 * version (trap m, j): cancel-by-fd (5.19) answers ENOENT for an fd with nothing in flight, and
 * an unknown flag EINVAL; multishot recv (6.0) over a byte waiting in a socket with no buffers
 * answers ENOBUFS, and EINVAL where the flag is unknown. */
static void detect_features(struct uring_config *c) {
  struct io_uring ring;
  if (io_uring_queue_init(2, &ring, 0) < 0) return;
  struct io_uring_probe *probe = io_uring_get_probe_ring(&ring);
  if (!probe || !io_uring_opcode_supported(probe, OP_WAITID)) c->no_waitid = true;
  if (!probe || !file_ops_supported(probe)) c->no_file_ops = true;
  if (!probe || !io_uring_opcode_supported(probe, IORING_OP_SPLICE)) c->no_splice = true;
  io_uring_free_probe(probe);
  struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
  io_uring_prep_cancel_fd(sqe, ring.ring_fd, IORING_ASYNC_CANCEL_ALL);
  if (try_request(&ring) == -EINVAL) c->cancel_per_op = true;
  int sv[2];
  /* Multishot recvmsg came with multishot recv: one question answers both. */
  if (!(c->recv_per_op && c->recvmsg_per_op) && socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0) {
    if (write(sv[1], "x", 1) == 1) {
      sqe = io_uring_get_sqe(&ring);
      io_uring_prep_recv_multishot(sqe, sv[0], NULL, 0, 0);
      sqe->flags |= IOSQE_BUFFER_SELECT;
      sqe->buf_group = 0xffff; /* registered by nobody */
      if (try_request(&ring) == -EINVAL) c->recv_per_op = c->recvmsg_per_op = true;
    }
    close(sv[0]);
    close(sv[1]);
  }
  io_uring_queue_exit(&ring);
}

static int uring_init(aloop_loop *loop, void *state, char *why, size_t n) {
  struct uring_state *s = state;
  if (read_config(&s->cfg, why, n) < 0) return -ALOOP_EUNAVAIL;
  detect_features(&s->cfg);
  if (s->cfg.no_file_ops) aloop__decline_op_kinds(loop, FILE_OP_KINDS);
  s->single_accepts = s->cfg.single_accept;
  s->stream_bufs = (struct buf_ring){.size = RECV_BUF_SIZE, .bgid = RECV_BGID,
                                     .refused = s->cfg.no_buf_ring};
  s->dgram_bufs = (struct buf_ring){.size = DGRAM_BUF_SIZE, .bgid = DGRAM_BGID,
                                    .refused = s->cfg.no_buf_ring};
  int err = -EINVAL;
  /* A host waits on the ring fd: skip the setup whose fd cannot wake it (trap o). */
  size_t first = s->cfg.setup >= 0 ? (size_t)s->cfg.setup : aloop__embedded(loop) ? SETUP_COOP : 0;
  size_t last = s->cfg.setup >= 0 ? first + 1 : sizeof setups / sizeof setups[0];
  for (size_t i = first; i < last; i++) {
    err = make_ring(&s->ring, &s->cfg, i);
    if (err == -EINVAL) continue; /* flags this kernel does not know: try the next set */
    if (err < 0) break;
    s->setup = setups[i].name;
    s->enabled = !(setups[i].flags & IORING_SETUP_R_DISABLED);
    s->deferred = setups[i].flags & IORING_SETUP_DEFER_TASKRUN;
    if ((err = check_ring(&s->ring, why, n)) < 0) {
      io_uring_queue_exit(&s->ring);
      return err;
    }
    return 0;
  }
  if (s->cfg.setup >= 0)
    say_setup_refused(&s->cfg, err, why, n);
  else
    say_why_not(err, why, n);
  return -ALOOP_EUNAVAIL;
}

static void free_buf_ring(struct uring_state *s, struct buf_ring *r);

static void uring_fini(aloop_loop *loop, void *state) {
  (void)loop;
  struct uring_state *s = state;
  io_uring_queue_exit(&s->ring);
  free(s->rearm);
  free(s->reads);
  free(s->backlog);
  free_buf_ring(s, &s->stream_bufs);
  free_buf_ring(s, &s->dgram_bufs);
  for (struct acceptor *a = s->acceptors, *next; a; a = next) {
    next = a->next;
    for (size_t i = 0; i < a->nkept; i++) close(a->kept[i]); /* accepted, never claimed */
    free(a->kept);
    free(a);
  }
}

/* A disabled ring is enabled by the thread that first needs to submit (trap e). Debian's liburing
 * 2.3 declares io_uring_enable_rings() but does not export it: register directly. */
static int enable(struct uring_state *s) {
  if (s->enabled) return 0;
  if (syscall(__NR_io_uring_register, s->ring.ring_fd, IORING_REGISTER_ENABLE_RINGS, NULL, 0) < 0)
    return -errno;
  s->enabled = true;
  return 0;
}

/* ---- the submission queue and its backlog (traps f, g) -------------------------------------- */

/* A slot at the end of the backlog, or NULL without memory. */
static struct io_uring_sqe *backlog_slot(struct uring_state *s) {
  if (s->nbacklog == s->backlog_cap) {
    size_t cap = s->backlog_cap ? s->backlog_cap * 2 : 64;
    struct io_uring_sqe *b = realloc(s->backlog, cap * sizeof *b);
    if (!b) return NULL;
    s->backlog = b;
    s->backlog_cap = cap;
  }
  struct io_uring_sqe *sqe = &s->backlog[s->nbacklog++];
  memset(sqe, 0, sizeof *sqe);
  return sqe;
}

/* Move what the backlog holds into the SQ, submitting as it fills, until the kernel takes no
 * more (its CQ overflowed and it answers EBUSY: the next poll reaps and tries again). */
static void flush_backlog(struct uring_state *s) {
  if (!s->nbacklog) return; /* the common case; the backlog may not even be allocated */
  size_t moved = 0;
  while (moved < s->nbacklog) {
    struct io_uring_sqe *sqe = io_uring_get_sqe(&s->ring);
    if (!sqe) {
      if (enable(s) < 0 || io_uring_submit(&s->ring) <= 0) break;
      continue;
    }
    *sqe = s->backlog[moved++];
  }
  memmove(s->backlog, s->backlog + moved, (s->nbacklog - moved) * sizeof *s->backlog);
  s->nbacklog -= moved;
}

/* An SQE to fill: in the SQ, flushing it to the kernel first if it is full (trap f), else at the
 * end of the backlog, so that requests reach the kernel in the order they were made. NULL only
 * without memory. */
static struct io_uring_sqe *get_sqe(struct uring_state *s) {
  struct io_uring_sqe *sqe = s->nbacklog ? NULL : io_uring_get_sqe(&s->ring);
  if (!sqe && !s->nbacklog && enable(s) == 0 && io_uring_submit(&s->ring) > 0)
    sqe = io_uring_get_sqe(&s->ring);
  return sqe ? sqe : backlog_slot(s);
}

/* Whether a request naming fd is queued and not yet in the kernel's hands. */
static bool queued_for(struct uring_state *s, int fd) {
  struct io_uring_sq *sq = &s->ring.sq;
  for (unsigned i = io_uring_smp_load_acquire(sq->khead); i != sq->sqe_tail; i++)
    if (sq->sqes[i & *sq->kring_mask].fd == fd) return true;
  for (size_t i = 0; i < s->nbacklog; i++)
    if (s->backlog[i].fd == fd) return true;
  return false;
}

/* Everything queued goes to the kernel now (trap m). */
static void submit_now(aloop_loop *loop, struct uring_state *s, int fd) {
  int err = enable(s);
  if (err == 0) {
    flush_backlog(s);
    err = io_uring_submit(&s->ring);
  }
  if (err < 0 || s->nbacklog)
    aloop__report(loop, err < 0 ? err : -EBUSY, fd, "io_uring",
                  "cannot submit before fd %d is closed", fd);
}

/* ---- operations tracked for cancel-per-op (trap m) ------------------------------------------- */

static void track(aloop_loop *loop, struct uring_state *s, struct aloop__op *op) {
  struct uring_fd *u = s->cfg.cancel_per_op ? aloop__fd_priv(loop, op->fd) : NULL;
  if (!u) return;
  op->next = u->inflight;
  u->inflight = op;
}

static void untrack(aloop_loop *loop, struct uring_state *s, struct aloop__op *op) {
  struct uring_fd *u = s->cfg.cancel_per_op ? aloop__fd_priv(loop, op->fd) : NULL;
  if (!u) return;
  for (struct aloop__op **p = &u->inflight; *p; p = &(*p)->next)
    if (*p == op) {
      *p = op->next;
      return;
    }
}

/* An operation's last completion. */
static void op_finished(aloop_loop *loop, struct uring_state *s, struct aloop__op *op,
                        int32_t res) {
  untrack(loop, s, op);
  aloop__op_done(loop, op, res);
}

/* ---- polls ----------------------------------------------------------------------------------- */

static int arm(struct uring_state *s, int fd, struct uring_fd *u) {
  struct io_uring_sqe *sqe = get_sqe(s);
  if (!sqe) return -ENOMEM;
  unsigned mask = ((u->mask & ALOOP__READ) ? POLLIN : 0) | ((u->mask & ALOOP__WRITE) ? POLLOUT : 0);
  io_uring_prep_poll_add(sqe, fd, mask);
  io_uring_sqe_set_data64(sqe, UD(fd, u->gen));
  u->armed = true;
  return 0;
}

static int disarm(struct uring_state *s, int fd, struct uring_fd *u) {
  struct io_uring_sqe *sqe = get_sqe(s);
  if (!sqe) return -ENOMEM;
  io_uring_prep_poll_remove(sqe, UD(fd, u->gen));
  io_uring_sqe_set_data64(sqe, UD_IGNORE);
  u->gen++;
  u->armed = false;
  return 0;
}

static int uring_watch(aloop_loop *loop, void *state, int fd, void *fd_priv, unsigned old_ev,
                       unsigned new_ev) {
  (void)loop;
  (void)old_ev;
  struct uring_state *s = state;
  struct uring_fd *u = fd_priv;
  int err = 0;
  if (u->armed) err = disarm(s, fd, u);
  u->mask = (uint8_t)new_ev;
  if (err == 0 && new_ev) err = arm(s, fd, u);
  return err;
}

static void queue_rearm(struct uring_state *s, int fd, struct uring_fd *u) {
  if (u->queued_rearm) return;
  if (s->nrearm == s->rearm_cap) {
    size_t cap = s->rearm_cap ? s->rearm_cap * 2 : 64;
    int *a = realloc(s->rearm, cap * sizeof *a);
    if (!a) return; /* the fd stays unarmed until its interest changes; rare and reported below */
    s->rearm = a;
    s->rearm_cap = cap;
  }
  s->rearm[s->nrearm++] = fd;
  u->queued_rearm = true;
}

static void accept_completed(aloop_loop *loop, struct uring_state *s, int fd, uint32_t gen,
                             int32_t res, uint32_t flags);
static void stream_completed(aloop_loop *loop, struct uring_state *s, struct aloop__op *op,
                             int32_t res, uint32_t flags);
static void datagram_completed(aloop_loop *loop, struct uring_state *s, struct aloop__op *op,
                               int32_t res, uint32_t flags);
static void sendfile_completed(aloop_loop *loop, struct uring_state *s, struct aloop__op *op,
                               bool first, int32_t res);
static bool rearm_reads(aloop_loop *loop, struct uring_state *s);
static bool cancel_deferred_read(aloop_loop *loop, struct uring_state *s, struct aloop__op *op);
static void cancel_deferred_reads_of(aloop_loop *loop, struct uring_state *s, int fd);

static void complete(aloop_loop *loop, struct uring_state *s, struct io_uring_cqe *cqe) {
  uint64_t ud = io_uring_cqe_get_data64(cqe);
  if (UD_KIND(ud) == UD_OP) {
    struct aloop__op *op = UD_OP_PTR(ud);
    if (op->kind == ALOOP__OP_SENDFILE) {
      sendfile_completed(loop, s, op, ud & UD_FIRST, cqe->res);
      return;
    }
    if (op->kind == ALOOP__OP_RECV_STREAM) {
      stream_completed(loop, s, op, cqe->res, cqe->flags);
      return;
    }
    if (op->kind == ALOOP__OP_RECVMSG_STREAM) {
      datagram_completed(loop, s, op, cqe->res, cqe->flags);
      return;
    }
    if (op->kind == ALOOP__OP_RECVMSG && cqe->res >= 0) { /* the kernel filled in op->msg */
      op->addrlen = op->msg.msg_namelen;
      op->truncated = op->msg.msg_flags & MSG_TRUNC;
    }
    op_finished(loop, s, op, cqe->res);
    return;
  }
  if (UD_KIND(ud) == UD_ACCEPT) {
    accept_completed(loop, s, UD_FD(ud), UD_GEN(ud), cqe->res, cqe->flags);
    return;
  }
  if (UD_KIND(ud) != UD_POLL) return;
  int fd = UD_FD(ud);
  struct uring_fd *u = aloop__fd_priv(loop, fd);
  if (!u || UD_GEN(ud) != (u->gen & GEN_MASK) || !u->armed) return; /* replaced since */
  u->armed = false;
  if (cqe->res == -EBADF) {
    aloop__fd_invalid(loop, fd, -EBADF);
    return;
  }
  if (cqe->res < 0) {
    if (cqe->res != -ECANCELED)
      aloop__report(loop, cqe->res, fd, "io_uring", "poll on fd %d failed", fd);
  } else {
    unsigned ev = 0;
    if (cqe->res & (POLLIN | POLLHUP | POLLERR)) ev |= ALOOP__READ;
    if (cqe->res & (POLLOUT | POLLHUP | POLLERR)) ev |= ALOOP__WRITE;
    aloop__fd_event(loop, fd, ev);
  }
  queue_rearm(s, fd, u);
}

/* Re-arm the one-shot polls that completed last time, if their fds are still wanted (trap c). By
 * now their callbacks have run and the core has applied every interest change. */
static void rearm_completed(aloop_loop *loop, struct uring_state *s) {
  size_t kept = 0;
  for (size_t i = 0; i < s->nrearm; i++) {
    int fd = s->rearm[i];
    struct uring_fd *u = aloop__fd_priv(loop, fd);
    u->queued_rearm = false;
    if (u->armed || !u->mask) continue;
    if (arm(s, fd, u) < 0) {
      s->rearm[kept++] = fd;
      u->queued_rearm = true;
    }
  }
  s->nrearm = kept;
}

/* A wait that cannot work now or later (trap k): said once, in words; the loop stops. */
static int fatal(aloop_loop *loop, struct uring_state *s, int err) {
  if (s->failed) return s->failed;
  s->failed = err;
  if (err == -EEXIST)
    aloop__report(loop, err, -1, "io_uring",
                  "this loop's ring (%s) takes requests only from the thread that first ran it; "
                  "run the loop on one thread, or use ALOOP_IO_URING=setup=cooperative", s->setup);
  else
    aloop__report(loop, err, -1, "io_uring", "waiting for completions failed");
  return err;
}

static int uring_poll(aloop_loop *loop, void *state, int64_t timeout_ns) {
  struct uring_state *s = state;
  if (s->failed) return s->failed;
  int err = enable(s);
  if (err < 0) return fatal(loop, s, err);
  rearm_completed(loop, s);
  if (rearm_reads(loop, s)) timeout_ns = 0;
  flush_backlog(s);
  if (s->nbacklog) timeout_ns = 0; /* more to submit: do not sleep on the kernel */
  struct io_uring_cqe *cqe = NULL;
  bool began = aloop__wait_begin(loop, timeout_ns); /* the completions below run callbacks */
  if (timeout_ns < 0) {
    err = io_uring_submit_and_wait(&s->ring, 1);
  } else if (timeout_ns == 0) {
    err = io_uring_submit(&s->ring);
  } else {
    struct __kernel_timespec ts = {.tv_sec = timeout_ns / 1000000000,
                                   .tv_nsec = timeout_ns % 1000000000};
    err = io_uring_submit_and_wait_timeout(&s->ring, &cqe, 1, &ts, NULL);
  }
  aloop__wait_end(loop, began);
  /* EBUSY: the CQ overflowed and the kernel wants it reaped first (g); EBADR: it had to drop
   * completions (out of memory): reported, the loop goes on with what it has. */
  if (err == -EBADR) aloop__report(loop, err, -1, "io_uring", "the kernel dropped completions");
  else if (err < 0 && err != -ETIME && err != -EINTR && err != -EAGAIN && err != -EBUSY)
    return fatal(loop, s, err);
  unsigned head, seen = 0;
  io_uring_for_each_cqe(&s->ring, head, cqe) {
    complete(loop, s, cqe);
    seen++;
  }
  io_uring_cq_advance(&s->ring, seen);
  return 0;
}

/* ---- multishot accept (traps i, n) ------------------------------------------------------------ */

static void deliver(aloop_loop *loop, struct aloop__op *op, int32_t res) {
  if (res >= 0) {
    op->addrlen = sizeof op->addr;
    if (getpeername(res, (struct sockaddr *)&op->addr, &op->addrlen) < 0) op->addrlen = 0;
  }
  aloop__op_done(loop, op, res);
}

static struct aloop__op *pop_waiter(struct acceptor *a) {
  struct aloop__op *op = a->waiting;
  if (op && !(a->waiting = op->next)) a->waiting_tail = &a->waiting;
  return op;
}

static int arm_acceptor(struct uring_state *s, struct acceptor *a) {
  if (a->cancelling) return 0; /* armed when the cancelled one ends (below) */
  struct io_uring_sqe *sqe = get_sqe(s);
  if (!sqe) return -ENOMEM;
  io_uring_prep_multishot_accept(sqe, a->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
  io_uring_sqe_set_data64(sqe, UD_FOR(a->fd, a->gen, UD_ACCEPT));
  a->armed = true;
  return 0;
}

static void disarm_acceptor(struct uring_state *s, struct acceptor *a) {
  struct io_uring_sqe *sqe = get_sqe(s);
  if (!sqe) return; /* it goes on accepting into `kept`; bounded by the next completion's check */
  io_uring_prep_cancel64(sqe, UD_FOR(a->fd, a->gen, UD_ACCEPT), 0);
  io_uring_sqe_set_data64(sqe, UD_IGNORE);
  a->gen++;
  a->armed = false;
  a->cancelling = true;
}

static int submit_single_accept(aloop_loop *loop, struct uring_state *s, struct aloop__op *op);

/* Hold a connection until an accept operation asks for it. Only memory exhaustion drops one (the
 * peer sees a reset; the server goes on). */
static void keep(struct acceptor *a, int fd) {
  if (a->nkept == a->kept_cap) {
    size_t cap = a->kept_cap ? a->kept_cap * 2 : 16;
    int *kept = realloc(a->kept, cap * sizeof *kept);
    if (!kept) {
      close(fd);
      return;
    }
    a->kept = kept;
    a->kept_cap = cap;
  }
  a->kept[a->nkept++] = fd;
}

/* Whether generation `gen` belongs to the listening socket open now on a->fd (trap n). */
static bool same_listener(const struct acceptor *a, uint32_t gen) {
  return ((a->gen - gen) & GEN_MASK) <= ((a->gen - a->first_gen) & GEN_MASK);
}

/* A connection accepted for this listening socket: to the first waiting accept, else kept. */
static void hand_over(aloop_loop *loop, struct acceptor *a, int32_t fd) {
  struct aloop__op *op = pop_waiter(a);
  if (op)
    deliver(loop, op, fd);
  else
    keep(a, fd);
}

static void accept_completed(aloop_loop *loop, struct uring_state *s, int fd, uint32_t gen,
                             int32_t res, uint32_t flags) {
  struct uring_fd *u = aloop__fd_priv(loop, fd);
  struct acceptor *a = u ? u->acceptor : NULL;
  if (!a || gen != (a->gen & GEN_MASK)) { /* a multishot being cancelled (trap n) */
    if (res >= 0 && a && same_listener(a, gen))
      hand_over(loop, a, res); /* disarmed for backpressure: the socket is still open */
    else if (res >= 0)
      close(res); /* its listening socket was closed: nobody may get this one */
    if (a && !(flags & IORING_CQE_F_MORE)) { /* its last completion: the next may be armed */
      a->cancelling = false;
      if (!a->armed && a->waiting) arm_acceptor(s, a);
    }
    return;
  }
  bool more = flags & IORING_CQE_F_MORE;
  if (!more) a->armed = false;
  if (res == -EINVAL && !more && !s->single_accepts) { /* no multishot accept on this kernel */
    s->single_accepts = true;
    struct aloop__op *op;
    while ((op = pop_waiter(a)))
      if (submit_single_accept(loop, s, op) < 0) aloop__op_done(loop, op, -ENOMEM);
    return;
  }
  if (res >= 0) {
    hand_over(loop, a, res);
    /* Nobody waits (the server is at its connection limit, or taking a batch at a time): stop
     * accepting ahead; the kernel's backlog holds the rest, as for the readiness drivers. What
     * the multishot took in its last sweep stays kept. */
    if (a->armed && !a->waiting) disarm_acceptor(s, a);
  } else if (res != -ECANCELED) {
    struct aloop__op *op = pop_waiter(a); /* EMFILE and the like: the first waiter hears it */
    if (op) deliver(loop, op, res);
  }
  /* Re-armed while someone waits, even after -ECANCELED: this generation's request was not
   * cancelled by us (we move to a new generation first) but by the kernel, e.g. when the thread
   * that submitted it exited. */
  if (!a->armed && a->waiting) arm_acceptor(s, a);
}

static struct acceptor *acceptor_of(struct uring_state *s, int fd, struct uring_fd *u) {
  if (u->acceptor) return u->acceptor;
  struct acceptor *a = calloc(1, sizeof *a);
  if (!a) return NULL;
  a->fd = fd;
  a->waiting_tail = &a->waiting;
  a->next = s->acceptors;
  s->acceptors = a;
  return u->acceptor = a;
}

static int submit_accept(aloop_loop *loop, struct uring_state *s, struct aloop__op *op) {
  struct uring_fd *u = aloop__fd_priv(loop, op->fd); /* the core made the record for the op */
  struct acceptor *a = u ? acceptor_of(s, op->fd, u) : NULL;
  if (!a) return -ENOMEM;
  if (a->nkept) { /* a connection is already here */
    int fd = a->kept[0];
    memmove(a->kept, a->kept + 1, --a->nkept * sizeof *a->kept);
    deliver(loop, op, fd);
    return 0;
  }
  op->next = NULL;
  *a->waiting_tail = op;
  a->waiting_tail = &op->next;
  if (!a->armed && arm_acceptor(s, a) < 0) {
    pop_waiter(a);
    return -ENOMEM;
  }
  return 0;
}

/* aloop_close / cancel: accept operations waiting here are not in the kernel; answer them. */
static bool cancel_waiting_accept(aloop_loop *loop, struct uring_fd *u, struct aloop__op *op) {
  struct acceptor *a = u ? u->acceptor : NULL;
  if (!a) return false;
  for (struct aloop__op **p = &a->waiting; *p; p = &(*p)->next) {
    if (*p != op) continue;
    if (!(*p = op->next)) a->waiting_tail = p;
    aloop__op_done(loop, op, -ECANCELED);
    return true;
  }
  return false;
}

/* The listening socket is being closed: whatever its multishot still accepts is closed (trap n).
 * Returns how many waiting accept operations it answered. */
static uint32_t forget_acceptor(aloop_loop *loop, struct uring_state *s, struct uring_fd *u) {
  struct acceptor *a = u ? u->acceptor : NULL;
  if (!a) return 0;
  if (a->armed) disarm_acceptor(s, a);
  a->first_gen = ++a->gen; /* a later socket with this fd number starts afresh */
  uint32_t answered = 0;
  struct aloop__op *op;
  while ((op = pop_waiter(a))) {
    aloop__op_done(loop, op, -ECANCELED);
    answered++;
  }
  for (size_t i = 0; i < a->nkept; i++) close(a->kept[i]);
  a->nkept = 0;
  return answered;
}

/* ---- provided buffers (traps j, o) ------------------------------------------------------------ */

static void recycle(struct uring_state *s, struct buf_ring *r, unsigned bid) {
  io_uring_buf_ring_add(r->br, r->bufs + (size_t)bid * r->size, (unsigned)r->size,
                        (unsigned short)bid, io_uring_buf_ring_mask(s->cfg.bufs), 0);
  io_uring_buf_ring_advance(r->br, 1);
}

static int setup_buf_ring(struct uring_state *s, struct buf_ring *r) {
  unsigned nbufs = s->cfg.bufs;
  size_t ring_bytes = nbufs * sizeof(struct io_uring_buf);
  void *br = mmap(NULL, ring_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  void *bufs = mmap(NULL, (size_t)nbufs * r->size, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  struct io_uring_buf_reg reg = {.ring_addr = (uint64_t)(uintptr_t)br, .ring_entries = nbufs,
                                 .bgid = r->bgid};
  if (br == MAP_FAILED || bufs == MAP_FAILED || io_uring_register_buf_ring(&s->ring, &reg, 0) < 0) {
    if (br != MAP_FAILED) munmap(br, ring_bytes);
    if (bufs != MAP_FAILED) munmap(bufs, (size_t)nbufs * r->size);
    r->refused = true;
    return -EOPNOTSUPP;
  }
  r->br = br;
  r->bufs = bufs;
  io_uring_buf_ring_init(r->br);
  for (unsigned i = 0; i < nbufs; i++) recycle(s, r, i);
  return 0;
}

/* Whether r can be used: set up now if it was not yet. */
static bool buf_ring_ready(struct uring_state *s, struct buf_ring *r) {
  return !r->refused && (r->br || setup_buf_ring(s, r) == 0);
}

static void free_buf_ring(struct uring_state *s, struct buf_ring *r) {
  if (r->br) munmap(r->br, s->cfg.bufs * sizeof(struct io_uring_buf));
  if (r->bufs) munmap(r->bufs, (size_t)s->cfg.bufs * r->size);
}

/* The buffer a completion used (its flags say which), or NULL if none. */
static unsigned char *buffer_of(struct buf_ring *r, uint32_t flags, unsigned *bid) {
  if (!(flags & IORING_CQE_F_BUFFER)) return NULL;
  *bid = flags >> IORING_CQE_BUFFER_SHIFT;
  return r->bufs + (size_t)*bid * r->size;
}

/* A request of a reading stream ended but reading goes on (ENOBUFS, or no IORING_CQE_F_MORE):
 * submit it again, unless it is being cancelled. */
static void resubmit(aloop_loop *loop, struct uring_state *s, struct aloop__op *op,
                     int (*submit)(struct uring_state *, struct aloop__op *)) {
  int err = op->state == OP_CANCELLING ? -ECANCELED : submit(s, op);
  if (err < 0) op_finished(loop, s, op, err == -ECANCELED ? err : -ENOMEM);
}

/* ---- stream reads (trap j) -------------------------------------------------------------------- */

/* Re-armed with the next submit (trap j), with the consumer's room as it is then. */
static int defer_read(struct uring_state *s, struct aloop__op *op) {
  if (s->nreads == s->reads_cap) {
    size_t cap = s->reads_cap ? s->reads_cap * 2 : 64;
    struct aloop__op **a = realloc(s->reads, cap * sizeof *a);
    if (!a) return -ENOMEM; /* re-armed now, with the room as it is */
    s->reads = a;
    s->reads_cap = cap;
  }
  s->reads[s->nreads++] = op;
  return 0;
}

static int submit_stream(struct uring_state *s, struct aloop__op *op);

/* True if an operation ended here: its callback may have queued work, so the poll must not sleep. */
static bool rearm_reads(aloop_loop *loop, struct uring_state *s) {
  bool ended = false;
  while (s->nreads) { /* from the back: asking a consumer for its room may cancel listed reads */
    struct aloop__op *op = s->reads[--s->nreads];
    int err = submit_stream(s, op);
    if (err < 0) {
      op_finished(loop, s, op, err == -ECANCELED ? err : -ENOMEM);
      ended = true;
    }
  }
  return ended;
}

/* A listed read is not in the kernel: cancelling it ends it now, as a parked one is (op.c). */
static bool cancel_deferred_read(aloop_loop *loop, struct uring_state *s, struct aloop__op *op) {
  for (size_t i = 0; i < s->nreads; i++) {
    if (s->reads[i] != op) continue;
    s->reads[i] = s->reads[--s->nreads];
    op_finished(loop, s, op, -ECANCELED);
    return true;
  }
  return false;
}

static void cancel_deferred_reads_of(aloop_loop *loop, struct uring_state *s, int fd) {
  for (size_t i = s->nreads; i-- > 0;) /* a callback may cancel others: look again each time */
    if (i < s->nreads && s->reads[i]->fd == fd) {
      cancel_deferred_read(loop, s, s->reads[i]);
      i = s->nreads;
    }
}

static int submit_stream(struct uring_state *s, struct aloop__op *op) {
  if (!buf_ring_ready(s, &s->stream_bufs)) return -EOPNOTSUPP;
  /* The room first: the consumer may cancel the read there (or another request may take the
   * next SQE and, with the SQ full, submit the queue), and no SQE of ours may be half made then. */
  if (op->room) op->len = op->room(op);
  if (op->state == OP_CANCELLING) return -ECANCELED;
  struct io_uring_sqe *sqe = get_sqe(s);
  if (!sqe) return -ENOMEM;
  if (op->file) /* a pipe: one read(2) per chunk, into a provided buffer all the same */
    io_uring_prep_read(sqe, op->fd, NULL,
                       op->len && op->len < RECV_BUF_SIZE ? (unsigned)op->len : RECV_BUF_SIZE,
                       (uint64_t)-1);
  else if (s->cfg.recv_per_op || op->bounded)
    /* One chunk, at most op->len (the kernel takes the smaller of it and the buffer); re-armed
     * as multishot is. */
    io_uring_prep_recv(sqe, op->fd, NULL, op->len < RECV_BUF_SIZE ? (unsigned)op->len : 0, 0);
  else
    io_uring_prep_recv_multishot(sqe, op->fd, NULL, 0, 0);
  sqe->flags |= IOSQE_BUFFER_SELECT;
  sqe->buf_group = s->stream_bufs.bgid;
  io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)op | UD_OP);
  return 0;
}

static void stream_completed(aloop_loop *loop, struct uring_state *s, struct aloop__op *op,
                             int32_t res, uint32_t flags) {
  bool more = flags & IORING_CQE_F_MORE;
  unsigned bid = 0;
  if (res > 0) {
    op->buf = buffer_of(&s->stream_bufs, flags, &bid);
    op->more = true;
    op->done(loop, op, res); /* may cancel the op: its state says so afterwards */
    recycle(s, &s->stream_bufs, bid);
    if (more) return;
  } else if (res == -EINVAL && !more && !s->cfg.recv_per_op && op->state != OP_CANCELLING) {
    s->cfg.recv_per_op = true; /* multishot recv unknown after all: one recv per chunk */
  } else if (res != -ENOBUFS || more) {
    if (!more) op_finished(loop, s, op, res); /* end of stream, an error, or the cancel */
    return;
  }
  if (op->state == OP_CANCELLING || defer_read(s, op) < 0) resubmit(loop, s, op, submit_stream);
}


/* ---- datagram reads (trap p) ------------------------------------------------------------------ */

static int submit_datagrams(struct uring_state *s, struct aloop__op *op) {
  if (!buf_ring_ready(s, &s->dgram_bufs)) return -EOPNOTSUPP;
  struct io_uring_sqe *sqe = get_sqe(s);
  if (!sqe) return -ENOMEM;
  aloop__op_recvmsg_header(op, NULL, 0); /* the buffer comes from the ring */
  if (s->cfg.recvmsg_per_op)
    io_uring_prep_recvmsg(sqe, op->fd, &op->msg, 0);
  else
    io_uring_prep_recvmsg_multishot(sqe, op->fd, &op->msg, 0);
  sqe->flags |= IOSQE_BUFFER_SELECT;
  sqe->buf_group = s->dgram_bufs.bgid;
  io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)op | UD_OP);
  return 0;
}

/* Where a datagram lies in buffer `buf` of a completion with result res: a multishot recvmsg
 * puts a header and the sender's address before the payload; a single recvmsg puts the payload
 * alone and the address in op->msg. Sets op->buf, addr, addrlen and truncated; returns the
 * payload's length, or -EINVAL for a header that does not fit. */
static int32_t locate_datagram(struct uring_state *s, struct aloop__op *op, unsigned char *buf,
                               int32_t res) {
  if (s->cfg.recvmsg_per_op) {
    op->buf = buf;
    op->addrlen = op->msg.msg_namelen;
    op->truncated = res > ALOOP__DATAGRAM_MAX || (op->msg.msg_flags & MSG_TRUNC);
    return res > ALOOP__DATAGRAM_MAX ? ALOOP__DATAGRAM_MAX : res;
  }
  struct io_uring_recvmsg_out *out = io_uring_recvmsg_validate(buf, res, &op->msg);
  if (!out) return -EINVAL;
  op->addrlen = out->namelen < sizeof op->addr ? out->namelen : sizeof op->addr;
  memcpy(&op->addr, io_uring_recvmsg_name(out), op->addrlen);
  op->buf = io_uring_recvmsg_payload(out, &op->msg);
  op->truncated = out->flags & MSG_TRUNC;
  return (int32_t)io_uring_recvmsg_payload_length(out, res, &op->msg);
}

static void datagram_completed(aloop_loop *loop, struct uring_state *s, struct aloop__op *op,
                               int32_t res, uint32_t flags) {
  bool more = flags & IORING_CQE_F_MORE;
  unsigned bid = 0;
  unsigned char *buf = buffer_of(&s->dgram_bufs, flags, &bid);
  /* A datagram, of 0 bytes or more. A single recvmsg of an empty one may keep no buffer. */
  if (buf || (res >= 0 && s->cfg.recvmsg_per_op)) {
    int32_t n = locate_datagram(s, op, buf ? buf : s->dgram_bufs.bufs, res);
    if (n >= 0) {
      op->more = true;
      op->done(loop, op, n); /* may cancel the op: its state says so afterwards */
    }
    if (buf) recycle(s, &s->dgram_bufs, bid);
    if (more) return;
  } else if (res == -EINVAL && !more && !s->cfg.recvmsg_per_op && op->state != OP_CANCELLING) {
    s->cfg.recvmsg_per_op = true; /* multishot recvmsg unknown after all: one per datagram */
  } else if (res != -ENOBUFS || more) {
    if (!more) op_finished(loop, s, op, res); /* an error (ICMP news) or the cancel */
    return;
  }
  resubmit(loop, s, op, submit_datagrams);
}

/* ---- file operations (trap r) ----------------------------------------------------------------- */

/* A read or write: one buffer as a plain read/write (no iovec for the kernel to import), several
 * as readv/writev. Offset -1 is the file position. */
static void prep_file_rw(struct io_uring_sqe *sqe, const struct aloop__op *op, bool write) {
  const struct iovec *iov = op->buf;
  uint64_t at = (uint64_t)op->file_args.offset;
  if (op->len == 1) {
    unsigned len = iov->iov_len < IO_MAX ? (unsigned)iov->iov_len : IO_MAX; /* trap l */
    if (write)
      io_uring_prep_write(sqe, op->fd, iov->iov_base, len, at);
    else
      io_uring_prep_read(sqe, op->fd, iov->iov_base, len, at);
  } else if (write) {
    io_uring_prep_writev(sqe, op->fd, iov, (unsigned)op->len, at);
  } else {
    io_uring_prep_readv(sqe, op->fd, iov, (unsigned)op->len, at);
  }
}

static void prep_file(struct io_uring_sqe *sqe, struct aloop__op *op) {
  switch (op->kind) {
  case ALOOP__OP_FILE_OPEN:
    io_uring_prep_openat(sqe, AT_FDCWD, op->buf, op->file_args.flags, op->file_args.mode);
    break;
  case ALOOP__OP_FILE_READ:
  case ALOOP__OP_FILE_WRITE:
    prep_file_rw(sqe, op, op->kind == ALOOP__OP_FILE_WRITE);
    break;
  case ALOOP__OP_FILE_FSYNC:
    io_uring_prep_fsync(sqe, op->fd,
                        (op->file_args.flags & ALOOP__FSYNC_DATA) ? IORING_FSYNC_DATASYNC : 0);
    break;
  case ALOOP__OP_FILE_STATX:
    io_uring_prep_statx(sqe, op->fd, op->buf, op->file_args.flags, STATX_BASIC_STATS,
                        op->file_args.stx);
    break;
  default: /* ALOOP__OP_FILE_CLOSE */
    io_uring_prep_close(sqe, op->fd);
  }
}

static int submit_file(struct uring_state *s, struct aloop__op *op) {
  struct io_uring_sqe *sqe = get_sqe(s);
  if (!sqe) return -ENOMEM;
  prep_file(sqe, op);
  io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)op | UD_OP);
  return 0; /* not tracked: aloop_close leaves file operations alone (file.h) */
}

/* ---- file transfers (trap s) ------------------------------------------------------------------ */

enum { STAGE_SPLICE_IN, STAGE_POLL }; /* what a pair's first request is */

static int make_pipe(struct aloop__sendfile *sf) {
  if (sf->splice.pipe[0] >= 0) return 0;
  if (pipe2(sf->splice.pipe, O_CLOEXEC | O_NONBLOCK) < 0) return -errno;
  fcntl(sf->splice.pipe[1], F_SETPIPE_SZ, SPLICE_PIPE); /* best effort */
  int cap = fcntl(sf->splice.pipe[1], F_GETPIPE_SZ);
  sf->splice.cap = cap > 0 ? (uint32_t)cap : 4096;
  return 0;
}

/* Queue `first` (already prepared) linked to a splice of up to len bytes pipe -> socket: hard-
 * linked after a file -> pipe splice (short is not a failure there), plainly after a poll (a poll
 * cancelled by aloop_close or abort must not let the splice write on). */
static void queue_pair(struct uring_state *s, struct aloop__op *op, struct io_uring_sqe *first,
                       uint32_t len, uint8_t stage) {
  struct aloop__sendfile *sf = op->buf;
  uint64_t ud = (uint64_t)(uintptr_t)op | UD_OP;
  first->flags |= stage == STAGE_SPLICE_IN ? IOSQE_IO_HARDLINK : IOSQE_IO_LINK;
  io_uring_sqe_set_data64(first, ud | UD_FIRST);
  /* A full SQ may submit `first` alone: the pair then runs unordered, which costs a round (the
   * splice finds the pipe empty: -EAGAIN) but no byte. */
  struct io_uring_sqe *out = get_sqe(s);
  if (out) {
    io_uring_prep_splice(out, sf->splice.pipe[0], -1, op->fd, -1, len, SPLICE_F_NONBLOCK);
    io_uring_sqe_set_data64(out, ud);
  }
  sf->splice.pending = out ? 2 : 1;
  sf->splice.stage = stage;
}

/* The next round: file -> pipe -> socket with the pipe empty, else wait until the socket takes
 * what the pipe holds. */
static int queue_round(struct uring_state *s, struct aloop__op *op) {
  struct aloop__sendfile *sf = op->buf;
  struct io_uring_sqe *first = get_sqe(s);
  if (!first) return -ENOMEM;
  if (sf->splice.piped) {
    io_uring_prep_poll_add(first, op->fd, POLLOUT);
    queue_pair(s, op, first, sf->splice.piped, STAGE_POLL);
  } else {
    uint32_t len = op->len < sf->splice.cap ? (uint32_t)op->len : sf->splice.cap;
    io_uring_prep_splice(first, sf->fd, sf->offset, sf->splice.pipe[1], -1, len, 0);
    queue_pair(s, op, first, len, STAGE_SPLICE_IN);
  }
  return 0;
}

static int submit_sendfile(aloop_loop *loop, struct uring_state *s, struct aloop__op *op) {
  struct aloop__sendfile *sf = op->buf;
  int err = make_pipe(sf);
  if (err < 0) return err;
  sf->splice.piped = sf->splice.sent = 0;
  sf->splice.err = 0;
  sf->splice.eof = false;
  if ((err = queue_round(s, op)) == 0) track(loop, s, op);
  return err;
}

static void sendfile_completed(aloop_loop *loop, struct uring_state *s, struct aloop__op *op,
                               bool first, int32_t res) {
  struct aloop__sendfile *sf = op->buf;
  sf->splice.pending--;
  if (res > 0 && first && sf->splice.stage == STAGE_SPLICE_IN) {
    sf->splice.piped += (uint32_t)res;
  } else if (res > 0 && !first) {
    sf->splice.piped -= (uint32_t)res;
    sf->splice.sent += (uint32_t)res;
  } else if (res == 0 && first && sf->splice.stage == STAGE_SPLICE_IN) {
    sf->splice.eof = true;
  } else if (res < 0 && res != -EAGAIN && res != -ECANCELED && !sf->splice.err) {
    sf->splice.err = res; /* -EAGAIN: the socket was full or the pipe empty; -ECANCELED below */
  }
  if (sf->splice.pending) return;
  int32_t outcome = (int32_t)sf->splice.sent;
  if (op->state == OP_CANCELLING)
    outcome = -ECANCELED;
  else if (sf->splice.err)
    outcome = sf->splice.err; /* the socket's error, or the file's (-EINVAL: cannot splice it) */
  else if (sf->splice.piped || (!sf->splice.sent && !sf->splice.eof))
    outcome = queue_round(s, op); /* 0: going on */
  if (outcome != 0 || sf->splice.eof) op_finished(loop, s, op, outcome);
}

static int submit_single_accept(aloop_loop *loop, struct uring_state *s, struct aloop__op *op) {
  struct io_uring_sqe *sqe = get_sqe(s);
  if (!sqe) return -ENOMEM;
  op->addrlen = sizeof op->addr;
  io_uring_prep_accept(sqe, op->fd, (struct sockaddr *)&op->addr, &op->addrlen,
                       SOCK_NONBLOCK | SOCK_CLOEXEC);
  io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)op | UD_OP);
  track(loop, s, op);
  return 0;
}

/* Native operations: the kernel performs them; the completion comes back through complete(). */
static int uring_submit(aloop_loop *loop, void *state, struct aloop__op *op) {
  struct uring_state *s = state;
  /* A tty or other character device: io_uring would read it from a kernel worker thread (only
   * some files let it wait without one); readiness (a poll request) serves it instead. */
  if (op->file == ALOOP__FILE_OTHER) return -EOPNOTSUPP;
  if (op->kind == ALOOP__OP_WAITID && s->cfg.no_waitid) return -EOPNOTSUPP;
  if (aloop__op_is_file(op->kind)) return submit_file(s, op);
  if (op->kind == ALOOP__OP_SENDFILE)
    return s->cfg.no_splice ? -EOPNOTSUPP : submit_sendfile(loop, s, op);
  if (op->kind == ALOOP__OP_ACCEPT)
    return s->single_accepts ? submit_single_accept(loop, s, op) : submit_accept(loop, s, op);
  if (op->kind == ALOOP__OP_RECV_STREAM || op->kind == ALOOP__OP_RECVMSG_STREAM) {
    int err = op->kind == ALOOP__OP_RECV_STREAM ? submit_stream(s, op) : submit_datagrams(s, op);
    if (err == 0) track(loop, s, op);
    return err;
  }
  size_t len = op->len < IO_MAX ? op->len : IO_MAX; /* trap l: the rest is the caller's next call */
  struct io_uring_sqe *sqe = get_sqe(s);
  if (!sqe) return -ENOMEM;
  switch (op->kind) {
  case ALOOP__OP_RECV:
    io_uring_prep_recv(sqe, op->fd, op->buf, len, 0);
    break;
  case ALOOP__OP_RECVMSG:
    aloop__op_recvmsg_header(op, op->buf, len);
    io_uring_prep_recvmsg(sqe, op->fd, &op->msg, 0);
    break;
  case ALOOP__OP_SEND:
    io_uring_prep_send(sqe, op->fd, op->buf, len, MSG_NOSIGNAL);
    break;
  case ALOOP__OP_SENDMSG:
    if (op->file) { /* a pipe: writev at the current position (-1: pipes have none) */
      const struct msghdr *msg = op->buf;
      io_uring_prep_writev(sqe, op->fd, msg->msg_iov, (unsigned)msg->msg_iovlen, (uint64_t)-1);
    } else {
      io_uring_prep_sendmsg(sqe, op->fd, op->buf, MSG_NOSIGNAL);
    }
    break;
  case ALOOP__OP_CONNECT:
    io_uring_prep_connect(sqe, op->fd, (struct sockaddr *)&op->addr, op->addrlen);
    break;
  case ALOOP__OP_WAITID: /* trap q: the id is the pidfd, the options go in file_index */
    io_uring_prep_rw(OP_WAITID, sqe, op->fd, NULL, P_PIDFD, 0);
    sqe->file_index = WEXITED;
    sqe->addr2 = (uint64_t)(uintptr_t)op->buf;
    break;
  default:
    io_uring_prep_nop(sqe);
    io_uring_sqe_set_data64(sqe, UD_IGNORE);
    return -EINVAL;
  }
  io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)op | UD_OP);
  track(loop, s, op);
  return 0;
}

static void cancel_request(aloop_loop *loop, struct uring_state *s, struct aloop__op *op) {
  struct io_uring_sqe *sqe = get_sqe(s);
  if (!sqe) { /* the op still completes by itself; only the early stop is lost */
    aloop__report(loop, -ENOMEM, op->fd, "io_uring", "cannot queue a cancel request");
    return;
  }
  io_uring_prep_cancel64(sqe, (uint64_t)(uintptr_t)op | UD_OP, 0);
  io_uring_sqe_set_data64(sqe, UD_IGNORE);
  if (op->kind == ALOOP__OP_SENDFILE && (sqe = get_sqe(s))) { /* and its pair's first (trap s) */
    io_uring_prep_cancel64(sqe, (uint64_t)(uintptr_t)op | UD_OP | UD_FIRST, 0);
    io_uring_sqe_set_data64(sqe, UD_IGNORE);
  }
}

static void uring_cancel(aloop_loop *loop, void *state, struct aloop__op *op) {
  if (cancel_deferred_read(loop, state, op)) return;
  if (op->kind == ALOOP__OP_ACCEPT && cancel_waiting_accept(loop, aloop__fd_priv(loop, op->fd), op))
    return;
  cancel_request(loop, state, op);
}

static void uring_cancel_fd(aloop_loop *loop, void *state, int fd, uint32_t ops) {
  struct uring_state *s = state;
  struct uring_fd *u = aloop__fd_priv(loop, fd);
  /* The multishot accept is cancelled by its user_data, which needs no open fd; the accept
   * operations waiting for it are answered now. */
  ops -= forget_acceptor(loop, s, u);
  cancel_deferred_reads_of(loop, s, fd);
  bool now = false; /* cancels are submitted at once, as the fd's requests are (below) */
  if (s->cfg.cancel_per_op) {
    for (struct aloop__op *op = u ? u->inflight : NULL; op; op = op->next, now = true)
      cancel_request(loop, s, op);
  } else if (ops) {
    struct io_uring_sqe *sqe = get_sqe(s);
    if (!sqe) {
      aloop__report(loop, -ENOMEM, fd, "io_uring", "cannot queue a cancel request");
      return;
    }
    io_uring_prep_cancel_fd(sqe, fd, IORING_ASYNC_CANCEL_ALL);
    io_uring_sqe_set_data64(sqe, UD_IGNORE);
  }
  /* Now, not with the next batch: the kernel matches the fd to its file when a request is issued,
   * and the caller closes the fd as soon as this returns (trap m). */
  if (now || queued_for(s, fd)) submit_now(loop, s, fd);
}

/* ---- embedding (trap o) ---------------------------------------------------------------------- */

static int uring_backend_fd(aloop_loop *loop, void *state) {
  (void)loop;
  struct uring_state *s = state;
  return s->deferred ? -ALOOP_EUNAVAIL : s->ring.ring_fd;
}

/* The core's flush during a long round of callbacks: what is queued goes to the kernel now. An
 * error is the next poll's to see. */
static void uring_flush(aloop_loop *loop, void *state) {
  (void)loop;
  struct uring_state *s = state;
  if (s->failed || (!s->nbacklog && !io_uring_sq_ready(&s->ring)) || enable(s) < 0) return;
  flush_backlog(s);
  io_uring_submit(&s->ring);
}

static bool uring_holds_requests(aloop_loop *loop, void *state) {
  (void)loop;
  struct uring_state *s = state;
  return s->nrearm || s->nreads || s->nbacklog || io_uring_sq_ready(&s->ring);
}

static const char *uring_detail(aloop_loop *loop, void *state) {
  (void)loop;
  return ((struct uring_state *)state)->setup;
}

const struct aloop__driver aloop__driver_io_uring = {
    .name = "io_uring",
    .max_fd = 0,
    .state_size = sizeof(struct uring_state),
    .fd_priv_size = sizeof(struct uring_fd),
    .probe = uring_probe,
    .init = uring_init,
    .fini = uring_fini,
    .watch = uring_watch,
    .poll = uring_poll,
    .detail = uring_detail,
    .backend_fd = uring_backend_fd,
    .holds_requests = uring_holds_requests,
    .flush = uring_flush,
    .op_kinds = ALOOP__OP_BIT(ALOOP__OP_ACCEPT) | ALOOP__OP_BIT(ALOOP__OP_RECV) |
                ALOOP__OP_BIT(ALOOP__OP_SEND) | ALOOP__OP_BIT(ALOOP__OP_SENDMSG) |
                ALOOP__OP_BIT(ALOOP__OP_CONNECT) |
                ALOOP__OP_BIT(ALOOP__OP_RECV_STREAM) | ALOOP__OP_BIT(ALOOP__OP_RECVMSG) |
                ALOOP__OP_BIT(ALOOP__OP_RECVMSG_STREAM) | ALOOP__OP_BIT(ALOOP__OP_WAITID) |
                FILE_OP_KINDS | ALOOP__OP_BIT(ALOOP__OP_SENDFILE),
    .submit = uring_submit,
    .cancel = uring_cancel,
    .cancel_fd = uring_cancel_fd,
};
