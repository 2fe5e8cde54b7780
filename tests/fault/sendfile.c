/* A file sent over a socketpair with aloop_transport_sendfile, natively and by the copy
 * (ALOOP_SENDFILE=copy: its buffer and the write queue's chunks are allocations too), with every
 * allocation failing in turn: the sendfile fails with -ENOMEM or the connection goes, and nothing
 * is left behind. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "scenarios.h"

enum { FILE_BYTES = 300 * 1024 }; /* more than a socket buffer: the transfer waits on the peer */

static unsigned char file_byte(size_t i) { return (unsigned char)(i * 11 + 3); }

struct end {
  int file;
  size_t got;
  int64_t outcome;
  bool made, lost, sent;
};
static struct end ends[2]; /* [0] sends the file, [1] receives it */
static int created, lost_count;
static bool all_lost;

static void file_sent(aloop_future *f, void *arg) {
  struct end *e = arg;
  e->outcome = aloop_future_outcome(f);
  e->sent = true;
  fault_after("sendfile", e->outcome);
}

static void sender_made(aloop_transport *t, void *ctx) {
  struct end *e = ctx;
  e->made = true;
  aloop_future *f = aloop_transport_sendfile(t, e->file, 0, 0);
  if (!fault_got("aloop_transport_sendfile", f)) {
    aloop_transport_abort(t);
    return;
  }
  if (aloop_future_add_done_callback(f, file_sent, e) < 0) {
    fault_saw("add_done_callback", -ENOMEM);
    aloop_future_cancel(f);
  }
  aloop_future_release(f);
  aloop_transport_close(t); /* after the file, as queued bytes */
}

static void received(aloop_transport *t, const void *data, size_t n, void *ctx) {
  struct end *e = ctx;
  const unsigned char *p = data;
  for (size_t i = 0; i < n; i++)
    if (e->got + i >= FILE_BYTES || p[i] != file_byte(e->got + i)) {
      fault_violation("the file arrived wrong at byte %zu", e->got + i);
      aloop_transport_abort(t);
      return;
    }
  e->got += n;
}

static void made(aloop_transport *t, void *ctx) {
  (void)t;
  ((struct end *)ctx)->made = true;
}

static void end_lost(aloop_transport *t, int err, void *ctx) {
  (void)t;
  struct end *e = ctx;
  if (e->lost) fault_violation("connection_lost twice");
  e->lost = true;
  fault_after("connection_lost", err);
  if (++lost_count == created) all_lost = true;
}

static const aloop_protocol sender = {.connection_made = sender_made, .connection_lost = end_lost};
static const aloop_protocol receiver = {.connection_made = made, .data_received = received,
                                        .connection_lost = end_lost};

static void send_once(int file) {
  memset(ends, 0, sizeof ends);
  created = lost_count = 0;
  all_lost = false;
  ends[0].file = file;
  aloop_loop *loop = fault_loop();
  if (!loop) {
    fault_current->complete = false;
    return;
  }
  int sp[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sp) < 0) {
    fault_violation("socketpair: %s", strerror(errno));
    fault_current->complete = false;
    fault_free_loop(loop);
    return;
  }
  const aloop_protocol *protos[2] = {&sender, &receiver};
  aloop_transport *t[2];
  for (int i = 0; i < 2; i++) {
    t[i] = aloop_transport_new(loop, sp[i], protos[i], &ends[i]); /* owns sp[i], even on failure */
    if (fault_got("aloop_transport_new", t[i])) created++;
  }
  if (created) fault_run_until(loop, &all_lost, "the file's connections");
  if (ends[0].made && !ends[0].sent && ends[0].lost && !fault_current->enomem)
    fault_violation("the sendfile's future never completed");
  if (ends[0].sent && ends[0].outcome >= 0 && ends[0].outcome != FILE_BYTES)
    fault_violation("sendfile sent %lld of %d bytes", (long long)ends[0].outcome, FILE_BYTES);
  bool whole = created == 2 && ends[0].outcome == FILE_BYTES && ends[1].got == FILE_BYTES;
  fault_current->complete = fault_current->complete && whole;
  fault_free_loop(loop);
}

void scenario_sendfile(void) {
  char path[] = "/tmp/aloop-fault-sendfile-XXXXXX";
  int file = mkstemp(path);
  if (file < 0) {
    fault_violation("mkstemp: %s", strerror(errno));
    return;
  }
  unlink(path);
  static unsigned char bytes[FILE_BYTES];
  for (size_t i = 0; i < FILE_BYTES; i++) bytes[i] = file_byte(i);
  if (write(file, bytes, FILE_BYTES) != FILE_BYTES) fault_violation("cannot write the file");
  fault_current->complete = true;
  /* Replaced, never unset: adding the variable again would grow environ, an allocation that
   * stays (the warm-up run has made both strings already). */
  setenv("ALOOP_SENDFILE", "native", 1);
  send_once(file);
  setenv("ALOOP_SENDFILE", "copy", 1);
  send_once(file);
  setenv("ALOOP_SENDFILE", "native", 1);
  close(file);
}
