/* Streams: a protocol over the transport that buffers what arrives and completes one waiting read
 * at a time (asyncio's StreamReader, StreamReaderProtocol and StreamWriter in one object). It never
 * drops or truncates a byte: a read that cannot be satisfied fails and leaves the bytes buffered.
 * The buffer is bounded: at the limit the transport stops reading until the task catches up. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core.h"

enum read_kind { R_NONE, R_SOME, R_EXACTLY, R_UNTIL, R_LINE };

struct aloop_stream {
  aloop_loop *loop;
  aloop_transport *t;        /* NULL once the connection is lost */
  unsigned char *buf;        /* buffered bytes: buf[head .. head + len) */
  size_t head, len, cap, limit;
  size_t scanned;            /* readuntil: bytes from head already searched for the separator */
  bool eof, lost, reading_paused, write_paused, user_closed;
  bool into_reader;          /* the transport's next bytes go straight to the waiting read */
  int err;                   /* why the connection was lost, if it failed */
  struct {                   /* the one waiting read */
    uint8_t kind;
    aloop_future *future;
    unsigned char *dst;
    size_t n;                /* bytes wanted (read, readexactly) or buffer capacity (readuntil) */
    unsigned char sep[ALOOP_STREAM_SEPARATOR_MAX];
    size_t seplen;
  } rd;
  aloop_future **drains;     /* drain() calls waiting for resume_writing */
  size_t ndrains, drains_cap;
  aloop_future *closed;      /* from aloop_stream_close: done at connection_lost */
  int refs;                  /* the transport's, the owner's, and a server task's */
  aloop_sockaddr peer;
  aloop_stream_fn client;    /* server side: the connection's task */
  void *client_arg;
  aloop_server *server;      /* held while the task runs: wait_closed waits for it too */
};

static aloop_stream *stream_new(aloop_loop *loop, size_t limit, int refs) {
  aloop_stream *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  s->loop = loop;
  s->limit = limit ? limit : ALOOP_STREAM_LIMIT_DEFAULT;
  s->refs = refs;
  return s;
}

static void unref(aloop_stream *s) {
  if (--s->refs > 0) return;
  free(s->buf);
  free(s->drains);
  free(s);
}

/* ---- the read buffer ------------------------------------------------------------------------------ */

/* Room for at least `need` more bytes after the buffered ones: moved to the front first, then
 * grown from 4 KiB straight to the limit (steps in between leave freed blocks behind that a
 * thousand connections growing at once cannot reuse), never past it unless `need` itself goes
 * past it (a readexactly longer than the limit). */
static int reserve(aloop_stream *s, size_t need) {
  if (s->cap - s->head - s->len >= need) return 0;
  if (s->head) { /* head > 0: buf exists */
    memmove(s->buf, s->buf + s->head, s->len);
    s->head = 0;
    if (s->cap - s->len >= need) return 0;
  }
  size_t cap = s->cap ? s->limit : 4096; /* small while small; past that, the limit at once */
  if (cap > s->limit) cap = s->limit;
  if (cap < s->len + need) cap = s->len + need;
  unsigned char *b = realloc(s->buf, cap);
  if (!b) return -ENOMEM;
  s->buf = b;
  s->cap = cap;
  return 0;
}

/* n may be 0 with nothing buffered (buf NULL) or no destination (a read of 0 bytes): memcpy's
 * arguments must be valid pointers even then. */
static void take(aloop_stream *s, void *dst, size_t n) {
  if (n) memcpy(dst, s->buf + s->head, n);
  s->head += n;
  s->len -= n;
  s->scanned = 0;
  if (!s->len) s->head = 0;
}

/* Reading stops at the limit and resumes at half of it; a read still waiting after what is
 * buffered was offered to it (a readexactly longer than that, a line not complete yet) always
 * lets reading go on. (asyncio stops at twice the limit: here a line may be as long as the limit
 * and no longer, so bytes past it are of no use to a waiting readline, and a client that never
 * reads costs one limit of buffer, not two.) */
static void flow(aloop_stream *s) {
  if (!s->t) return;
  bool needs_more = s->rd.kind != R_NONE;
  if (!s->reading_paused && s->len >= s->limit && !needs_more) {
    s->reading_paused = true;
    aloop_transport_pause_reading(s->t);
  } else if (s->reading_paused && (s->len <= s->limit / 2 || needs_more)) {
    s->reading_paused = false;
    aloop_transport_resume_reading(s->t);
  }
}

/* ---- completing the waiting read -------------------------------------------------------------------- */

