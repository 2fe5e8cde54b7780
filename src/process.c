/* Child processes: spawn (fork, exec, and an error pipe that brings exec's failure back in
 * words), watch and reap (a waitid operation on a pidfd; SIGCHLD only where pidfds are missing),
 * and the child's pipes as pipe transports (with a protocol) or streams (for tasks). It must never
 * take SIGCHLD from the host while pidfds work, nor reap a child that is not its own. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

/* asyncio's answer for a child someone else reaped: we cannot know how it ended. */
enum { UNKNOWN_STATUS = 255 << 8 };

struct pipe_end {
  aloop_process *p;
  int fd;              /* 0, 1 or 2: the child's side */
  aloop_transport *t;  /* with a protocol, until its connection_lost */
};

struct aloop_process {
  aloop_loop *loop;
  pid_t pid;
  int pidfd;                 /* -1 when watched through SIGCHLD, or once reaped */
  struct aloop__op wait_op;  /* waitid on the pidfd: in flight while pidfd >= 0 */
  siginfo_t wait_info;
  bool pidfd_refused;        /* waitid on the pidfd failed: SIGCHLD instead */
  bool watching;             /* inside watch_child */
  bool by_sigchld;           /* on the loop's list of children watched through SIGCHLD */
  aloop_process *next_child; /* that list */
  bool exited, closed;
  int status;                /* as waitpid's, once exited */

  const aloop_process_protocol *proto; /* NULL: made by aloop_process_spawn, with streams */
  void *ctx;
  struct pipe_end pipes[3];
  int pipes_open;
  bool made;         /* connection_made has run: the protocol may hear the rest */
  bool exit_pending; /* reaped before connection_made: process_exited waits for it */
  bool lost_scheduled;

  aloop_stream *streams[3];
  aloop_future *stream_closes[3]; /* from aloop_stream_close, until done */
  int streams_closing;
  bool communicating;
  aloop_future *closed_future; /* from aloop_process_close: done just before p is freed */

  aloop_future **waiters;
  size_t nwaiters, waiters_cap;
};

/* ---- options ---------------------------------------------------------------------------------- */

static int read_options(const aloop_process_options *in, aloop_process_options *o) {
  memset(o, 0, sizeof *o);
  if (!in) return 0;
  if (in->size < sizeof(size_t)) return -EINVAL;
  memcpy(o, in, in->size < sizeof *o ? in->size : sizeof *o);
  for (int i = 0; i < 3; i++) {
    int m = o->io[i].mode;
    if (m < ALOOP_PROCESS_INHERIT || m > ALOOP_PROCESS_STDOUT) return -EINVAL;
    if (m == ALOOP_PROCESS_STDOUT && i != 2) return -EINVAL;
    if (m == ALOOP_PROCESS_FD && o->io[i].fd < 0) return -EBADF;
  }
  for (size_t i = 0; i < o->npass_fds; i++)
    if (o->pass_fds[i] < 3) return -EINVAL;
  return 0;
}

/* ---- spawning --------------------------------------------------------------------------------- */

/* What the child does, prepared by the parent: nothing in the child may allocate (another thread
 * may have held malloc's lock at fork), so every fd and number is ready before fork. */
struct plan {
  const char *const *argv;
  const aloop_process_options *o;
  int src[3];      /* the fd to become 0, 1, 2; -1: inherited; -2: stderr follows stdout */
  int parent[3];   /* the parent's end of each pipe, or -1 */
  int child_end[3];/* what the parent closes after fork: pipe ends and /dev/null */
  int max_fd;      /* for the close-on-exec sweep when close_range cannot do it */
};

/* Why the child failed, written to the error pipe. */
enum stage { STAGE_FDS, STAGE_CWD, STAGE_EXEC };
struct failure {
  int stage, err;
};

static void child_fail(int errpipe, enum stage stage) {
  struct failure f = {stage, errno};
  ssize_t r = write(errpipe, &f, sizeof f);
  (void)r;
  _exit(127);
}

static int clear_cloexec(int fd) {
  int flags = fcntl(fd, F_GETFD);
  return flags < 0 ? -1 : fcntl(fd, F_SETFD, flags & ~FD_CLOEXEC);
}

