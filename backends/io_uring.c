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
 *  h) Socket operations are native: accept, recv, send, sendmsg and connect are submitted as
 *     requests and complete in the kernel; user_data is the operation. Cancelling one is a request too, and the
 *     operation's own completion (-ECANCELED or its result, if it won the race) still follows:
 *     only then may its buffer be reused.
 *  i) A listening socket that keeps being asked to accept gets one multishot accept (5.19+): each
 *     connection is a CQE. A connection nobody waits for yet is kept (bounded: past ACCEPT_KEEP the
 *     multishot is cancelled and the kernel's backlog holds the rest); an error such as EMFILE
 *     ends the multishot and goes to the first waiter; it is re-armed while someone waits. The peer
 *     address comes from getpeername, since one multishot request has one address buffer. Kernels
 *     without multishot accept answer EINVAL: the driver falls back to one accept per operation.
 *  j) Streams (transports) read with multishot recv into a provided-buffer ring, registered by hand
 *     (Debian's liburing 2.3 has no io_uring_setup_buf_ring). A buffer goes back to the ring only
 *     after the consumer's callback returned. ENOBUFS means every buffer is out: re-arm, it is not
 *     an end of stream; a recv that ends without IORING_CQE_F_MORE is re-armed too. Kernels without
 *     buffer rings decline the operation and the core reads on readiness (poll requests) instead.
 */
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <liburing.h>

#include "driver.h"

enum {
  ACCEPT_KEEP = 64,   /* accepted connections held for future accepts before backpressure (i) */
  RECV_BUFS = 128,    /* provided buffers (j): 128 x 32 KiB, mapped lazily, untouched pages free */
  RECV_BUF_SIZE = 32 * 1024,
  RECV_BGID = 1,
  SQ_ENTRIES = 256,   /* per-iteration batch; a fuller SQ is flushed early (trap f) */
  CQ_ENTRIES = 4096,  /* completions one wait can return before overflow handling kicks in */
};

/* user_data, told apart by its two low bits:
 *   ...01  a poll: the fd in the high 32 bits, its generation in bits 2-31 (trap d)
 *   ...10  an operation: the address of its struct aloop__op (aligned, so the bits are free)
 *   0      a removal or cancel request: its own completion carries nothing */
#define UD_POLL 1u
#define UD_OP 2u
#define UD_ACCEPT 3u /* a multishot accept: fd and generation, as a poll */
#define UD_KIND(ud) ((ud) & 3u)
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
  bool armed;
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
};

struct uring_state {
  struct io_uring ring;
  bool enabled;
  const char *setup; /* which setup flags the kernel took, for aloop_backend_detail */
  int *rearm;        /* fds whose one-shot poll completed this iteration */
  size_t nrearm, rearm_cap;
  struct acceptor *acceptors;
  bool single_accepts; /* the kernel has no multishot accept */
  struct io_uring_buf_ring *br; /* provided buffers for stream reads (j), set up on first use */
  unsigned char *bufs;
  bool no_buf_ring;             /* the kernel refused it: streams go the readiness way */
};

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

static int uring_probe(char *why, size_t n) {
  struct io_uring ring;
  int err = io_uring_queue_init(2, &ring, 0);
  if (err < 0) {
    say_why_not(err, why, n);
    return -ALOOP_EUNAVAIL;
  }
  err = check_ring(&ring, why, n);
  io_uring_queue_exit(&ring);
  return err;
}

static int uring_init(aloop_loop *loop, void *state, char *why, size_t n) {
  (void)loop;
  struct uring_state *s = state;
  static const struct {
    unsigned flags;
    const char *name;
  } setups[] = {
      {IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_TASKRUN_FLAG |
           IORING_SETUP_R_DISABLED,
       "single issuer, deferred task work"},
      {IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG, "cooperative task work"},
      {0, "plain"},
  };
  int err = -EINVAL;
  for (size_t i = 0; i < sizeof setups / sizeof setups[0]; i++) {
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    p.flags = setups[i].flags | IORING_SETUP_CQSIZE;
    p.cq_entries = CQ_ENTRIES;
    err = io_uring_queue_init_params(SQ_ENTRIES, &s->ring, &p);
    if (err == -EINVAL) continue; /* flags this kernel does not know: try the next set */
    if (err < 0) break;
    s->setup = setups[i].name;
    s->enabled = !(setups[i].flags & IORING_SETUP_R_DISABLED);
    if ((err = check_ring(&s->ring, why, n)) < 0) {
      io_uring_queue_exit(&s->ring);
      return err;
    }
    return 0;
  }
  say_why_not(err, why, n);
  return -ALOOP_EUNAVAIL;
}

