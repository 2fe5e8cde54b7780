/* Signal handlers that run on the loop. The process-wide part is unavoidable (a signal disposition
 * belongs to the process): which loop owns each signal and whether it arrived. The handler only sets
 * a flag and wakes that loop; the user's callback runs later, on the loop thread. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"

static _Atomic(aloop_loop *) owner[NSIG];
/* Atomic, not just volatile: the loop clears wake_pending and then reads these on another thread,
 * and only sequentially consistent operations on both sides (here and in wakeup.c) keep that read
 * from being ordered before the clear, which would lose a signal until the next wake-up. */
static atomic_int caught[NSIG];
static pthread_mutex_t owner_lock = PTHREAD_MUTEX_INITIALIZER;

static void on_signal(int signum) {
  aloop_loop *loop = atomic_load(&owner[signum]);
  caught[signum] = 1;
  if (loop) aloop__wake(loop);
}

static int valid_signal(int signum) {
  return signum > 0 && signum < NSIG && signum != SIGKILL && signum != SIGSTOP;
}

int aloop_add_signal_handler(aloop_loop *loop, int signum, aloop_cb cb, void *arg) {
  if (!valid_signal(signum) || !cb) return -EINVAL;
  if (!loop->signals && !(loop->signals = calloc(NSIG, sizeof *loop->signals))) return -ENOMEM;
  struct aloop__signal *s = &loop->signals[signum];
  if (s->installed) { /* replacing the callback touches nothing process-wide */
    s->cb = cb;
    s->arg = arg;
    return 0;
  }
  pthread_mutex_lock(&owner_lock);
  int err = 0;
  if (atomic_load(&owner[signum])) {
    err = -ALOOP_ESIGBUSY;
  } else {
    s->cb = cb;
    s->arg = arg;
    atomic_store(&owner[signum], loop);
    caught[signum] = 0;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART; /* the loop sees the signal through its wake-up, not through EINTR */
    sigfillset(&sa.sa_mask);
    if (sigaction(signum, &sa, &s->previous) < 0) {
      err = -errno;
      atomic_store(&owner[signum], NULL);
    } else {
      s->installed = true;
      loop->nsignals++;
    }
  }
  pthread_mutex_unlock(&owner_lock);
  return err;
}

int aloop_remove_signal_handler(aloop_loop *loop, int signum) {
  if (!valid_signal(signum) || !loop->signals || !loop->signals[signum].installed) return 0;
  struct aloop__signal *s = &loop->signals[signum];
  pthread_mutex_lock(&owner_lock);
  sigaction(signum, &s->previous, NULL);
  atomic_store(&owner[signum], NULL);
  pthread_mutex_unlock(&owner_lock);
  s->installed = false;
  s->cb = NULL;
  loop->nsignals--;
  return 1;
}

/* Runs from the ready queue, so a handler removed in between is not called. */
static void run_handler(aloop_loop *loop, void *arg) {
  struct aloop__signal *s = &loop->signals[(intptr_t)arg];
  if (s->installed) s->cb(loop, s->arg);
}

void aloop__signals_dispatch(aloop_loop *loop) {
  if (!loop->nsignals) return;
  for (int signum = 1; signum < NSIG; signum++) {
    struct aloop__signal *s = &loop->signals[signum];
    if (!s->installed || !caught[signum]) continue;
    caught[signum] = 0;
    if (aloop_call_soon(loop, run_handler, (void *)(intptr_t)signum, NULL) < 0) {
      caught[signum] = 1; /* try again on the next wake-up */
      aloop__wake(loop);
    }
  }
}

void aloop__signals_fini(aloop_loop *loop) {
  if (!loop->signals) return;
  for (int signum = 1; signum < NSIG; signum++) aloop_remove_signal_handler(loop, signum);
  free(loop->signals);
  loop->signals = NULL;
}
