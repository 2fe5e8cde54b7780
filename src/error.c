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
    [ALOOP_EUNAVAIL - ALOOP_EBASE] = "the driver cannot work on this machine",
    [ALOOP_EFDLIMIT - ALOOP_EBASE] = "fd too high for this driver (select watches fds below "
                                     "FD_SETSIZE only; use libev or io_uring)",
    [ALOOP_ESTALE - ALOOP_EBASE] = "the callback already ran or was cancelled",
    [ALOOP_ESIGBUSY - ALOOP_EBASE] = "another loop handles this signal",
    [ALOOP_EDONE - ALOOP_EBASE] = "the future is already done",
    [ALOOP_EPENDING - ALOOP_EBASE] = "the future is not done yet",
    [ALOOP_EADDRINFO - ALOOP_EBASE] = "name resolution failed",
    [ALOOP_EINCOMPLETE - ALOOP_EBASE] = "the stream ended before the bytes asked for",
    [ALOOP_ELIMIT - ALOOP_EBASE] = "longer than the stream's limit",
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
  (void)loop;
  (void)arg;
  char fdbuf[32] = "";
  if (info->fd >= 0) snprintf(fdbuf, sizeof fdbuf, " (fd %d)", info->fd);
  if (info->code)
    fprintf(stderr, "aloop: %s: %s: %s%s\n", info->source, info->message,
            aloop_strerror(info->code), fdbuf);
  else
    fprintf(stderr, "aloop: %s: %s%s\n", info->source, info->message, fdbuf);
}

void aloop_set_error_handler(aloop_loop *loop, aloop_error_fn fn, void *arg) {
  loop->error_fn = fn ? fn : default_handler;
  loop->error_arg = fn ? arg : NULL;
}

void aloop__vreport(aloop_loop *loop, int code, int fd, const char *source, const char *fmt,
                    va_list ap) {
  char message[256];
  vsnprintf(message, sizeof message, fmt, ap);
  aloop_error_info info = {.code = code > 0 ? -code : code, .fd = fd, .source = source,
                           .message = message};
  loop->errors++;
  (loop->error_fn ? loop->error_fn : default_handler)(loop, &info, loop->error_arg);
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