static bool ended(const aloop_stream *s) { return s->eof || s->lost; }

/* The waiting read's outcome if it can be given now (true), with a message for errors. */
static bool try_until(aloop_stream *s, int64_t *out, char *msg, size_t msgn) {
  size_t limit = s->rd.n < s->limit ? s->rd.n : s->limit, seplen = s->rd.seplen;
  size_t from = s->scanned >= seplen ? s->scanned - (seplen - 1) : 0;
  const unsigned char *base = s->buf + s->head;
  const unsigned char *hit = s->len > from ? memmem(base + from, s->len - from, s->rd.sep, seplen)
                                           : NULL;
  if (hit) {
    size_t total = (size_t)(hit - base) + seplen;
    if (total > limit) {
      *out = -ALOOP_ELIMIT;
      snprintf(msg, msgn, "line of %zu bytes, over the limit of %zu", total, limit);
      return true;
    }
    take(s, s->rd.dst, total);
    if (total < s->rd.n) s->rd.dst[total] = 0;
    *out = (int64_t)total;
    return true;
  }
  s->scanned = s->len;
  if (s->len >= limit) {
    *out = -ALOOP_ELIMIT;
    snprintf(msg, msgn, "no line end in the first %zu bytes (the limit)", limit);
    return true;
  }
  if (!ended(s)) return false;
  if (s->err) {
    *out = s->err;
  } else if (s->rd.kind == R_LINE) { /* the last line, unterminated, then 0 */
    *out = (int64_t)s->len;
    take(s, s->rd.dst, s->len);
    if ((size_t)*out < s->rd.n) s->rd.dst[*out] = 0;
  } else {
    *out = -ALOOP_EINCOMPLETE;
    snprintf(msg, msgn, "end of stream after %zu bytes without the separator", s->len);
  }
  return true;
}

static bool try_read(aloop_stream *s, int64_t *out, char *msg, size_t msgn) {
  switch (s->rd.kind) {
  case R_SOME:
    if (s->len || !s->rd.n) { /* a read of 0 bytes is answered at once, as asyncio's */
      size_t k = s->len < s->rd.n ? s->len : s->rd.n;
      take(s, s->rd.dst, k);
      *out = (int64_t)k;
      return true;
    }
    if (!ended(s)) return false;
    *out = s->err;
    return true;
  case R_EXACTLY:
    if (s->len >= s->rd.n) {
      take(s, s->rd.dst, s->rd.n);
      *out = (int64_t)s->rd.n;
      return true;
    }
    if (!ended(s)) return false;
    *out = s->err ? s->err : -ALOOP_EINCOMPLETE;
    if (!s->err) snprintf(msg, msgn, "end of stream after %zu of %zu bytes", s->len, s->rd.n);
    return true;
  default:
    return try_until(s, out, msg, msgn);
  }
}

static void complete_read(aloop_stream *s, int64_t outcome, const char *msg) {
  aloop_future *f = s->rd.future;
  s->rd.kind = R_NONE;
  s->rd.future = NULL;
  aloop__future_finish(f, outcome, msg);
  aloop_future_release(f);
}

static void satisfy(aloop_stream *s) {
  int64_t outcome;
  char msg[128] = "";
  if (s->rd.kind != R_NONE && try_read(s, &outcome, msg, sizeof msg))
    complete_read(s, outcome, msg[0] ? msg : NULL);
  flow(s);
}

static void cancel_read(aloop_future *f, void *arg) {
  aloop_stream *s = arg;
  s->rd.kind = R_NONE;
  s->rd.future = NULL;
  aloop__future_finish(f, -ECANCELED, NULL);
  aloop_future_release(f);
  flow(s);
}

static aloop_future *start_read(aloop_stream *s, enum read_kind kind, void *dst, size_t n) {
  aloop_future *f = aloop_future_new(s->loop, "stream read");
  if (!f) return NULL;
  if (s->rd.kind != R_NONE) {
    aloop_future_set_error(f, -EBUSY, "another read is already waiting on this stream");
    return f;
  }
  s->rd.kind = (uint8_t)kind;
  /* The scan position belongs to one read: an earlier readuntil that was cancelled, failed or
   * looked for another separator must not make this one skip bytes. */
  s->scanned = 0;
  s->rd.future = aloop_future_ref(f);
  s->rd.dst = dst;
  s->rd.n = n;
  aloop__future_set_work(f, cancel_read, s);
  satisfy(s);
  return f;
}

