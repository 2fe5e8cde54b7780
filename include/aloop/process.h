/* Child processes, as asyncio's subprocess_exec / create_subprocess_exec. Included by aloop.h.
 *
 * One type, aloop_process, driven two ways:
 *   - with a protocol (asyncio's SubprocessProtocol): aloop_subprocess_exec / _shell;
 *     the child's pipes are pipe transports whose bytes come to the protocol;
 *   - from tasks: aloop_process_spawn / aloop_process_shell; the child's pipes are streams
 *     (aloop_process_stdin/stdout/stderr), with aloop_process_wait and aloop_process_communicate.
 *
 *   static int64_t run(void *arg) {
 *     const char *const argv[] = {"ls", "-l", NULL};
 *     aloop_process_options o = {.size = sizeof o, .io = {[1] = {ALOOP_PROCESS_PIPE}}};
 *     aloop_future *f = aloop_process_spawn(loop, argv, &o);
 *     int64_t err = aloop_await_keep(f);      // done at once
 *     aloop_process *p = aloop_future_data(f);
 *     if (err < 0)                             // "cannot run 'ls': No such file or directory"
 *       err = aloop_task_error(err, "%s", aloop_future_message(f));
 *     aloop_future_release(f);
 *     if (err < 0) return err;
 *     aloop_process_output out;
 *     int64_t status = aloop_await(aloop_process_communicate(p, NULL, 0, &out, NULL));
 *     ... out.data, out.len; free(out.data); aloop_process_returncode(p) ...
 *     aloop_await(aloop_process_close(p));    // done once its pipes are closed too
 *     return status;
 *   }
 *
 * Spawning: the child is forked and exec'd before the spawn returns (the parent waits, briefly,
 * until exec succeeded or failed), so a program that cannot run is an error with words naming it
 * ("cannot run 'nosuch': No such file or directory", -ENOENT), never a child exiting with 127.
 * The child has exactly stdin, stdout, stderr and opts->pass_fds open (every other fd is
 * close-on-exec in it, whatever the host set), the signals the parent catches at their default
 * from fork on (no handler of the parent runs in it), SIGPIPE back at its default too (aloop
 * ignores it in the parent), other ignored signals still ignored, and the parent's signal mask.
 *
 * Watching: each child is watched through a pidfd (Linux 5.3) as a reader on the loop, on every
 * driver, and reaped with waitid(P_PIDFD): the host application's SIGCHLD disposition is never
 * touched, and only aloop's own children are reaped. Where the kernel has no pidfds (ENOSYS, or
 * EPERM from a sandbox that filters pidfd_open), or with ALOOP_PROCESS_WATCH=sigchld in the
 * environment (read at each spawn, for tests), the loop instead installs a SIGCHLD handler
 * (aloop_add_signal_handler) while it has children to watch and calls waitpid(pid, WNOHANG) for
 * each of its own children when SIGCHLD arrives; the host's
 * SIGCHLD handler is then replaced for that time (restored when the last child is reaped), and a
 * host that installs its own through aloop_add_signal_handler on the same loop conflicts with it.
 * A host that reaps aloop's children itself (waitpid(-1)), or has SIGCHLD ignored (the kernel then
 * reaps every child at once), leaves aloop nothing to reap: such a child is reported as exited
 * with returncode 255, as asyncio does.
 *
 * Before aloop_free, close every process and run the loop until each has been reaped (its wait
 * future done): a child still watched is counted in aloop_get_stats' fds. */
#ifndef ALOOP_PROCESS_H
#define ALOOP_PROCESS_H

#include <limits.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct aloop_process aloop_process;

/* What the child's stdin (io[0]), stdout (io[1]) or stderr (io[2]) is. */
enum {
  ALOOP_PROCESS_INHERIT = 0, /* the parent's own (the default) */
  ALOOP_PROCESS_PIPE,        /* a pipe to the parent: a pipe transport, or a stream */
  ALOOP_PROCESS_DEVNULL,     /* /dev/null */
  ALOOP_PROCESS_FD,          /* the fd in .fd (duplicated into the child; still the caller's) */
  ALOOP_PROCESS_STDOUT,      /* stderr only: wherever stdout goes */
};