/* In the child: every fd from 3 up close-on-exec, so exec leaves exactly 0-2 and pass_fds. */
static void cloexec_from_3(int max_fd) {
  if (syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC) == 0) return;
  for (int fd = 3; fd < max_fd; fd++) {
    int flags = fcntl(fd, F_GETFD);
    if (flags >= 0 && !(flags & FD_CLOEXEC)) fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
  }
}

/* In the child, signals are blocked (fork_exec): handlers the parent installed (aloop's own
 * wake the parent's loop) must not run here, so every caught signal goes back to its default
 * before the mask is restored. Ignored ones stay ignored, except SIGPIPE, which aloop ignores in
 * the parent and the child's programs expect at its default. */
static void child_signals(const sigset_t *mask) {
  for (int sig = 1; sig < NSIG; sig++) {
    struct sigaction sa;
    if (sig == SIGKILL || sig == SIGSTOP || sigaction(sig, NULL, &sa) < 0) continue;
    if (sa.sa_handler == SIG_DFL || (sa.sa_handler == SIG_IGN && sig != SIGPIPE)) continue;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    sigaction(sig, &sa, NULL);
  }
  sigprocmask(SIG_SETMASK, mask, NULL);
}

/* In the child, between fork and exec: async-signal-safe calls only. */
static void child_run(const struct plan *pl, int errpipe, const sigset_t *mask) {
  child_signals(mask);
  int src[3] = {pl->src[0], pl->src[1], pl->src[2]};
  /* Move low sources out of the way first, so that placing one cannot clobber another. */
  for (int i = 0; i < 3; i++)
    if (src[i] >= 0 && src[i] < 3 && src[i] != i &&
        (src[i] = fcntl(src[i], F_DUPFD_CLOEXEC, 3)) < 0)
      child_fail(errpipe, STAGE_FDS);
  for (int i = 0; i < 3; i++) {
    int r = 0;
    if (src[i] == i) r = clear_cloexec(i);
    else if (src[i] >= 0) r = dup2(src[i], i);
    else if (src[i] == -2) r = dup2(1, 2);
    if (r < 0) child_fail(errpipe, STAGE_FDS);
  }
  cloexec_from_3(pl->max_fd);
  for (size_t i = 0; i < pl->o->npass_fds; i++)
    if (clear_cloexec(pl->o->pass_fds[i]) < 0) child_fail(errpipe, STAGE_FDS);
  if (pl->o->cwd && chdir(pl->o->cwd) < 0) child_fail(errpipe, STAGE_CWD);
  if (pl->o->env)
    execvpe(pl->argv[0], (char *const *)pl->argv, (char *const *)pl->o->env);
  else
    execvp(pl->argv[0], (char *const *)pl->argv);
  child_fail(errpipe, STAGE_EXEC);
}

static void close_ends(int *fds) {
  for (int i = 0; i < 3; i++)
    if (fds[i] >= 0) {
      close(fds[i]);
      fds[i] = -1;
    }
}

/* The fds for one of the child's stdio: a pipe (the child's end becomes src), /dev/null, or the
 * caller's fd. 0 or -errno. */
static int plan_stdio(struct plan *pl, int i) {
  const aloop_process_stdio *s = &pl->o->io[i];
  switch (s->mode) {
  case ALOOP_PROCESS_PIPE: {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0) return -errno;
    pl->parent[i] = i == 0 ? fds[1] : fds[0];
    pl->src[i] = pl->child_end[i] = i == 0 ? fds[0] : fds[1];
    return 0;
  }
  case ALOOP_PROCESS_DEVNULL:
    if ((pl->src[i] = pl->child_end[i] = open("/dev/null", O_RDWR | O_CLOEXEC)) < 0) return -errno;
    return 0;
  case ALOOP_PROCESS_FD: pl->src[i] = s->fd; return 0;
  case ALOOP_PROCESS_STDOUT: pl->src[i] = -2; return 0;
  default: pl->src[i] = -1; return 0;
  }
}

static int fd_ceiling(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY) return 65536;
  return rl.rlim_cur > 1 << 20 ? 1 << 20 : (int)rl.rlim_cur;
}