aloop_future *aloop_stream_read(aloop_stream *s, void *buf, size_t n) {
  return start_read(s, R_SOME, buf, n);
}

aloop_future *aloop_stream_readexactly(aloop_stream *s, void *buf, size_t n) {
  return start_read(s, R_EXACTLY, buf, n);
}

aloop_future *aloop_stream_readuntil(aloop_stream *s, const void *sep, size_t seplen, void *buf,
                                     size_t cap) {
  if (s->rd.kind != R_NONE) return start_read(s, R_UNTIL, NULL, 0); /* answers -EBUSY */
  if (!seplen || seplen > ALOOP_STREAM_SEPARATOR_MAX || !cap) {
    aloop_future *f = aloop_future_new(s->loop, "stream read");
    if (f) aloop_future_set_error(f, -EINVAL, "readuntil needs a separator of 1 to %d bytes and a buffer",
                                  ALOOP_STREAM_SEPARATOR_MAX);
    return f;
  }
  memcpy(s->rd.sep, sep, seplen);
  s->rd.seplen = seplen;
  return start_read(s, R_UNTIL, buf, cap);
}

aloop_future *aloop_stream_readline(aloop_stream *s, void *buf, size_t cap) {
  if (s->rd.kind == R_NONE) {
    s->rd.sep[0] = '\n';
    s->rd.seplen = 1;
  }
  return start_read(s, R_LINE, buf, cap);
}

bool aloop_stream_at_eof(const aloop_stream *s) { return ended(s) && !s->len; }
size_t aloop_stream_buffered(const aloop_stream *s) { return s->len; }

/* ---- the protocol --------------------------------------------------------------------------------- */

/* The transport reads into the stream (a buffered protocol): into a waiting read's own buffer
 * when nothing is buffered before it (no copy in between), else into the room below the limit.
 * A reader that stops therefore holds its limit, not its limit and one read more. */
static void *stream_get_buffer(aloop_transport *t, size_t sizehint, size_t *n, void *ctx) {
  (void)t;
  aloop_stream *s = ctx;
  s->into_reader = s->rd.kind == R_SOME && !s->len && s->rd.n;
  if (s->into_reader) {
    *n = s->rd.n;
    return s->rd.dst;
  }
  size_t want = sizehint ? sizehint : 1;
  if (s->len < s->limit && s->limit - s->len < want) want = s->limit - s->len;
  /* Grow only for a read worth making: an idle connection keeps a small buffer. */
  if (reserve(s, want < 4096 ? want : 4096) < 0) return NULL;
  size_t room = s->cap - s->head - s->len;
  *n = room < want ? room : want;
  return s->buf + s->head + s->len;
}

static void stream_buffer_updated(aloop_transport *t, size_t n, void *ctx) {
  (void)t;
  aloop_stream *s = ctx;
  if (s->into_reader) {
    s->into_reader = false;
    complete_read(s, (int64_t)n, NULL);
  } else {
    s->len += n;
  }
  satisfy(s);
}

static bool stream_eof(aloop_transport *t, void *ctx) {
  (void)t;
  aloop_stream *s = ctx;
  s->eof = true;
  satisfy(s);
  return true; /* half-closed: the task may still write (asyncio's StreamReaderProtocol) */
}

static void finish_drains(aloop_stream *s, int64_t outcome) {
  for (size_t i = 0; i < s->ndrains; i++) {
    aloop__future_finish(s->drains[i], outcome, NULL);
    aloop_future_release(s->drains[i]);
  }
  s->ndrains = 0;
}

static void stream_pause_writing(aloop_transport *t, void *ctx) {
  (void)t;
  ((aloop_stream *)ctx)->write_paused = true;
}

static void stream_resume_writing(aloop_transport *t, void *ctx) {
  (void)t;
  aloop_stream *s = ctx;
  s->write_paused = false;
  finish_drains(s, 0);
}

static void finish_closed(aloop_stream *s) {
  aloop__future_finish(s->closed, s->err, NULL);
  aloop_future_outcome(s->closed); /* a reset peer is no error to report if nobody looks */
  aloop_future_release(s->closed);
  s->closed = NULL;
}

static void stream_lost(aloop_transport *t, int err, void *ctx) {
  (void)t;
  aloop_stream *s = ctx;
  if (s->client && !s->t) { /* a server's connection that never was (its TLS handshake failed) */
    s->user_closed = true;
    s->refs -= 2; /* the owner's and the task's: no task ever ran */
  }
  s->t = NULL;
  s->lost = true;
  s->err = err;
  satisfy(s);
  finish_drains(s, err ? err : -EPIPE);
  if (s->closed) finish_closed(s);
  unref(s);
}