typedef struct aloop_process_stdio {
  int mode; /* ALOOP_PROCESS_* */
  int fd;   /* for ALOOP_PROCESS_FD */
} aloop_process_stdio;

typedef struct aloop_process_options {
  size_t size;                /* sizeof(aloop_process_options): lets the struct grow */
  aloop_process_stdio io[3];  /* stdin, stdout, stderr; zeroed: inherited */
  const char *const *env;     /* NULL-terminated "NAME=value" list; NULL: the parent's */
  const char *cwd;            /* the child's working directory; NULL: the parent's */
  const int *pass_fds;        /* fds (>= 3) the child keeps, at the same numbers */
  size_t npass_fds;
  size_t limit;               /* aloop_process_spawn only: the streams' limit; 0: the default */
} aloop_process_options;

/* The protocol (every member may be NULL); ctx is the pointer given with it. The order, as
 * asyncio's: connection_made first; then pipe_data_received and pipe_connection_lost for each
 * pipe, and process_exited once the child has been reaped, in the order they happen (a child may
 * exit before its last bytes are read, or leave a grandchild holding a pipe open, so
 * process_exited may come before the pipes' end); connection_lost last, once the child has been
 * reaped AND every pipe is closed. The process is freed when connection_lost returns. */
typedef struct aloop_process_protocol {
  void (*connection_made)(aloop_process *p, void *ctx);
  /* fd 1 or 2; data is lent for the call only. */
  void (*pipe_data_received)(aloop_process *p, int fd, const void *data, size_t n, void *ctx);
  /* fd 0, 1 or 2 is closed: err 0 at its end, else why (negative errno: -EPIPE for stdin when
   * the child stopped reading). */
  void (*pipe_connection_lost)(aloop_process *p, int fd, int err, void *ctx);
  void (*process_exited)(aloop_process *p, void *ctx);
  void (*connection_lost)(aloop_process *p, void *ctx);
  /* The stdin pipe's write buffer went above its high mark / back below its low mark. */
  void (*pause_writing)(aloop_process *p, void *ctx);
  void (*resume_writing)(aloop_process *p, void *ctx);
} aloop_process_protocol;

/* Run argv[0] (searched in PATH unless it has a '/') with argv, driven by proto. opts may be
 * NULL. Returns a future that is already done: outcome 0 and the aloop_process as its data (the
 * protocol's connection_made runs on the next iteration), or the error with words naming the
 * program: -ENOENT, -EACCES, -ENOEXEC as exec said, the error of chdir(opts->cwd), -EINVAL for
 * bad options, -EMFILE, -ENOMEM, -EAGAIN (fork). NULL only without memory for the future. */
ALOOP_API aloop_future *aloop_subprocess_exec(aloop_loop *loop, const char *const argv[],
                                              const aloop_process_options *opts,
                                              const aloop_process_protocol *proto, void *ctx);
/* The same for /bin/sh -c cmd. */
ALOOP_API aloop_future *aloop_subprocess_shell(aloop_loop *loop, const char *cmd,
                                               const aloop_process_options *opts,
                                               const aloop_process_protocol *proto, void *ctx);

/* For tasks: the same spawn, with a stream for each piped fd (aloop_process_stdin/stdout/stderr)
 * and no protocol. The caller owns the aloop_process in the future's data: end it with
 * aloop_process_close. */
ALOOP_API aloop_future *aloop_process_spawn(aloop_loop *loop, const char *const argv[],
                                            const aloop_process_options *opts);
ALOOP_API aloop_future *aloop_process_shell(aloop_loop *loop, const char *cmd,
                                            const aloop_process_options *opts);

ALOOP_API pid_t aloop_process_pid(const aloop_process *p);

/* asyncio's returncode: the exit status, or -N when signal N killed the child;
 * ALOOP_PROCESS_RUNNING until the child has been reaped. */
#define ALOOP_PROCESS_RUNNING INT_MIN
ALOOP_API int aloop_process_returncode(const aloop_process *p);

/* Send a signal: 0, or -ESRCH once the child has been reaped (its pid may be someone else's by
 * then, so nothing is sent), or kill(2)'s error. terminate = SIGTERM, kill = SIGKILL. */
