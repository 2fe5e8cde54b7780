/* void aloop__coro_switch(void **save_sp, void *load_sp)
 * System V x86-64: save the callee-saved registers on the current stack, store its pointer in
 * *save_sp, switch to load_sp and restore the registers saved there. The first switch into a new
 * coroutine "returns" into aloop__coro_start with r12 = arg and r13 = entry function. */
#if defined(__x86_64__)
        .text
        .globl  aloop__coro_switch
        .hidden aloop__coro_switch
        .type   aloop__coro_switch, @function
aloop__coro_switch:
        .cfi_startproc
        pushq   %rbp
        pushq   %rbx
        pushq   %r12
        pushq   %r13
        pushq   %r14
        pushq   %r15
        movq    %rsp, (%rdi)
        movq    %rsi, %rsp
        popq    %r15
        popq    %r14
        popq    %r13
        popq    %r12
        popq    %rbx
        popq    %rbp
        ret
        .cfi_endproc
        .size   aloop__coro_switch, .-aloop__coro_switch

        .globl  aloop__coro_start
        .hidden aloop__coro_start
        .type   aloop__coro_start, @function
aloop__coro_start:
        .cfi_startproc
        .cfi_undefined rip      /* the bottom of a coroutine's stack: unwinders stop here */
        movq    %r12, %rdi
        callq   *%r13
        ud2                     /* the entry function never returns */
        .cfi_endproc
        .size   aloop__coro_start, .-aloop__coro_start
#endif
        .section .note.GNU-stack,"",@progbits
