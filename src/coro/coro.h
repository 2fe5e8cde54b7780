/* Stackful coroutines: the smallest thing tasks need. A coroutine runs fn(arg) on its own stack;
 * aloop__coro_switch() moves between it and whoever resumed it. Stacks are mmap'd with a guard gap
 * below them (an overflow faults instead of corrupting memory) and are reused through a pool.
 * The gap is as large as the largest frame code without -fstack-clash-protection may have: one
 * guard page would let a 64 KiB buffer's frame step over it into the next stack down.
 * The switch itself is a few instructions of assembly on x86-64 and aarch64 (callee-saved
 * registers and the stack pointer only; glibc's swapcontext also saves the signal mask, a syscall
 * per switch); elsewhere ucontext is the fallback. */
#ifndef ALOOP_CORO_H
#define ALOOP_CORO_H

#include <stddef.h>

#define ALOOP__CORO_GUARD (256 * 1024) /* ALOOP_TASK_STACK_GUARD */

#if !defined(__x86_64__) && !defined(__aarch64__) && !defined(ALOOP_CORO_UCONTEXT)
#define ALOOP_CORO_UCONTEXT 1
#endif

struct aloop__coro {
  void *sp;              /* saved stack pointer while not running */
  void *stack;           /* lowest address of the mapping (the guard page) */
  size_t stack_size;     /* usable bytes above the guard page */
  void (*fn)(void *arg);
  void *arg;
  void *caller_sp;       /* the resumer's stack pointer: where aloop__coro_yield returns */
  void *asan_fake_stack;
  const void *caller_stack_bottom; /* for AddressSanitizer's fiber annotations */
  size_t caller_stack_size;
  int finished;
#ifdef ALOOP_CORO_UCONTEXT
  void *uctx;
#endif
};

/* Map a stack (or reuse one from `pool`, a singly linked list through the stacks' first word).
 * 0 or -ENOMEM. fn must end by calling aloop__coro_exit, never by returning. */
int aloop__coro_init(struct aloop__coro *co, size_t stack_size, void (*fn)(void *), void *arg);
void aloop__coro_fini(struct aloop__coro *co); /* unmaps the stack */

/* From the thread's main context or another coroutine: run co until it yields or exits. */
void aloop__coro_resume(struct aloop__coro *co);
/* From inside co: go back to whoever resumed it. */
void aloop__coro_yield(struct aloop__coro *co);
/* From inside co, at the very end: like yield, but co is never resumed again. */
void aloop__coro_exit(struct aloop__coro *co) __attribute__((noreturn));

/* The page size rounded stack plus guard this would map, for accounting. */
size_t aloop__coro_mapping_size(size_t stack_size);

#endif