ALOOP_API int aloop_process_send_signal(aloop_process *p, int signum);
ALOOP_API int aloop_process_terminate(aloop_process *p);
ALOOP_API int aloop_process_kill(aloop_process *p);

/* A future done when the child has been reaped. Its outcome is the wait status as waitpid(2)
 * gives it (never negative: read it with WIFEXITED, WEXITSTATUS, WTERMSIG), or -ECANCELED.
 * Any number of waits may be pending; each is the caller's to release. NULL: ENOMEM. */
ALOOP_API aloop_future *aloop_process_wait(aloop_process *p);

/* With a protocol: the transport of the child's pipe on fd 0, 1 or 2 (borrowed), or NULL if that
 * fd is not a pipe or the pipe is closed. Write the child's input with aloop_transport_write on
 * fd 0's, and end it with aloop_transport_write_eof (or _close). From aloop_process_spawn: the
 * transport under that fd's stream. */
ALOOP_API aloop_transport *aloop_process_pipe_transport(aloop_process *p, int fd);

/* From aloop_process_spawn: the stream of a piped stdin (write, drain, write_eof to end the
 * child's input), stdout or stderr (read), or NULL. Borrowed: they belong to the process and are
 * closed by aloop_process_close; never aloop_stream_close them yourself. */
ALOOP_API aloop_stream *aloop_process_stdin(aloop_process *p);
ALOOP_API aloop_stream *aloop_process_stdout(aloop_process *p);
ALOOP_API aloop_stream *aloop_process_stderr(aloop_process *p);

/* Bytes a communicate collected: data is malloc'd, followed by a NUL (not counted in len), and
 * the caller frees it; {NULL, 0} when communicate failed. */
typedef struct aloop_process_output {
  char *data;
  size_t len;
} aloop_process_output;

/* From aloop_process_spawn: write input (copied at once; n may be 0) to a piped stdin and close
 * it, read a piped stdout and stderr to their end at the same time into *out and *err (NULL:
 * read and discard), then wait for the child. Outcome: the wait status, as aloop_process_wait's;
 * a child that stops reading its input is not an error (as asyncio, the rest is dropped).
 * -EINVAL for input without a piped stdin or a process with a protocol, -EBUSY while another
 * communicate or a read on the streams is in progress. Cancelling it stops the reading and
 * writing, not the child. */
ALOOP_API aloop_future *aloop_process_communicate(aloop_process *p, const void *input, size_t n,
                                                  aloop_process_output *out,
                                                  aloop_process_output *err);

/* For a child started some other way (fork(2), posix_spawn, a language runtime's subprocess
 * module): a future done when the child behind pidfd (from pidfd_open(2); it stays the caller's,
 * open until the future is done, then closed with aloop_close) has exited, reaping it as waitid(P_PIDFD, WEXITED) does. The
 * same operation that watches aloop's own children: io_uring hands the wait to the kernel (6.7+),
 * select and libev wait for the pidfd to become readable. Outcome: the wait status, as
 * aloop_process_wait's; -ECHILD if someone else reaped the child (or it is not this process's);
 * -EINVAL where waitid lacks P_PIDFD (Linux 5.3); -ECANCELED. NULL: ENOMEM. */
ALOOP_API aloop_future *aloop_pidfd_wait(aloop_loop *loop, int pidfd);

/* End the process object. If the child is still running it is killed (SIGKILL), as asyncio's
 * subprocess transport does on close; it is reaped all the same, and pending waits complete.
 * With a protocol: the pipes are closed (stdin's queue flushed first), and connection_lost
 * follows once the child has been reaped, which frees p. From aloop_process_spawn: the streams
 * are closed, and p is freed once the child has been reaped and the streams are closed. Either
 * way, do not use p after this call. Returns a future done when p is freed (outcome: the wait
 * status), which the caller releases (it may at once); NULL if p was closed already or without
 * memory for it (p is closed all the same). */
ALOOP_API aloop_future *aloop_process_close(aloop_process *p);

#ifdef __cplusplus
}
#endif
#endif