static const char *stage_words(int stage) {
  return stage == STAGE_CWD ? "cannot change to its directory" : stage == STAGE_FDS
                                                                   ? "cannot set up its fds"
                                                                   : "cannot run";
}

/* Fork and exec. On success *pid and the parent's pipe ends in pl->parent; on failure -errno and
 * why in `why`, with no child left behind. Waits until exec succeeded or failed. */
static int fork_exec(struct plan *pl, pid_t *pid, char *why, size_t n) {
  int errpipe[2];
  if (pipe2(errpipe, O_CLOEXEC) < 0) {
    aloop__set_why(why, n, "cannot run '%s': error pipe", pl->argv[0]);
    return -errno;
  }
  pl->max_fd = fd_ceiling();
  sigset_t all, mask;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &mask); /* no handler of ours may run in the child */
  pid_t child = fork();
  if (child == 0) child_run(pl, errpipe[1], &mask);
  int err = child < 0 ? -errno : 0;
  pthread_sigmask(SIG_SETMASK, &mask, NULL);
  close(errpipe[1]);
  close_ends(pl->child_end);
  if (err) {
    close(errpipe[0]);
    aloop__set_why(why, n, "cannot run '%s': fork", pl->argv[0]);
    return err;
  }
  struct failure f;
  ssize_t got;
  while ((got = read(errpipe[0], &f, sizeof f)) < 0 && errno == EINTR) {}
  close(errpipe[0]);
  if (got == 0) { /* closed by a successful exec */
    *pid = child;
    return 0;
  }
  while (waitpid(child, NULL, 0) < 0 && errno == EINTR) {} /* it exits at once: no zombie */
  err = got == (ssize_t)sizeof f && f.err > 0 ? -f.err : -EIO;
  if (f.stage == STAGE_CWD && got == (ssize_t)sizeof f)
    aloop__set_why(why, n, "cannot run '%s': cannot change to directory '%s': %s", pl->argv[0],
                   pl->o->cwd, strerror(-err));
  else
    aloop__set_why(why, n, "%s '%s': %s", stage_words(got == (ssize_t)sizeof f ? f.stage : 0),
                   pl->argv[0], strerror(-err));
  return err;
}

/* ---- watching and reaping --------------------------------------------------------------------- */

static void child_reaped(aloop_process *p, int status);

static int status_of(const siginfo_t *si) {
  switch (si->si_code) {
  case CLD_EXITED: return (si->si_status & 0xff) << 8;
  case CLD_DUMPED: return si->si_status | 0x80;
  default: return si->si_status; /* CLD_KILLED */
  }
}

/* The fallback: SIGCHLD says some child changed; ask each of ours. */
static void on_sigchld(aloop_loop *loop, void *arg);

static void sigchld_unlink(aloop_process *p) {
  aloop_process **pp = &p->loop->sigchld_children;
  while (*pp && *pp != p) pp = &(*pp)->next_child;
  if (*pp) *pp = p->next_child;
  p->by_sigchld = false;
  if (!p->loop->sigchld_children) aloop_remove_signal_handler(p->loop, SIGCHLD);
}

static void on_sigchld(aloop_loop *loop, void *arg) {
  (void)arg;
  for (aloop_process *p = loop->sigchld_children, *next; p; p = next) {
    next = p->next_child;
    int status;
    pid_t r = waitpid(p->pid, &status, WNOHANG);
    if (r == 0 || (r < 0 && errno == EINTR)) continue;
    sigchld_unlink(p);
    child_reaped(p, r < 0 ? UNKNOWN_STATUS : status);
  }
}

static bool sigchld_forced(void) {
  const char *w = getenv("ALOOP_PROCESS_WATCH");
  return w && strcmp(w, "sigchld") == 0;
}

static int watch_by_sigchld(aloop_process *p) {
  int err = aloop_add_signal_handler(p->loop, SIGCHLD, on_sigchld, NULL);
  if (err < 0) return err;
  p->next_child = p->loop->sigchld_children;
  p->loop->sigchld_children = p;
  p->by_sigchld = true;
  /* One look right away, for a child that exited before the handler was there. */
  if ((err = aloop_call_soon(p->loop, on_sigchld, NULL, NULL)) < 0) sigchld_unlink(p);
  return err;
}

