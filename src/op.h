/* Operations: the seam between the layers above (socket ops, transports, servers) and the drivers.
 * An operation is one accept, recv, recvmsg, send, sendmsg, connect or waitid on an fd, or one
 * file operation (open, read, write, fsync, statx, close). aloop__op_start() is the only place
 * that decides how it is carried out: a completion driver (io_uring) whose op_kinds include the
 * kind completes it in the kernel; otherwise the core tries the syscall at once and, if the socket
 * is not ready, parks the operation on the fd and retries it on readiness (as asyncio's selector
 * loop does). A file operation has no readiness to wait for (a regular file is always "ready",
 * and its read may still block on the disk): without a driver that completes it, the core runs
 * its blocking syscall on the executor. The fd's interest follows its parked operations, through the core's change list, so
 * a connection that parks its next operation in the same iteration as the last one completed
 * keeps its registration without a single driver call. */
#ifndef ALOOP_OP_H
#define ALOOP_OP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>

#ifndef P_PIDFD
#define P_PIDFD 3 /* glibc before 2.36 lacks the name; the kernel's value (linux/wait.h) */
#endif

typedef struct aloop_loop aloop_loop;
struct statx;
struct aloop__job;

enum aloop__op_kind {
  ALOOP__OP_ACCEPT,
  ALOOP__OP_RECV,
  ALOOP__OP_SEND,
  ALOOP__OP_CONNECT,
  /* Receive again and again until stopped: each chunk arrives in a buffer the provider owns (the
   * loop's read buffer, or one of io_uring's provided buffers), valid only during `done`, with
   * op->more set; the last call has more == false (end of stream, an error, or -ECANCELED). */
  ALOOP__OP_RECV_STREAM,
  /* sendmsg(2): buf is the caller's struct msghdr, so several queued buffers go out as one
   * request (a transport's write queue), or one datagram to the address in its msg_name. */
  ALOOP__OP_SENDMSG,
  /* recvmsg(2) of one datagram into buf (len bytes): the result is its length (0 is an empty
   * datagram, never an end of stream), the sender's address lands in addr/addrlen, and
   * `truncated` says it was longer than len (the rest is lost, as recvfrom(2) does). */
  ALOOP__OP_RECVMSG,
  /* Datagrams again and again until stopped, as RECV_STREAM for streams: each one arrives in a
   * buffer the provider owns, valid only during `done`, with its sender in addr/addrlen and
   * op->more set. Datagrams longer than ALOOP__DATAGRAM_MAX come with `truncated` set. Any
   * error ends the operation (more == false): a datagram socket's errors (an ICMP refusal) are
   * news for the consumer, which starts it again. */
  ALOOP__OP_RECVMSG_STREAM,
  /* Wait for the child behind the pidfd `fd` to end, and reap it: buf is a siginfo_t that gets
   * waitid(2)'s answer; the result is 0, or -ECHILD when someone else reaped it, or -EINVAL where
   * waitid lacks P_PIDFD (Linux 5.3). Readiness drivers wait for the pidfd to become readable;
   * io_uring (6.7+) has the kernel wait. */
  ALOOP__OP_WAITID,
  /* Send up to len bytes of a regular file to the socket fd: buf is a struct aloop__sendfile
   * (which file, from where). The result is the count sent, 0 at the end of the file. Readiness
   * drivers call sendfile(2); io_uring splices file -> pipe -> socket. */
  ALOOP__OP_SENDFILE,
  /* File operations (see file_args), last: aloop__op_is_file counts on it. fd is the file, or AT_FDCWD for OPEN and for STATX of a
   * path. READ and WRITE take buf = an array of len struct iovec: one (op->iov) for a plain
   * read, several for readv. Results are those of the syscalls: an fd, a count, or 0. */
  ALOOP__OP_FILE_OPEN,  /* openat(AT_FDCWD, buf, flags, mode) */
  ALOOP__OP_FILE_READ,  /* preadv(fd, buf, len, offset), or readv at the file position */
  ALOOP__OP_FILE_WRITE, /* pwritev(fd, buf, len, offset), or writev at the file position */
  ALOOP__OP_FILE_FSYNC, /* fsync(fd), or fdatasync with flags ALOOP__FSYNC_DATA */
  ALOOP__OP_FILE_STATX, /* statx(fd, buf, flags, STATX_BASIC_STATS, stx) */
  ALOOP__OP_FILE_CLOSE, /* close(fd) */
};
#define ALOOP__OP_FIRST_FILE ALOOP__OP_FILE_OPEN
#define ALOOP__FSYNC_DATA 1 /* file_args.flags of FILE_FSYNC: data only (fdatasync) */

static inline bool aloop__op_is_file(unsigned kind) {
  return kind >= ALOOP__OP_FIRST_FILE && kind <= ALOOP__OP_FILE_CLOSE;
}
#define ALOOP__OP_BIT(kind) (1u << (kind))

/* The largest datagram RECVMSG_STREAM delivers whole: 64 KiB holds any UDP payload over IPv4
 * (65,507 bytes) or IPv6 without jumbograms (65,527); only Unix datagrams can be longer. */
#define ALOOP__DATAGRAM_MAX (64 * 1024)
/* Datagrams RECVMSG_STREAM reads per readiness wake-up at most, so that one busy socket cannot
 * starve the other fds of the loop; the rest wait for the next iteration. */
#define ALOOP__DATAGRAM_BATCH 64

/* OP_OFFLOADED: a file operation on the executor (cancelling it drops it if no thread took it
 * yet; one that runs is left to finish). */
enum aloop__op_state { OP_IDLE, OP_PARKED, OP_SUBMITTED, OP_CANCELLING, OP_OFFLOADED };
enum aloop__file_kind { ALOOP__FILE_NONE, ALOOP__FILE_PIPE, ALOOP__FILE_OTHER };

