/* The table of compiled drivers, in `auto` preference order, and choosing one by name. */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"

const struct aloop__driver *const aloop__drivers[] = {
#ifdef ALOOP_HAVE_LIBURING
    &aloop__driver_io_uring, /* completion I/O: fewest syscalls per operation */
#endif
#ifdef ALOOP_HAVE_LIBEV
    &aloop__driver_libev, /* epoll through libev: O(ready) per poll, no fd limit */
#endif
    &aloop__driver_select, /* always works, up to FD_SETSIZE fds */
};
const size_t aloop__ndrivers = ALOOP__ARRAY_LEN(aloop__drivers);

/* The names a user may give, for error messages: "select, libev, io_uring, auto". */
static void valid_names(char *buf, size_t n) {
  size_t used = 0;
  buf[0] = '\0';
  for (size_t i = aloop__ndrivers; i-- > 0 && used < n;)
    used += (size_t)snprintf(buf + used, n - used, "%s, ", aloop__drivers[i]->name);
  if (used < n) snprintf(buf + used, n - used, "auto");
}

static const struct aloop__driver *find(const char *name) {
  for (size_t i = 0; i < aloop__ndrivers; i++)
    if (strcmp(aloop__drivers[i]->name, name) == 0) return aloop__drivers[i];
  return NULL;
}

static int known_elsewhere(const char *name) {
  return !strcmp(name, "select") || !strcmp(name, "libev") || !strcmp(name, "io_uring");
}

size_t aloop_list_backends(aloop_backend_info *out, size_t max) {
  for (size_t i = 0; i < aloop__ndrivers && i < max; i++) {
    const struct aloop__driver *d = aloop__drivers[i];
    out[i].name = d->name;
    out[i].max_fd = d->max_fd;
    out[i].reason[0] = '\0';
    out[i].available = d->probe(out[i].reason, sizeof out[i].reason) == 0;
  }
  return aloop__ndrivers;
}

static int try_driver(aloop_loop *loop, const struct aloop__driver *d, char *why, size_t n) {
  int err = d->probe(why, n);
  if (err < 0) return err;
  void *state = calloc(1, d->state_size ? d->state_size : 1);
  if (!state) {
    aloop__set_why(why, n, "out of memory");
    return -ENOMEM;
  }
  loop->drv = d;
  loop->drv_state = state;
  loop->op_kinds = d->op_kinds; /* init may decline some for this loop */
  if ((err = d->init(loop, state, why, n)) < 0) {
    free(state);
    loop->drv = NULL;
    loop->drv_state = NULL;
  }
  return err;
}

/* auto: the first driver that works. When it is not the first choice, say why once per process. */
static int start_auto(aloop_loop *loop, char *why, size_t n) {
  static atomic_flag said = ATOMIC_FLAG_INIT;
  char first_why[160] = "";
  for (size_t i = 0; i < aloop__ndrivers; i++) {
    char reason[160] = "";
    if (try_driver(loop, aloop__drivers[i], reason, sizeof reason) < 0) {
      if (i == 0) snprintf(first_why, sizeof first_why, "%s", reason);
      continue;
    }
    if (i > 0 && !atomic_flag_test_and_set(&said))
      fprintf(stderr, "aloop: %s unavailable (%s); using %s\n", aloop__drivers[0]->name, first_why,
              aloop__drivers[i]->name);
    return 0;
  }
  aloop__set_why(why, n, "no driver works here (%s: %s)", aloop__drivers[0]->name, first_why);
  return -ALOOP_EUNAVAIL;
}

int aloop__driver_start(aloop_loop *loop, const char *name, char *why, size_t n) {
  if (strcmp(name, "auto") == 0) return start_auto(loop, why, n);
  const struct aloop__driver *d = find(name);
  if (!d) {
    char names[96];
    valid_names(names, sizeof names);
    if (known_elsewhere(name))
      aloop__set_why(why, n, "driver '%s' is not compiled into this build (available: %s)", name,
                     names);
    else
      aloop__set_why(why, n, "unknown driver '%s' (valid: %s)", name, names);
    return -ALOOP_EBACKEND;
  }
  char reason[160] = "";
  int err = try_driver(loop, d, reason, sizeof reason);
  if (err < 0) {
    aloop__set_why(why, n, "driver '%s' cannot work here: %s", name, reason);
    return err == -ENOMEM ? err : -ALOOP_EUNAVAIL;
  }
  return 0;
}

void aloop__driver_stop(aloop_loop *loop) {
  if (!loop->drv) return;
  loop->drv->fini(loop, loop->drv_state);
  free(loop->drv_state);
  loop->drv = NULL;
  loop->drv_state = NULL;
}