/* The child behind the pidfd ended, or cannot be waited for through it: waitid lacks P_PIDFD
 * (Linux 5.3), or the request found no memory. Then SIGCHLD watches it, as without pidfds. */
static void child_exited(aloop_loop *loop, struct aloop__op *op, int32_t res) {
  aloop_process *p = (aloop_process *)((char *)op - offsetof(aloop_process, wait_op));
  aloop_close(loop, p->pidfd);
  p->pidfd = -1;
  if (res == 0 || res == -ECHILD) { /* ECHILD: the host reaped it (or ignores SIGCHLD) */
    child_reaped(p, res == 0 ? status_of(&p->wait_info) : UNKNOWN_STATUS);
    return;
  }
  p->pidfd_refused = true;
  if (p->watching) return; /* inside watch_child, which goes on with SIGCHLD */
  int err = watch_by_sigchld(p);
  if (err < 0) {
    aloop__report(loop, err, -1, "process", "cannot wait for pid %d any more: %s", (int)p->pid,
                  aloop_strerror(res));
    child_reaped(p, UNKNOWN_STATUS);
  }
}

/* Watch the new child: a waitid operation on its pidfd, or SIGCHLD where pidfds are missing. */
static int watch_child(aloop_process *p) {
  if (!sigchld_forced()) {
    int fd = (int)syscall(SYS_pidfd_open, p->pid, 0);
    if (fd >= 0) {
      p->pidfd = fd;
      p->wait_op = (struct aloop__op){.kind = ALOOP__OP_WAITID, .fd = fd, .buf = &p->wait_info,
                                      .done = child_exited};
      p->watching = true;
      aloop__op_start(p->loop, &p->wait_op); /* may end at once, for a child already gone */
      p->watching = false;
      if (!p->pidfd_refused) return 0;
    } else if (errno != ENOSYS && errno != EPERM) {
      return -errno; /* EPERM: a sandbox filters it */
    }
  }
  return watch_by_sigchld(p);
}

/* ---- a child started elsewhere ---------------------------------------------------------------- */

struct pidfd_wait {
  struct aloop__op op;
  aloop_future *future;
  siginfo_t info;
};

static void pidfd_waited(aloop_loop *loop, struct aloop__op *op, int32_t res) {
  (void)loop;
  struct pidfd_wait *w = (struct pidfd_wait *)op;
  int64_t outcome = res < 0 ? res : status_of(&w->info);
  aloop__future_finish(w->future, outcome, NULL);
  aloop_future_release(w->future);
  free(w);
}

static void cancel_pidfd_wait(aloop_future *f, void *arg) {
  aloop__op_cancel(aloop_future_loop(f), arg);
}

aloop_future *aloop_pidfd_wait(aloop_loop *loop, int pidfd) {
  struct pidfd_wait *w = calloc(1, sizeof *w);
  aloop_future *f = w ? aloop_future_new(loop, "pidfd_wait") : NULL;
  if (!f) {
    free(w);
    return NULL;
  }
  w->future = aloop_future_ref(f);
  w->op = (struct aloop__op){.kind = ALOOP__OP_WAITID, .fd = pidfd, .buf = &w->info,
                             .done = pidfd_waited};
  aloop__future_set_work(f, cancel_pidfd_wait, &w->op);
  aloop__op_start(loop, &w->op);
  return f;
}

/* ---- the process object ----------------------------------------------------------------------- */

/* The end of p: the close future hears the wait status (or that the child's fate is unknown). */
static void process_free(aloop_process *p) {
  if (p->closed_future) {
    aloop_future_set_result(p->closed_future, p->exited ? p->status : UNKNOWN_STATUS);
    aloop_future_release(p->closed_future);
  }
  free(p->waiters);
  free(p);
}

/* From aloop_process_spawn: freed once closed, reaped, and its streams closed. */
static void maybe_free(aloop_process *p) {
  if (!p->proto && p->closed && p->exited && !p->streams_closing) process_free(p);
}