static void uring_fini(aloop_loop *loop, void *state) {
  (void)loop;
  struct uring_state *s = state;
  io_uring_queue_exit(&s->ring);
  free(s->rearm);
  if (s->br) munmap(s->br, RECV_BUFS * sizeof(struct io_uring_buf));
  if (s->bufs) munmap(s->bufs, (size_t)RECV_BUFS * RECV_BUF_SIZE);
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

/* An SQE, flushing the queue to the kernel first if it is full (trap f). */
static struct io_uring_sqe *get_sqe(struct uring_state *s) {
  struct io_uring_sqe *sqe = io_uring_get_sqe(&s->ring);
  if (!sqe && enable(s) == 0 && io_uring_submit(&s->ring) >= 0) sqe = io_uring_get_sqe(&s->ring);
  return sqe;
}

static int arm(struct uring_state *s, int fd, struct uring_fd *u) {
  struct io_uring_sqe *sqe = get_sqe(s);
  if (!sqe) return -EBUSY;
  unsigned mask = ((u->mask & ALOOP__READ) ? POLLIN : 0) | ((u->mask & ALOOP__WRITE) ? POLLOUT : 0);
  io_uring_prep_poll_add(sqe, fd, mask);
  io_uring_sqe_set_data64(sqe, UD(fd, u->gen));
  u->armed = true;
  return 0;
}

static int disarm(struct uring_state *s, int fd, struct uring_fd *u) {
  struct io_uring_sqe *sqe = get_sqe(s);
  if (!sqe) return -EBUSY;
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

static void complete(aloop_loop *loop, struct uring_state *s, struct io_uring_cqe *cqe) {
  uint64_t ud = io_uring_cqe_get_data64(cqe);
  if (UD_KIND(ud) == UD_OP) {
    struct aloop__op *op = (struct aloop__op *)(uintptr_t)(ud & ~(uint64_t)3);
    if (op->kind == ALOOP__OP_RECV_STREAM)
      stream_completed(loop, s, op, cqe->res, cqe->flags);
    else
      aloop__op_done(loop, op, cqe->res);
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

static int uring_poll(aloop_loop *loop, void *state, int64_t timeout_ns) {
  struct uring_state *s = state;
  int err = enable(s);
  if (err < 0) return err;
  rearm_completed(loop, s);
  struct io_uring_cqe *cqe = NULL;
  if (timeout_ns < 0) {
    err = io_uring_submit_and_wait(&s->ring, 1);
  } else if (timeout_ns == 0) {
    err = io_uring_submit(&s->ring);
  } else {
    struct __kernel_timespec ts = {.tv_sec = timeout_ns / 1000000000,
                                   .tv_nsec = timeout_ns % 1000000000};
    err = io_uring_submit_and_wait_timeout(&s->ring, &cqe, 1, &ts, NULL);
  }
  if (err < 0 && err != -ETIME && err != -EINTR && err != -EAGAIN && err != -EBUSY) return err;
  unsigned head, seen = 0;
  io_uring_for_each_cqe(&s->ring, head, cqe) {
    complete(loop, s, cqe);
    seen++;
  }
  io_uring_cq_advance(&s->ring, seen);
  return 0;
}

/* ---- multishot accept (trap i) --------------------------------------------------------------- */

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
  struct io_uring_sqe *sqe = get_sqe(s);
  if (!sqe) return -EBUSY;
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
}

static int submit_single_accept(struct uring_state *s, struct aloop__op *op);

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

static void accept_completed(aloop_loop *loop, struct uring_state *s, int fd, uint32_t gen,
                             int32_t res, uint32_t flags) {
  struct uring_fd *u = aloop__fd_priv(loop, fd);
  struct acceptor *a = u ? u->acceptor : NULL;
  if (!a || gen != (a->gen & GEN_MASK)) { /* a multishot being cancelled: keep what it accepted */
    if (res >= 0 && a) keep(a, res);
    else if (res >= 0) close(res);
    return;
  }
  bool more = flags & IORING_CQE_F_MORE;
  if (!more) a->armed = false;
  if (res == -EINVAL && !more && !s->single_accepts) { /* no multishot accept on this kernel */
    s->single_accepts = true;
    struct aloop__op *op;
    while ((op = pop_waiter(a)))
      if (submit_single_accept(s, op) < 0) aloop__op_done(loop, op, -EBUSY);
    return;
  }
  struct aloop__op *op = pop_waiter(a);
  if (op) {
    deliver(loop, op, res);
  } else if (res >= 0) {
    keep(a, res);
    if (a->nkept >= ACCEPT_KEEP && a->armed) disarm_acceptor(s, a);
  }
  if (!a->armed && a->waiting && res != -ECANCELED) arm_acceptor(s, a);
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
    return -EBUSY;
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

/* Returns how many waiting accept operations it answered. */
static uint32_t forget_acceptor(aloop_loop *loop, struct uring_state *s, struct uring_fd *u) {
  struct acceptor *a = u ? u->acceptor : NULL;
  if (!a) return 0;
  if (a->armed) disarm_acceptor(s, a);
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

/* Native operations: the kernel performs them; the completion comes back through complete(). */
/* ---- stream reads (trap j) -------------------------------------------------------------------- */

static void recycle(struct uring_state *s, unsigned bid) {
  io_uring_buf_ring_add(s->br, s->bufs + (size_t)bid * RECV_BUF_SIZE, RECV_BUF_SIZE, (unsigned short)bid,
                        io_uring_buf_ring_mask(RECV_BUFS), 0);
  io_uring_buf_ring_advance(s->br, 1);
}

static int setup_buf_ring(struct uring_state *s) {
  size_t ring_bytes = RECV_BUFS * sizeof(struct io_uring_buf);
  void *br = mmap(NULL, ring_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  void *bufs = mmap(NULL, (size_t)RECV_BUFS * RECV_BUF_SIZE, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  struct io_uring_buf_reg reg = {.ring_addr = (uint64_t)(uintptr_t)br, .ring_entries = RECV_BUFS,
                                 .bgid = RECV_BGID};
  if (br == MAP_FAILED || bufs == MAP_FAILED || io_uring_register_buf_ring(&s->ring, &reg, 0) < 0) {
    if (br != MAP_FAILED) munmap(br, ring_bytes);
    if (bufs != MAP_FAILED) munmap(bufs, (size_t)RECV_BUFS * RECV_BUF_SIZE);
    s->no_buf_ring = true;
    return -EOPNOTSUPP;
  }
  s->br = br;
  s->bufs = bufs;
  io_uring_buf_ring_init(s->br);
  for (unsigned i = 0; i < RECV_BUFS; i++) recycle(s, i);
  return 0;
}

static int submit_stream(struct uring_state *s, struct aloop__op *op) {
  if (s->no_buf_ring || (!s->br && setup_buf_ring(s) < 0)) return -EOPNOTSUPP;
  struct io_uring_sqe *sqe = get_sqe(s);
  if (!sqe) return -EBUSY;
  io_uring_prep_recv_multishot(sqe, op->fd, NULL, 0, 0);
  sqe->flags |= IOSQE_BUFFER_SELECT;
  sqe->buf_group = RECV_BGID;
  io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)op | UD_OP);
  return 0;
}

static void stream_completed(aloop_loop *loop, struct uring_state *s, struct aloop__op *op,
                             int32_t res, uint32_t flags) {
  bool more = flags & IORING_CQE_F_MORE;
  if (res > 0) {
    unsigned bid = flags >> IORING_CQE_BUFFER_SHIFT;
    op->buf = s->bufs + (size_t)bid * RECV_BUF_SIZE;
    op->more = true;
    op->done(loop, op, res); /* may cancel the op: its state says so afterwards */
    recycle(s, bid);
    if (more) return;
  } else if (res != -ENOBUFS || more) {
    if (!more) aloop__op_done(loop, op, res); /* end of stream, an error, or the cancel */
    return;
  }
  /* The kernel's request ended but the stream goes on (ENOBUFS, or no IORING_CQE_F_MORE). */
  if (op->state == OP_CANCELLING)
    aloop__op_done(loop, op, -ECANCELED);
  else if (submit_stream(s, op) < 0)
    aloop__op_done(loop, op, -EBUSY);
}

static int submit_single_accept(struct uring_state *s, struct aloop__op *op) {
  struct io_uring_sqe *sqe = get_sqe(s);
  if (!sqe) return -EBUSY;
  op->addrlen = sizeof op->addr;
  io_uring_prep_accept(sqe, op->fd, (struct sockaddr *)&op->addr, &op->addrlen,
                       SOCK_NONBLOCK | SOCK_CLOEXEC);
  io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)op | UD_OP);
  return 0;
}

static int uring_submit(aloop_loop *loop, void *state, struct aloop__op *op) {
  struct uring_state *s = state;
  if (op->kind == ALOOP__OP_ACCEPT)
    return s->single_accepts ? submit_single_accept(s, op) : submit_accept(loop, s, op);
  if (op->kind == ALOOP__OP_RECV_STREAM) return submit_stream(s, op);
  struct io_uring_sqe *sqe = get_sqe(state);
  if (!sqe) return -EBUSY;
  switch (op->kind) {
  case ALOOP__OP_RECV:
    io_uring_prep_recv(sqe, op->fd, op->buf, op->len, 0);
    break;
  case ALOOP__OP_SEND:
    io_uring_prep_send(sqe, op->fd, op->buf, op->len, MSG_NOSIGNAL);
    break;
  case ALOOP__OP_SENDMSG:
    io_uring_prep_sendmsg(sqe, op->fd, op->buf, MSG_NOSIGNAL);
    break;
  case ALOOP__OP_CONNECT:
    io_uring_prep_connect(sqe, op->fd, (struct sockaddr *)&op->addr, op->addrlen);
    break;
  default:
    io_uring_prep_nop(sqe);
    io_uring_sqe_set_data64(sqe, UD_IGNORE);
    return -EINVAL;
  }
  io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)op | UD_OP);
  return 0;
}

static void uring_cancel(aloop_loop *loop, void *state, struct aloop__op *op) {
  if (op->kind == ALOOP__OP_ACCEPT && cancel_waiting_accept(loop, aloop__fd_priv(loop, op->fd), op))
    return;
  struct io_uring_sqe *sqe = get_sqe(state);
  if (!sqe) { /* the op still completes by itself; only the early stop is lost */
    aloop__report(loop, -EBUSY, op->fd, "io_uring", "cannot queue a cancel request");
    return;
  }
  io_uring_prep_cancel64(sqe, (uint64_t)(uintptr_t)op | UD_OP, 0);
  io_uring_sqe_set_data64(sqe, UD_IGNORE);
}

static void uring_cancel_fd(aloop_loop *loop, void *state, int fd, uint32_t ops) {
  /* The multishot accept is cancelled by its user_data, which needs no open fd; the accept
   * operations waiting for it are answered now. */
  ops -= forget_acceptor(loop, state, aloop__fd_priv(loop, fd));
  if (!ops) return; /* nothing in the kernel: no request, no syscall */
  struct io_uring_sqe *sqe = get_sqe(state);
  if (!sqe) {
    aloop__report(loop, -EBUSY, fd, "io_uring", "cannot queue a cancel request");
    return;
  }
  io_uring_prep_cancel_fd(sqe, fd, IORING_ASYNC_CANCEL_ALL);
  io_uring_sqe_set_data64(sqe, UD_IGNORE);
  /* Now, not with the next batch: the kernel matches the fd to its file when the cancel is
   * issued, and the caller closes the fd as soon as this returns. */
  io_uring_submit(&((struct uring_state *)state)->ring);
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
    .op_kinds = ALOOP__OP_BIT(ALOOP__OP_ACCEPT) | ALOOP__OP_BIT(ALOOP__OP_RECV) |
                ALOOP__OP_BIT(ALOOP__OP_SEND) | ALOOP__OP_BIT(ALOOP__OP_SENDMSG) |
                ALOOP__OP_BIT(ALOOP__OP_CONNECT) |
                ALOOP__OP_BIT(ALOOP__OP_RECV_STREAM),
    .submit = uring_submit,
    .cancel = uring_cancel,
    .cancel_fd = uring_cancel_fd,
};