static void client_done(aloop_future *f, void *arg);

static int64_t client_task(void *arg) {
  aloop_stream *s = arg;
  return s->client(s, s->client_arg);
}

static void stream_made(aloop_transport *t, void *ctx) {
  aloop_stream *s = ctx;
  s->t = t;
  aloop_transport_peername(t, &s->peer);
  if (!s->client) return;
  aloop_task_options opts = {.size = sizeof opts, .name = "stream client"};
  aloop_future *task = aloop_task_spawn(s->loop, client_task, s, &opts);
  if (task && aloop_future_add_done_callback(task, client_done, s) == 0) {
    if ((s->server = aloop__server_of(t))) aloop__server_hold(s->server, true);
  } else {
    if (task) aloop_future_cancel(task); /* runs nothing: it has not started */
    aloop_future_release(task);
    aloop_transport_fail(t, -ENOMEM, "cannot start the connection's task");
    s->user_closed = true;
    s->refs -= 2; /* the owner's and the task's; the transport's goes at connection_lost */
  }
}

static const aloop_protocol stream_protocol = {
    .connection_made = stream_made,
    .get_buffer = stream_get_buffer,
    .buffer_updated = stream_buffer_updated,
    .eof_received = stream_eof,
    .connection_lost = stream_lost,
    .pause_writing = stream_pause_writing,
    .resume_writing = stream_resume_writing,
};

/* ---- writing -------------------------------------------------------------------------------------- */

int aloop_stream_write(aloop_stream *s, const void *data, size_t n) {
  return s->t ? aloop_transport_write(s->t, data, n) : -EPIPE;
}

int aloop_stream_writelines(aloop_stream *s, const struct iovec *iov, int iovcnt) {
  return s->t ? aloop_transport_writev(s->t, iov, iovcnt) : -EPIPE;
}

int aloop_stream_write_eof(aloop_stream *s) {
  return s->t ? aloop_transport_write_eof(s->t) : -EPIPE;
}

static void cancel_drain(aloop_future *f, void *arg) {
  aloop_stream *s = arg;
  for (size_t i = 0; i < s->ndrains; i++) {
    if (s->drains[i] != f) continue;
    s->drains[i] = s->drains[--s->ndrains];
    aloop__future_finish(f, -ECANCELED, NULL);
    aloop_future_release(f);
    return;
  }
}

aloop_future *aloop_stream_drain(aloop_stream *s) {
  aloop_future *f = aloop_future_new(s->loop, "stream drain");
  if (!f) return NULL;
  if (!s->t) {
    aloop__future_finish(f, s->err ? s->err : -EPIPE, NULL);
  } else if (!s->write_paused) {
    aloop__future_finish(f, 0, NULL);
  } else {
    if (s->ndrains == s->drains_cap) {
      size_t cap = s->drains_cap ? s->drains_cap * 2 : 2;
      aloop_future **d = realloc(s->drains, cap * sizeof *d);
      if (!d) {
        aloop_future_release(f);
        return NULL;
      }
      s->drains = d;
      s->drains_cap = cap;
    }
    s->drains[s->ndrains++] = aloop_future_ref(f);
    aloop__future_set_work(f, cancel_drain, s);
  }
  return f;
}

aloop_future *aloop_stream_close(aloop_stream *s) {
  if (s->user_closed) return NULL;
  s->user_closed = true;
  aloop_future *f = aloop_future_new(s->loop, "stream close"); /* NULL: closed all the same */
  if (f) s->closed = aloop_future_ref(f);
  if (s->t)
    aloop_transport_close(s->t);
  else if (s->closed)
    finish_closed(s);
  unref(s); /* the owner's */
  return f;
}

aloop_transport *aloop_stream_transport(aloop_stream *s) { return s->t; }

/* ---- servers and connections ------------------------------------------------------------------------ */

static void client_done(aloop_future *f, void *arg) {
  aloop_stream *s = arg;
  int64_t outcome = aloop_future_outcome(f);
  if (outcome < 0 && outcome != -ECANCELED) {
    if (s->t) {
      aloop_transport_fail(s->t, (int)outcome, "%s", aloop_future_message(f));
    } else {
      char peer[ALOOP_SOCKADDR_STRLEN];
      aloop__report(s->loop, (int)outcome, -1, "connection", "%s: %s",
                    aloop_sockaddr_str(&s->peer, peer, sizeof peer), aloop_future_message(f));
    }
  }
  aloop_future_release(f);
  if (!s->user_closed) aloop_future_release(aloop_stream_close(s));
  if (s->server) aloop__server_hold(s->server, false);
  unref(s); /* the task's */
}