static void call_lost(aloop_loop *loop, void *arg) {
  (void)loop;
  aloop_process *p = arg;
  if (p->proto->connection_lost) p->proto->connection_lost(p, p->ctx);
  process_free(p);
}

/* With a protocol: connection_lost once the child is reaped and every pipe closed. */
static void try_finish(aloop_process *p) {
  if (!p->made || !p->exited || p->pipes_open || p->lost_scheduled) return;
  p->lost_scheduled = true;
  if (aloop_call_soon(p->loop, call_lost, p, NULL) < 0) call_lost(p->loop, p);
}

static void child_reaped(aloop_process *p, int status) {
  p->exited = true;
  p->status = status;
  for (size_t i = 0; i < p->nwaiters; i++) {
    aloop_future_set_result(p->waiters[i], status); /* -ALOOP_EDONE if cancelled: fine */
    aloop_future_release(p->waiters[i]);
  }
  p->nwaiters = 0;
  if (p->proto) {
    /* A driver may complete the pidfd's readiness inline, before connection_made has run. */
    if (!p->made) {
      p->exit_pending = true;
      return;
    }
    if (p->proto->process_exited) p->proto->process_exited(p, p->ctx);
    try_finish(p);
  } else {
    maybe_free(p);
  }
}

/* ---- pipes with a protocol -------------------------------------------------------------------- */

static void pipe_data(aloop_transport *t, const void *data, size_t n, void *ctx) {
  (void)t;
  struct pipe_end *e = ctx;
  if (e->p->proto->pipe_data_received)
    e->p->proto->pipe_data_received(e->p, e->fd, data, n, e->p->ctx);
}

static void pipe_lost(aloop_transport *t, int err, void *ctx) {
  (void)t;
  struct pipe_end *e = ctx;
  aloop_process *p = e->p;
  e->t = NULL;
  p->pipes_open--;
  if (p->proto->pipe_connection_lost) p->proto->pipe_connection_lost(p, e->fd, err, p->ctx);
  try_finish(p);
}

static void pipe_pause(aloop_transport *t, void *ctx) {
  (void)t;
  struct pipe_end *e = ctx;
  if (e->p->proto->pause_writing) e->p->proto->pause_writing(e->p, e->p->ctx);
}

static void pipe_resume(aloop_transport *t, void *ctx) {
  (void)t;
  struct pipe_end *e = ctx;
  if (e->p->proto->resume_writing) e->p->proto->resume_writing(e->p, e->p->ctx);
}

static const aloop_protocol pipe_protocol = {.data_received = pipe_data,
                                             .connection_lost = pipe_lost,
                                             .pause_writing = pipe_pause,
                                             .resume_writing = pipe_resume};

static const aloop_process_protocol no_protocol;

/* Scheduled before the pipes' transports exist, so it runs before any of their callbacks. */
static void made(aloop_loop *loop, void *arg) {
  (void)loop;
  aloop_process *p = arg;
  p->made = true;
  if (p->proto->connection_made) p->proto->connection_made(p, p->ctx);
  if (p->exit_pending) {
    p->exit_pending = false;
    if (p->proto->process_exited) p->proto->process_exited(p, p->ctx);
  }
  try_finish(p);
}

/* Hand the parent's pipe ends to transports or streams; each takes its fd, even on failure. */
static int adopt_pipes(aloop_process *p, int *parent, size_t limit) {
  int err = 0;
  for (int i = 0; i < 3; i++) {
    int fd = parent[i];
    parent[i] = -1;
    if (fd < 0) continue;
    if (err) {
      close(fd);
      continue;
    }
    if (p->proto) {
      struct pipe_end *e = &p->pipes[i];
      *e = (struct pipe_end){p, i, NULL};
      e->t = i == 0 ? aloop_connect_write_pipe(p->loop, fd, &pipe_protocol, e)
                    : aloop_connect_read_pipe(p->loop, fd, &pipe_protocol, e);
      if (e->t) p->pipes_open++;
    } else {
      p->streams[i] = i == 0 ? aloop_open_write_pipe(p->loop, fd)
                             : aloop_open_read_pipe(p->loop, fd, limit);
    }
    if (!(p->proto ? (void *)p->pipes[i].t : (void *)p->streams[i])) err = -errno;
  }
  return err;
}

