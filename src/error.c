/* Error words and the loop's error handler. Codes are negative errno values or aloop's own
 * (ALOOP_E*, above the errno range); one table names aloop's own. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"

static const char *const own_errors[] = {
    [ALOOP_ERUNNING - ALOOP_EBASE] = "the loop is already running",
    [ALOOP_EBACKEND - ALOOP_EBASE] = "no such driver in this build",
    [ALOOP_EUNAVAIL - ALOOP_EBASE] = "the driver cannot work on this machine, or lacks this feature",
    [ALOOP_EFDLIMIT - ALOOP_EBASE] = "fd too high for this driver (select watches fds below "
                                     "FD_SETSIZE only; use libev or io_uring)",
    [ALOOP_ESTALE - ALOOP_EBASE] = "the callback already ran or was cancelled",
    [ALOOP_ESIGBUSY - ALOOP_EBASE] = "another loop handles this signal",
    [ALOOP_EDONE - ALOOP_EBASE] = "the future is already done",
    [ALOOP_EPENDING - ALOOP_EBASE] = "the future is not done yet",
    [ALOOP_EADDRINFO - ALOOP_EBASE] = "name resolution failed",
    [ALOOP_EINCOMPLETE - ALOOP_EBASE] = "the stream ended before the bytes asked for",
    [ALOOP_ELIMIT - ALOOP_EBASE] = "longer than the stream's limit",
    [ALOOP_ETLS - ALOOP_EBASE] = "TLS failed",
};

const char *aloop_strerror(int err) {
  if (err < 0) err = -err;
  if (err == 0) return "success";
  if (err > ALOOP_EBASE) {
    size_t i = (size_t)(err - ALOOP_EBASE);
    if (i < ALOOP__ARRAY_LEN(own_errors) && own_errors[i]) return own_errors[i];
    return "unknown aloop error";
  }
  /* strerror() may share a buffer only for unknown codes; known ones are static strings. */
  return strerror(err);
}

static void default_handler(aloop_loop *loop, const aloop_error_info *info, void *arg) {
  (void)arg;
  char fdbuf[32] = "", held[96] = "";
  if (info->fd >= 0) snprintf(fdbuf, sizeof fdbuf, " (fd %d)", info->fd);
  if (info->repeats)
    snprintf(held, sizeof held, "%llu more like this in the last %.3g s; the last: ",
             (unsigned long long)info->repeats, (double)loop->report_interval / 1e9);
  if (info->code)
    fprintf(stderr, "aloop: %s: %s%s: %s%s\n", info->source, held, info->message,
            aloop_strerror(info->code), fdbuf);
  else
    fprintf(stderr, "aloop: %s: %s%s%s\n", info->source, held, info->message, fdbuf);
}

void aloop_set_error_handler(aloop_loop *loop, aloop_error_fn fn, void *arg) {
  loop->error_fn = fn ? fn : default_handler;
  loop->error_arg = fn ? arg : NULL;
}

static void deliver(aloop_loop *loop, int code, int fd, const char *source, const char *message,
                    uint64_t repeats) {
  aloop_error_info info = {.code = code, .fd = fd, .source = source, .message = message,
                           .repeats = repeats};
  (loop->error_fn ? loop->error_fn : default_handler)(loop, &info, loop->error_arg);
}

/* ---- rate limiting: per kind, the first in words, then one summary per interval -------------- */

static void flush_kind(aloop_loop *loop, struct aloop__report_kind *k) {
  uint64_t held = k->held;
  if (!held) return;
  k->held = 0;
  deliver(loop, k->code, k->fd, k->source, k->last, held);
}

static void on_report_timer(aloop_loop *loop, void *arg);

static void arm_report_timer(aloop_loop *loop, int64_t when) {
  if (loop->report_timer_armed) return;
  /* Out of memory: the count waits for the next report of its kind, or for aloop_free. */
  loop->report_timer_armed =
      aloop_call_at(loop, when, on_report_timer, NULL, &loop->report_timer) == 0;
}

/* A window ended: say how many were held back, and keep holding for one more interval (a flood
 * that goes on gets one line per interval; a kind that went quiet starts over in words). */
static void on_report_timer(aloop_loop *loop, void *arg) {
  (void)arg;
  loop->report_timer_armed = false;
  int64_t now = aloop__now(), next = INT64_MAX;
  for (size_t i = 0; i < ALOOP__REPORT_KINDS; i++) {
    struct aloop__report_kind *k = &loop->report_kinds[i];
    if (k->held && k->window_end <= now) {
      flush_kind(loop, k);
      k->window_end = now + loop->report_interval;
    } else if (k->held && k->window_end < next) {
      next = k->window_end;
    }
  }
  if (next != INT64_MAX) arm_report_timer(loop, next);
}

/* The kind's slot: found, or the one whose window started longest ago (its count said first). */
static struct aloop__report_kind *kind_of(aloop_loop *loop, int code, const char *source,
                                          const char *fmt, bool *fresh) {
  struct aloop__report_kind *oldest = &loop->report_kinds[0];
  for (size_t i = 0; i < ALOOP__REPORT_KINDS; i++) {
    struct aloop__report_kind *k = &loop->report_kinds[i];
    if (k->fmt == fmt && k->code == code && strncmp(k->source, source, sizeof k->source) == 0) {
      *fresh = false;
      return k;
    }
    if (!k->fmt || k->window_end < oldest->window_end) oldest = k;
  }
  flush_kind(loop, oldest);
  *oldest = (struct aloop__report_kind){.fmt = fmt, .code = code};
  snprintf(oldest->source, sizeof oldest->source, "%s", source);
  *fresh = true;
  return oldest;
}

void aloop__vreport(aloop_loop *loop, int code, int fd, const char *source, const char *fmt,
                    va_list ap) {
  char message[256];
  vsnprintf(message, sizeof message, fmt, ap);
  if (code > 0) code = -code;
  loop->errors++;
  if (loop->report_interval <= 0) {
    deliver(loop, code, fd, source, message, 0);
    return;
  }
  bool fresh;
  struct aloop__report_kind *k = kind_of(loop, code, source, fmt, &fresh);
  int64_t now = aloop__now();
  if (fresh || (!k->held && now >= k->window_end)) { /* a new window opens with this one */
    k->window_end = now + loop->report_interval;
    deliver(loop, code, fd, source, message, 0);
    return;
  }
  k->held++;
  k->fd = fd;
  snprintf(k->last, sizeof k->last, "%s", message);
  arm_report_timer(loop, k->window_end);
}

void aloop_set_report_interval(aloop_loop *loop, int64_t interval_ns) {
  loop->report_interval = interval_ns > 0 ? interval_ns : 0;
}

void aloop__reports_fini(aloop_loop *loop) {
  if (loop->report_timer_armed) aloop_cancel(loop, loop->report_timer);
  loop->report_timer_armed = false;
  for (size_t i = 0; i < ALOOP__REPORT_KINDS; i++) flush_kind(loop, &loop->report_kinds[i]);
}

void aloop__report(aloop_loop *loop, int code, int fd, const char *source, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  aloop__vreport(loop, code, fd, source, fmt, ap);
  va_end(ap);
}

void aloop_report_error(aloop_loop *loop, int code, int fd, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  aloop__vreport(loop, code, fd, "callback", fmt, ap);
  va_end(ap);
}

void aloop__set_why(char *why, size_t n, const char *fmt, ...) {
  if (!why || !n) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(why, n, fmt, ap);
  va_end(ap);
}