struct client_cfg {
  aloop_loop *loop;
  aloop_stream_fn client;
  void *arg;
  size_t limit;
};

/* One stream per accepted connection: references for the transport, the owner (released by
 * aloop_stream_close) and the task. */
static void *server_stream(void *arg) {
  struct client_cfg *cfg = arg;
  aloop_stream *s = stream_new(cfg->loop, cfg->limit, 3);
  if (s) {
    s->client = cfg->client;
    s->client_arg = cfg->arg;
  } else { /* NULL refuses the connection: say why, or it vanishes unexplained */
    aloop__report(cfg->loop, -ENOMEM, -1, "server", "no memory for a stream; connection closed");
  }
  return s;
}

static aloop_future *start_server(aloop_loop *loop, aloop_stream_fn client, void *arg,
                                  const char *host, int port, const char *path,
                                  const aloop_server_options *opts) {
  struct client_cfg *cfg = malloc(sizeof *cfg);
  if (!cfg) return NULL;
  *cfg = (struct client_cfg){loop, client, arg, opts && opts->size >= sizeof *opts ? opts->limit : 0};
  aloop_future *f = aloop__create_server(loop, &stream_protocol, server_stream, cfg, free, host,
                                         port, path, opts);
  if (!f) free(cfg);
  return f;
}

aloop_future *aloop_start_server(aloop_loop *loop, aloop_stream_fn client, void *arg,
                                 const char *host, int port, const aloop_server_options *opts) {
  return start_server(loop, client, arg, host, port, NULL, opts);
}

aloop_future *aloop_start_unix_server(aloop_loop *loop, aloop_stream_fn client, void *arg,
                                      const char *path, const aloop_server_options *opts) {
  return start_server(loop, client, arg, NULL, 0, path, opts);
}

static void discard_unconnected(void *ctx) { free(ctx); } /* no transport, no buffer yet */

static void connected(void *ctx, aloop_transport *t) { ((aloop_stream *)ctx)->t = t; }

static aloop_future *open_connection(aloop_loop *loop, const char *host, int port,
                                     const char *path, size_t limit,
                                     const aloop_connect_options *opts) {
  aloop_stream *s = stream_new(loop, limit, 2); /* the transport's and the owner's */
  if (!s) return NULL;
  aloop_future *f = aloop__connect(loop, &stream_protocol, s, discard_unconnected, connected,
                                   path ? NULL : host ? host : "localhost", port, path, opts);
  if (!f) free(s);
  return f;
}

aloop_future *aloop_open_connection(aloop_loop *loop, const char *host, int port, size_t limit) {
  return open_connection(loop, host, port, NULL, limit, NULL);
}

aloop_future *aloop_open_connection_with(aloop_loop *loop, const char *host, int port,
                                         const aloop_connect_options *opts) {
  size_t limit = opts && opts->size >= offsetof(aloop_connect_options, limit) + sizeof opts->limit
                     ? opts->limit
                     : 0;
  return open_connection(loop, host, port, NULL, limit, opts);
}

aloop_future *aloop_open_unix_connection(aloop_loop *loop, const char *path, size_t limit) {
  return open_connection(loop, NULL, 0, path, limit, NULL);
}

/* ---- pipes ----------------------------------------------------------------------------------------- */

static aloop_stream *pipe_stream(aloop_loop *loop, int fd, size_t limit, bool reads) {
  aloop_stream *s = stream_new(loop, limit, 2); /* the transport's and the owner's */
  if (!s) {
    close(fd);
    errno = ENOMEM;
    return NULL;
  }
  aloop_transport *t = reads ? aloop_connect_read_pipe(loop, fd, &stream_protocol, s)
                             : aloop_connect_write_pipe(loop, fd, &stream_protocol, s);
  if (!t) {
    int err = errno;
    free(s);
    errno = err;
    return NULL;
  }
  s->t = t;
  s->eof = !reads; /* a write pipe has nothing to read: reads answer 0 */
  return s;
}

aloop_stream *aloop_open_read_pipe(aloop_loop *loop, int fd, size_t limit) {
  return pipe_stream(loop, fd, limit, true);
}

aloop_stream *aloop_open_write_pipe(aloop_loop *loop, int fd) {
  return pipe_stream(loop, fd, 0, false);
}