/* The spawn shared by every entry point: a future already done, with p or the error in words. */
static aloop_future *spawn(aloop_loop *loop, const char *const argv[],
                           const aloop_process_options *opts, const aloop_process_protocol *proto,
                           void *ctx) {
  aloop_future *f = aloop_future_new(loop, "process spawn");
  if (!f) return NULL;
  char why[512] = "";
  aloop_process_options o;
  int err = !argv || !argv[0] ? -EINVAL : read_options(opts, &o);
  if (err < 0) {
    aloop_future_set_error(f, err, "cannot run '%s': bad options", argv && argv[0] ? argv[0] : "");
    return f;
  }
  aloop_process *p = calloc(1, sizeof *p);
  struct plan pl = {argv, &o, {-1, -1, -1}, {-1, -1, -1}, {-1, -1, -1}, 0};
  if (!p) err = -ENOMEM;
  for (int i = 0; i < 3 && !err; i++) err = plan_stdio(&pl, i);
  if (err) aloop__set_why(why, sizeof why, "cannot run '%s': its stdio", argv[0]);
  if (!err) err = fork_exec(&pl, &p->pid, why, sizeof why);
  close_ends(pl.child_end);
  if (err) {
    close_ends(pl.parent);
    free(p);
    aloop_future_set_error(f, err, "%s", why);
    return f;
  }
  *p = (aloop_process){.loop = loop, .pid = p->pid, .pidfd = -1, .proto = proto, .ctx = ctx};
  /* connection_made first: scheduled before the pipes' transports and the watch exist. */
  if (proto && (err = aloop_call_soon(loop, made, p, NULL)) < 0) {
    close_ends(pl.parent);
    p->made = true; /* never to be: nothing need wait for it */
  }
  if (!err) err = adopt_pipes(p, pl.parent, o.limit);
  if (!err) err = watch_child(p);
  if (err) {
    /* Too late to refuse the child quietly: kill it, and let close reap it through the loop if
     * it is watched, else here. */
    kill(p->pid, SIGKILL);
    if (p->pidfd < 0 && !p->by_sigchld) {
      while (waitpid(p->pid, NULL, 0) < 0 && errno == EINTR) {}
      p->exited = true;
    }
    aloop_future_set_error(f, err, "cannot take charge of '%s' (pid %d)", argv[0], (int)p->pid);
    if (p->proto) p->proto = &no_protocol; /* the caller never hears of this process */
    aloop_future *closing = aloop_process_close(p);
    if (closing) aloop_future_release(closing);
    return f;
  }
  aloop_future_set_data(f, p, NULL);
  aloop_future_set_result(f, 0);
  return f;
}

static const char *const *shell_argv(const char *cmd, const char *argv[4]) {
  argv[0] = "/bin/sh";
  argv[1] = "-c";
  argv[2] = cmd;
  argv[3] = NULL;
  return argv;
}

aloop_future *aloop_subprocess_exec(aloop_loop *loop, const char *const argv[],
                                    const aloop_process_options *opts,
                                    const aloop_process_protocol *proto, void *ctx) {
  return spawn(loop, argv, opts, proto ? proto : &no_protocol, ctx);
}

aloop_future *aloop_subprocess_shell(aloop_loop *loop, const char *cmd,
                                     const aloop_process_options *opts,
                                     const aloop_process_protocol *proto, void *ctx) {
  const char *argv[4];
  return aloop_subprocess_exec(loop, shell_argv(cmd, argv), opts, proto, ctx);
}

aloop_future *aloop_process_spawn(aloop_loop *loop, const char *const argv[],
                                  const aloop_process_options *opts) {
  return spawn(loop, argv, opts, NULL, NULL);
}

aloop_future *aloop_process_shell(aloop_loop *loop, const char *cmd,
                                  const aloop_process_options *opts) {
  const char *argv[4];
  return spawn(loop, shell_argv(cmd, argv), opts, NULL, NULL);
}

/* ---- the process's API ------------------------------------------------------------------------ */

pid_t aloop_process_pid(const aloop_process *p) { return p->pid; }

