/* The interposed allocator: malloc and friends defined in the test program, so that the library,
 * libcharfinder and glibc itself (whose internal allocations go through these symbols too) all
 * come here. Each call delegates to glibc's own (__libc_malloc...). While the calling thread is
 * armed, its allocations are counted, the chosen one fails, and every block it gets is recorded
 * in a table (no header on the block: blocks from before arming are freed as they are), so a
 * block that outlives the scenario is a leak, found without AddressSanitizer.
 * Must never allocate itself. Not built under AddressSanitizer, which owns malloc. */
#include <errno.h>
#include <malloc.h>
#include <dlfcn.h>
#include <execinfo.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fault.h"

#ifndef __SANITIZE_ADDRESS__

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);
extern void *__libc_memalign(size_t, size_t);
extern void *__libc_valloc(size_t);
extern void *__libc_pvalloc(size_t);

/* Live blocks of one scenario: a few thousand at most; the table stays under half full. */
#define TABLE_SIZE (1u << 17)

static struct {
  uintptr_t ptr[TABLE_SIZE]; /* 0: empty slot */
  size_t size[TABLE_SIZE];
  size_t live, bytes;
} table;
static atomic_flag table_lock = ATOMIC_FLAG_INIT;

static _Thread_local bool armed;
static uint64_t calls, fail_at;
static bool injected;

static void lock(void) {
  while (atomic_flag_test_and_set_explicit(&table_lock, memory_order_acquire)) continue;
}
static void unlock(void) { atomic_flag_clear_explicit(&table_lock, memory_order_release); }

static size_t slot_of(uintptr_t p) { return (size_t)((p >> 4) * 0x9E3779B97F4A7C15u >> 47) % TABLE_SIZE; }

static void track(void *p, size_t size) {
  lock();
  if (table.live < TABLE_SIZE / 2) { /* beyond: untracked (a scenario that large is a bug here) */
    size_t i = slot_of((uintptr_t)p);
    while (table.ptr[i]) i = (i + 1) % TABLE_SIZE;
    table.ptr[i] = (uintptr_t)p;
    table.size[i] = size;
    table.live++;
    table.bytes += size;
  }
  unlock();
}

/* Forget p if it is tracked; true if it was. Backward-shift deletion keeps probe chains whole. */
static bool untrack(void *p) {
  if (!p) return false;
  lock();
  if (!table.live) {
    unlock();
    return false;
  }
  size_t i = slot_of((uintptr_t)p);
  while (table.ptr[i] && table.ptr[i] != (uintptr_t)p) i = (i + 1) % TABLE_SIZE;
  bool found = table.ptr[i] != 0;
  if (found) {
    table.live--;
    table.bytes -= table.size[i];
    table.ptr[i] = 0;
    for (size_t j = (i + 1) % TABLE_SIZE; table.ptr[j]; j = (j + 1) % TABLE_SIZE) {
      size_t home = slot_of(table.ptr[j]);
      /* Move j back into the hole if its home does not lie cyclically in (i, j]. */
      bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
      if (stays) continue;
      table.ptr[i] = table.ptr[j];
      table.size[i] = table.size[j];
      table.ptr[j] = 0;
      i = j;
    }
  }
  unlock();
  return found;
}

/* One allocation by an armed thread: false if this is the one to fail. */
static bool allowed(void) {
  if (!armed) return true;
  calls++;
  if (fail_at && calls == fail_at) {
    injected = true;
    return false;
  }
  return true;
}

/* FAULT_TRACE_SIZE=n: print a backtrace for each armed allocation of n bytes (to find who makes a
 * block that leaks). */
static _Thread_local bool tracing;
static void trace(size_t size) {
  static long want = -2;
  if (want == -2) want = getenv("FAULT_TRACE_SIZE") ? atol(getenv("FAULT_TRACE_SIZE")) : -1;
  if ((long)size != want || tracing) return;
  tracing = true;
  void *bt[32];
  int n = backtrace(bt, 32);
  backtrace_symbols_fd(bt, n, 2);
  if (write(2, "--\n", 3) < 0) tracing = false;
  tracing = false;
}
static void *tracked(void *p, size_t size) {
  if (p && armed) trace(size);
  if (p && armed) track(p, size);
  return p;
}

void *malloc(size_t size) {
  if (!allowed()) return errno = ENOMEM, NULL;
  return tracked(__libc_malloc(size), size);
}

void *calloc(size_t n, size_t size) {
  if (!allowed()) return errno = ENOMEM, NULL;
  return tracked(__libc_calloc(n, size), n * size);
}

void *realloc(void *p, size_t size) {
  if (p && size == 0) { /* glibc frees it */
    untrack(p);
    return __libc_realloc(p, 0);
  }
  if (!allowed()) return errno = ENOMEM, NULL; /* p stays valid and tracked as it was */
  bool was = untrack(p);
  void *q = __libc_realloc(p, size);
  if (q && (was || armed)) track(q, size);
  else if (!q && was) track(p, size);
  return q;
}

void free(void *p) {
  untrack(p);
  __libc_free(p);
}

void *memalign(size_t align, size_t size) {
  if (!allowed()) return errno = ENOMEM, NULL;
  return tracked(__libc_memalign(align, size), size);
}

void *aligned_alloc(size_t align, size_t size) { return memalign(align, size); }

int posix_memalign(void **out, size_t align, size_t size) {
  if (!allowed()) return ENOMEM;
  void *p = tracked(__libc_memalign(align, size), size);
  if (!p) return ENOMEM;
  *out = p;
  return 0;
}

void *valloc(size_t size) {
  if (!allowed()) return errno = ENOMEM, NULL;
  return tracked(__libc_valloc(size), size);
}

void *pvalloc(size_t size) {
  if (!allowed()) return errno = ENOMEM, NULL;
  return tracked(__libc_pvalloc(size), size);
}

/* A new thread's TLS block is glibc's to keep: it stays with the thread's stack in glibc's cache
 * of stacks after the thread is joined, so it would look like a leak. Nothing inside
 * pthread_create is counted or failed. */
int pthread_create(pthread_t *thread, const pthread_attr_t *attr, void *(*fn)(void *), void *arg) {
  static int (*real)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);
  bool was = armed;
  armed = false;
  if (!real) *(void **)&real = dlsym(RTLD_NEXT, "pthread_create");
  int rc = real(thread, attr, fn, arg);
  armed = was;
  return rc;
}

void fault_arm(uint64_t n) {
  calls = 0;
  fail_at = n;
  injected = false;
  armed = true;
}

void fault_disarm(void) { armed = false; }
uint64_t fault_calls(void) { return calls; }
bool fault_injected(void) { return injected; }
size_t fault_live(void) { return table.live; }
size_t fault_live_bytes(void) { return table.bytes; }

size_t fault_live_sizes(size_t *sizes, size_t max) {
  size_t n = 0;
  lock();
  for (size_t i = 0; i < TABLE_SIZE && n < max; i++)
    if (table.ptr[i]) sizes[n++] = table.size[i];
  unlock();
  return n;
}
#else /* AddressSanitizer owns malloc: nothing is counted (main.c skips the suite) */
void fault_arm(uint64_t n) { (void)n; }
void fault_disarm(void) {}
uint64_t fault_calls(void) { return 0; }
bool fault_injected(void) { return false; }
size_t fault_live(void) { return 0; }
size_t fault_live_bytes(void) { return 0; }
size_t fault_live_sizes(size_t *sizes, size_t max) { return (void)sizes, (void)max, 0; }
#endif
