/* void aloop__coro_switch(void **save_sp, void *load_sp)
 * AArch64 AAPCS64: save x19-x30 and d8-d15 on the current stack, store its pointer in *save_sp,
 * switch to load_sp and restore. The first switch into a new coroutine returns (x30) into
 * aloop__coro_start with x19 = arg and x20 = entry function. */
#if defined(__aarch64__)
        .text
        .globl  aloop__coro_switch
        .hidden aloop__coro_switch
        .type   aloop__coro_switch, %function
aloop__coro_switch:
        sub     sp, sp, #160
        stp     x19, x20, [sp, #0]
        stp     x21, x22, [sp, #16]
        stp     x23, x24, [sp, #32]
        stp     x25, x26, [sp, #48]
        stp     x27, x28, [sp, #64]
        stp     x29, x30, [sp, #80]
        stp     d8,  d9,  [sp, #96]
        stp     d10, d11, [sp, #112]
        stp     d12, d13, [sp, #128]
        stp     d14, d15, [sp, #144]
        mov     x2, sp
        str     x2, [x0]
        mov     sp, x1
        ldp     x19, x20, [sp, #0]
        ldp     x21, x22, [sp, #16]
        ldp     x23, x24, [sp, #32]
        ldp     x25, x26, [sp, #48]
        ldp     x27, x28, [sp, #64]
        ldp     x29, x30, [sp, #80]
        ldp     d8,  d9,  [sp, #96]
        ldp     d10, d11, [sp, #112]
        ldp     d12, d13, [sp, #128]
        ldp     d14, d15, [sp, #144]
        add     sp, sp, #160
        ret
        .size   aloop__coro_switch, .-aloop__coro_switch

        .globl  aloop__coro_start
        .hidden aloop__coro_start
        .type   aloop__coro_start, %function
aloop__coro_start:
        mov     x0, x19
        blr     x20
        brk     #0
        .size   aloop__coro_start, .-aloop__coro_start
#endif
        .section .note.GNU-stack,"",%progbits