int aloop_process_returncode(const aloop_process *p) {
  if (!p->exited) return ALOOP_PROCESS_RUNNING;
  if (WIFEXITED(p->status)) return WEXITSTATUS(p->status);
  return WIFSIGNALED(p->status) ? -WTERMSIG(p->status) : UNKNOWN_STATUS >> 8;
}

int aloop_process_send_signal(aloop_process *p, int signum) {
  if (p->exited) return -ESRCH; /* reaped: the pid may be another process's now */
  return kill(p->pid, signum) < 0 ? -errno : 0;
}

int aloop_process_terminate(aloop_process *p) { return aloop_process_send_signal(p, SIGTERM); }
int aloop_process_kill(aloop_process *p) { return aloop_process_send_signal(p, SIGKILL); }

aloop_future *aloop_process_wait(aloop_process *p) {
  aloop_future *f = aloop_future_new(p->loop, "process wait");
  if (!f) return NULL;
  if (p->exited) {
    aloop_future_set_result(f, p->status);
    return f;
  }
  if (p->nwaiters == p->waiters_cap) {
    size_t cap = p->waiters_cap ? 2 * p->waiters_cap : 4;
    aloop_future **w = realloc(p->waiters, cap * sizeof *w);
    if (!w) {
      aloop_future_release(f);
      return NULL;
    }
    p->waiters = w;
    p->waiters_cap = cap;
  }
  p->waiters[p->nwaiters++] = aloop_future_ref(f);
  return f;
}

aloop_transport *aloop_process_pipe_transport(aloop_process *p, int fd) {
  if (fd < 0 || fd > 2) return NULL;
  if (p->proto) return p->pipes[fd].t;
  return p->streams[fd] ? aloop_stream_transport(p->streams[fd]) : NULL;
}

aloop_stream *aloop_process_stdin(aloop_process *p) { return p->streams[0]; }
aloop_stream *aloop_process_stdout(aloop_process *p) { return p->streams[1]; }
aloop_stream *aloop_process_stderr(aloop_process *p) { return p->streams[2]; }

static void stream_closed(aloop_future *f, void *arg) {
  aloop_process *p = arg;
  for (int i = 0; i < 3; i++)
    if (p->stream_closes[i] == f) p->stream_closes[i] = NULL;
  aloop_future_outcome(f); /* a pipe's error at close is no news: the child is going */
  aloop_future_release(f);
  p->streams_closing--;
  maybe_free(p);
}

/* Close a stream and keep its close future until it is done, so p outlives its streams. */
static void close_stream(aloop_process *p, int i) {
  aloop_future *f = aloop_stream_close(p->streams[i]);
  p->streams[i] = NULL;
  if (!f) return; /* no memory for the future: closed all the same */
  if (aloop_future_add_done_callback(f, stream_closed, p) < 0) {
    aloop_future_release(f);
    return;
  }
  p->stream_closes[i] = f;
  p->streams_closing++;
}

aloop_future *aloop_process_close(aloop_process *p) {
  if (p->closed) return NULL;
  p->closed = true;
  p->closed_future = aloop_future_new(p->loop, "process close");
  aloop_future *f = p->closed_future ? aloop_future_ref(p->closed_future) : NULL;
  if (!p->exited) kill(p->pid, SIGKILL);
  for (int i = 0; i < 3; i++) {
    if (p->proto && p->pipes[i].t) aloop_transport_close(p->pipes[i].t);
    if (!p->proto && p->streams[i]) close_stream(p, i);
  }
  if (p->proto) try_finish(p);
  else maybe_free(p);
  return f;
}

/* ---- communicate ------------------------------------------------------------------------------ */

/* Shared by the communicate task and its two readers, which may outlive it when cancelled: the
 * last one out frees it. The caller's buffers are filled only on success. */
struct comm {
  aloop_process *p;
  int refs;
  aloop_process_output got[3]; /* [1] stdout, [2] stderr */
  size_t cap[3];
  aloop_process_output *out[3];
  aloop_stream *streams[3];
};

enum { COMM_READ = 64 * 1024 }; /* room asked of the stream per read, as its default limit */

static void comm_unref(struct comm *c) {
  if (--c->refs > 0) return;
  free(c->got[1].data);
  free(c->got[2].data);
  free(c);
}

