/* Coroutine stacks and the switch around the assembly (see coro.h). Knows nothing of loops. */
#include "coro.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#define ASAN_START(save, bottom, size) __sanitizer_start_switch_fiber(save, bottom, size)
#define ASAN_FINISH(save, bottom, size) __sanitizer_finish_switch_fiber(save, bottom, size)
#else
#define ASAN_START(save, bottom, size) ((void)(save), (void)(bottom), (void)(size))
#define ASAN_FINISH(save, bottom, size) ((void)(save), (void)(bottom), (void)(size))
#endif

static size_t page_size(void) {
  static size_t size;
  if (!size) size = (size_t)sysconf(_SC_PAGESIZE);
  return size;
}

/* The guard gap below each stack, whole pages. Address space only: PROT_NONE and never touched. */
static size_t guard_size(void) {
  size_t page = page_size();
  return (ALOOP__CORO_GUARD + page - 1) / page * page;
}

size_t aloop__coro_mapping_size(size_t stack_size) {
  size_t page = page_size();
  return (stack_size + page - 1) / page * page + guard_size();
}

static void *usable_bottom(const struct aloop__coro *co) {
  return (char *)co->stack + guard_size();
}

static void coro_main(void *p) {
  struct aloop__coro *co = p;
  ASAN_FINISH(NULL, &co->caller_stack_bottom, &co->caller_stack_size);
  co->fn(co->arg);
  aloop__coro_exit(co);
}

#ifdef ALOOP_CORO_UCONTEXT
#include <stdlib.h>
#include <ucontext.h>

struct uctx_pair {
  ucontext_t self, caller;
};

static void uctx_entry(unsigned hi, unsigned lo) {
  coro_main((void *)(((uintptr_t)hi << 16 << 16) | lo));
}

static int prepare_stack(struct aloop__coro *co) {
  struct uctx_pair *u = co->uctx ? co->uctx : calloc(1, sizeof *u);
  if (!u) return -ENOMEM;
  co->uctx = u;
  getcontext(&u->self);
  u->self.uc_stack.ss_sp = usable_bottom(co);
  u->self.uc_stack.ss_size = co->stack_size;
  u->self.uc_link = NULL;
  uintptr_t p = (uintptr_t)co;
  makecontext(&u->self, (void (*)(void))uctx_entry, 2, (unsigned)(p >> 16 >> 16), (unsigned)p);
  return 0;
}

static void switch_in(struct aloop__coro *co) {
  struct uctx_pair *u = co->uctx;
  swapcontext(&u->caller, &u->self);
}

static void switch_out(struct aloop__coro *co) {
  struct uctx_pair *u = co->uctx;
  swapcontext(&u->self, &u->caller);
}

static void release_stack(struct aloop__coro *co) {
  free(co->uctx);
  co->uctx = NULL;
}
#else
void aloop__coro_switch(void **save_sp, void *load_sp);
void aloop__coro_start(void);

static int prepare_stack(struct aloop__coro *co) {
  uintptr_t top = ((uintptr_t)usable_bottom(co) + co->stack_size) & ~(uintptr_t)15;
#if defined(__x86_64__)
  /* Popped by aloop__coro_switch: r15 r14 r13 r12 rbx rbp, then `ret` to aloop__coro_start with
   * rsp 16-byte aligned, which calls r13(r12). */
  uintptr_t *sp = (uintptr_t *)(top - 72);
  memset(sp, 0, 72);
  sp[2] = (uintptr_t)coro_main;
  sp[3] = (uintptr_t)co;
  sp[6] = (uintptr_t)aloop__coro_start;
#else
  /* Loaded by aloop__coro_switch: x19..x30, d8..d15; `ret` via x30 to aloop__coro_start, which
   * calls x20(x19). */
  uintptr_t *sp = (uintptr_t *)(top - 160);
  memset(sp, 0, 160);
  sp[0] = (uintptr_t)co;
  sp[1] = (uintptr_t)coro_main;
  sp[11] = (uintptr_t)aloop__coro_start;
#endif
  co->sp = sp;
  return 0;
}

static void switch_in(struct aloop__coro *co) { aloop__coro_switch(&co->caller_sp, co->sp); }

static void switch_out(struct aloop__coro *co) { aloop__coro_switch(&co->sp, co->caller_sp); }

static void release_stack(struct aloop__coro *co) { (void)co; }
#endif

int aloop__coro_init(struct aloop__coro *co, size_t stack_size, void (*fn)(void *), void *arg) {
  if (!co->stack || co->stack_size != aloop__coro_mapping_size(stack_size) - guard_size()) {
    aloop__coro_fini(co);
    size_t map = aloop__coro_mapping_size(stack_size);
    void *stack = mmap(NULL, map, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                       -1, 0);
    if (stack == MAP_FAILED) return -ENOMEM;
    if (mprotect(stack, guard_size(), PROT_NONE) < 0) { /* the guard gap */
      munmap(stack, map);
      return -ENOMEM;
    }
    co->stack = stack;
    co->stack_size = map - guard_size();
  }
  co->fn = fn;
  co->arg = arg;
  co->finished = 0;
  co->asan_fake_stack = NULL;
  return prepare_stack(co);
}

void aloop__coro_fini(struct aloop__coro *co) {
  if (!co->stack) return;
  release_stack(co);
  munmap(co->stack, co->stack_size + guard_size());
  co->stack = NULL;
}

void aloop__coro_resume(struct aloop__coro *co) {
  void *fake = NULL;
  ASAN_START(&fake, usable_bottom(co), co->stack_size);
  switch_in(co);
  ASAN_FINISH(fake, NULL, NULL);
}

void aloop__coro_yield(struct aloop__coro *co) {
  ASAN_START(&co->asan_fake_stack, co->caller_stack_bottom, co->caller_stack_size);
  switch_out(co);
  ASAN_FINISH(co->asan_fake_stack, &co->caller_stack_bottom, &co->caller_stack_size);
}

void aloop__coro_exit(struct aloop__coro *co) {
  co->finished = 1;
  ASAN_START(NULL, co->caller_stack_bottom, co->caller_stack_size); /* this stack's frames are done */
  switch_out(co);
  __builtin_unreachable();
}