struct aloop__op {
  uint8_t kind, state;
  bool more;                     /* RECV_STREAM: more completions follow this one */
  /* RECV_STREAM on a completion driver: one chunk per request, not a multishot receive, so that
   * no more than one chunk arrives after the consumer stops reading (a multishot one goes on
   * filling provided buffers from the socket until its cancel reaches the kernel). The consumer
   * may change it in `done`; the driver reads it whenever it re-arms. */
  bool bounded;
  /* RECV_STREAM and SENDMSG on a pipe, FIFO or character device: read(2) and writev(2) with
   * msg_iov, not recv and sendmsg (ALOOP__FILE_PIPE: a FIFO, which a completion driver can read
   * and write natively; ALOOP__FILE_OTHER: a tty or the like, which it leaves to readiness). */
  uint8_t file;
  int fd;
  void *buf;                     /* recv, send */
  size_t len;                    /* RECV_STREAM: at most this much per chunk (0: a whole buffer) */
  /* RECV_STREAM, optional: asked for len right before each read is made (readiness) or handed to
   * the kernel (completion): a read may be made long after it was started, and the consumer's
   * room changes in between (a task handed bytes waits again with a bigger buffer). */
  size_t (*room)(struct aloop__op *op);
  struct sockaddr_storage addr;  /* accept: the peer; connect: the destination; recvmsg: the
                                    sender */
  socklen_t addrlen;
  bool truncated;                /* RECVMSG, RECVMSG_STREAM: the datagram was cut short */
  /* RECVMSG, RECVMSG_STREAM: the request's header, for a completion driver that hands the kernel
   * a struct msghdr it fills in later (aloop__op_recvmsg_header). */
  struct msghdr msg;
  struct iovec iov;
  /* Called exactly once per start, with the syscall's result or a negative errno (-ECANCELED
   * after a cancel that won the race). May be called from inside aloop__op_start. */
  void (*done)(aloop_loop *loop, struct aloop__op *op, int32_t res);
  struct aloop__op *next;        /* the fd's parked queue */
  /* FILE_*: where to read or write (>= 0, or -1: at the file position, as read(2); pipes have no
   * other), open's and statx's flags, open's mode, statx's answer; and the executor's job while
   * the core runs the operation there (OP_OFFLOADED). */
  struct {
    int64_t offset;
    int flags;
    unsigned mode;
    struct statx *stx;
    struct aloop__job *job;
  } file_args;
};

/* Point op->msg at op->addr (the sender goes there) and at len bytes of buf (buf NULL: a
 * provided buffer the kernel picks), with no control data. */
static inline void aloop__op_recvmsg_header(struct aloop__op *op, void *buf, size_t len) {
  op->iov = (struct iovec){buf, len};
  op->msg = (struct msghdr){.msg_name = &op->addr, .msg_namelen = sizeof op->addr,
                            .msg_iov = buf ? &op->iov : NULL, .msg_iovlen = buf ? 1 : 0};
}

struct aloop__op_queue {
  struct aloop__op *head, **tail;
};

/* ALOOP__OP_SENDFILE's buf. The caller sets fd and offset (and moves offset on by each result:
 * the file's own position is never used or changed). `splice` belongs to a completion driver that
 * moves the bytes through a pipe of the transfer's own (made on first use, so no chunk's bytes
 * mix with another transfer's), which aloop__sendfile_release closes once no operation of the
 * transfer is in flight. */
struct aloop__sendfile {
  int fd;
  int64_t offset;
  struct {
    int pipe[2];            /* -1: none yet */
    uint32_t cap;           /* the pipe's size */
    uint32_t piped, sent;   /* this operation's bytes in the pipe, and sent on */
    int32_t err;
    uint8_t pending, stage; /* requests in flight, and what the first of them is */
    bool eof, again;
  } splice;
};
void aloop__sendfile_init(struct aloop__sendfile *sf, int fd, int64_t offset);
void aloop__sendfile_release(struct aloop__sendfile *sf);
/* Writes with no MSG_NOSIGNAL (write(2) to a pipe, sendfile(2), splice(2)) raise SIGPIPE when the
 * reader is gone: the first such user calls this (see op.c). */
void aloop__ignore_sigpipe(void);

/* Start op (kind, fd and the kind's fields set, done set); done will be called. A completion driver
 * may decline a kind at run time (-EOPNOTSUPP from submit): the core then performs it itself. */
void aloop__op_start(aloop_loop *loop, struct aloop__op *op);
/* Whether the driver completes `kind` itself. For a layer that would otherwise try the syscall
 * before starting an operation (the transport's first send): with a completion driver the
 * operation rides the next submission batch instead, which costs no syscall of its own. */
bool aloop__op_native(const aloop_loop *loop, enum aloop__op_kind kind);
/* Ask op to stop. done is still called exactly once: at once for a parked op, when the kernel
 * answers for a submitted one. Nothing happens if op is idle or already being cancelled. */
void aloop__op_cancel(aloop_loop *loop, struct aloop__op *op);

/* For the core's fd dispatch: run the ops parked on fd for `revents` (one direction). */
struct aloop__fd;
void aloop__ops_ready(aloop_loop *loop, int fd, struct aloop__fd *f, unsigned revents);
/* fd went bad: fail every parked op with err. */
void aloop__ops_fail(aloop_loop *loop, int fd, struct aloop__fd *f, int err);

/* Cancel every native operation in flight on fd (aloop_close). */
void aloop__ops_cancel_native(aloop_loop *loop, int fd);

/* Completion in, from a completion driver. */
void aloop__op_done(aloop_loop *loop, struct aloop__op *op, int32_t res);

#endif