static int64_t comm_read(struct comm *c, int i) {
  aloop_process_output *g = &c->got[i];
  for (;;) {
    if (c->cap[i] - g->len < COMM_READ) {
      size_t cap = c->cap[i] ? 2 * c->cap[i] : 2 * COMM_READ;
      char *d = realloc(g->data, cap + 1);
      if (!d) return -ENOMEM;
      g->data = d;
      c->cap[i] = cap;
    }
    int64_t n = aloop_await(aloop_stream_read(c->streams[i], g->data + g->len, c->cap[i] - g->len));
    if (n <= 0) return n;
    g->len += (size_t)n;
  }
}

static int64_t read_stdout(void *arg) {
  int64_t r = comm_read(arg, 1);
  comm_unref(arg);
  return r;
}

static int64_t read_stderr(void *arg) {
  int64_t r = comm_read(arg, 2);
  comm_unref(arg);
  return r;
}

/* Input was queued by aloop_process_communicate itself; here: let it drain (a child that stops
 * reading is not an error), end it, collect both outputs, wait. */
static int64_t comm_run(void *arg) {
  struct comm *c = arg;
  aloop_process *p = c->p;
  aloop_future *readers[2];
  size_t nreaders = 0;
  int64_t r = 0;
  for (int i = 1; i < 3; i++) {
    if (!c->streams[i]) continue;
    c->refs++;
    aloop_future *t = aloop_task_spawn(p->loop, i == 1 ? read_stdout : read_stderr, c, NULL);
    if (!t) {
      c->refs--;
      r = -ENOMEM;
      break;
    }
    readers[nreaders++] = t;
  }
  if (c->streams[0] && r == 0) {
    r = aloop_await(aloop_stream_drain(c->streams[0]));
    if (r != -ECANCELED) r = 0;
    if (r == 0) aloop_stream_write_eof(c->streams[0]);
  }
  if (r == 0 && nreaders) {
    r = aloop_await(aloop_gather(p->loop, readers, nreaders));
    if (r > 0) r = 0;
  }
  if (r == 0) r = aloop_await(aloop_process_wait(p));
  for (size_t i = 0; i < nreaders; i++) {
    if (r < 0) aloop_future_cancel(readers[i]);
    aloop_future_outcome(readers[i]); /* its error, if any, is ours already */
    aloop_future_release(readers[i]);
  }
  for (int i = 1; i < 3 && r >= 0; i++) {
    if (!c->out[i]) continue;
    if (!c->got[i].data && !(c->got[i].data = malloc(1))) r = -ENOMEM;
    else {
      c->got[i].data[c->got[i].len] = '\0';
      *c->out[i] = c->got[i];
      c->got[i] = (aloop_process_output){NULL, 0};
    }
  }
  p->communicating = false;
  comm_unref(c);
  return r;
}

aloop_future *aloop_process_communicate(aloop_process *p, const void *input, size_t n,
                                        aloop_process_output *out, aloop_process_output *err) {
  if (out) *out = (aloop_process_output){NULL, 0};
  if (err) *err = (aloop_process_output){NULL, 0};
  int e = p->proto || (n && !p->streams[0]) ? -EINVAL : p->communicating ? -EBUSY : 0;
  struct comm *c = e ? NULL : calloc(1, sizeof *c);
  if (!e && !c) e = -ENOMEM;
  if (!e && n && aloop_stream_write(p->streams[0], input, n) < 0) {
    /* stdin already closed: as a child that stopped reading, not an error */
  }
  if (e) {
    aloop_future *f = aloop_future_new(p->loop, "process communicate");
    if (f) aloop_future_set_error(f, e, "communicate with pid %d", (int)p->pid);
    return f;
  }
  *c = (struct comm){.p = p, .refs = 1, .out = {NULL, out, err},
                     .streams = {p->streams[0], p->streams[1], p->streams[2]}};
  aloop_task_options to = {.size = sizeof to, .name = "process communicate"};
  aloop_future *f = aloop_task_spawn(p->loop, comm_run, c, &to);
  if (!f) free(c);
  else p->communicating = true;
  return f;
}
