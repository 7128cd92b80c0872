/* jumpregs.c: misaligned locked ops that breakpoint mode runs through a
 * jump (5 bytes or more) while every general register holds a known value:
 * based on rbx, on rsp, and RIP-relative; and a 4-byte one followed by a
 * `ret` (nothing can move with it), which hops to its stub through the
 * alignment filler after that `ret`. Afterwards every register, the flags
 * and the memory must be what the op alone leaves. Exit 0 when they are,
 * 10 + the check that failed. With "threads": 2 threads add 1 to one split
 * counter 10,000 times each through the same long op, and to another
 * through the hopping short one (both totals must be exact). */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <string.h>

_Alignas(64) unsigned char jr_line[256];
uint64_t jr_saved[19]; /* rax rcx rdx rbx rsp rbp rsi rdi r8..r15, flags, rsp before, r13 */

/* 4 bytes and a `ret`, then filler to the next 16 bytes: a hop. */
void jr_hop_inc(void);                /* lock incl 0x7e(%rbx): rbx is jr_line */
void jr_hop_add(unsigned char *word); /* lock addl $1, (%rdi) */
__asm__(".text\n.p2align 4\njr_hop_inc:\n lock incl 0x7e(%rbx)\n ret\n.p2align 4\n"
        "jr_hop_add:\n lock addl $1, (%rdi)\n ret\n.p2align 4\n");

/* rdi: jr_line. Sets every register, runs the four ops, saves them all. */
void jr_run(unsigned char *line);
__asm__(
    ".text\n.globl jr_run\n.type jr_run,@function\njr_run:\n"
    "push %rbx\n push %rbp\n push %r12\n push %r13\n push %r14\n push %r15\n"
    "mov %rsp, jr_saved+136(%rip)\n"
    "mov %rdi, %rbx\n"
    "mov $0x1111, %rcx\n mov $0x2222, %rdx\n mov $0x3333, %rsi\n mov $0x4444, %rdi\n"
    "mov $0x5555, %r8\n mov $0x6666, %r9\n mov $0x7777, %r10\n mov $0x8888, %r11\n"
    "mov $0x9999, %r12\n mov $0xaaaa, %r13\n mov $0xbbbb, %r14\n mov $0xcccc, %r15\n"
    "mov $0xdddd, %rbp\n"
    "mov $5, %rax\n"
    "lock xaddq %rax, 0x3c(%rbx)\n"          /* 6 bytes: mem 0x1000 -> 0x1005, rax 0x1000 */
    "sub $64, %rsp\n movl $0x2000, 2(%rsp)\n"
    "mov %eax, %r12d\n mov $7, %eax\n"
    "lock xaddl %eax, 2(%rsp)\n"              /* 6 bytes: 0x2000 -> 0x2007, eax 0x2000 */
    "cmpl $0x2007, 2(%rsp)\n jne 1f\n"
    "add $64, %rsp\n"
    "mov %r12d, %eax\n mov $0x9999, %r12\n"
    "mov $3, %r13\n"
    "lock xaddq %r13, jr_line+188(%rip)\n"    /* 9 bytes: 0x3000 -> 0x3003, r13 0x3000 */
    "mov %r13, jr_saved+144(%rip)\n mov $0xaaaa, %r13\n"
    "call jr_hop_inc\n"                       /* 4 bytes, hops: 0x4000 -> 0x4001 */
    "mov $5, %r14\n add $0x1000, %r14\n mov $0xbbbb, %r14\n"
    "lock xaddq %rax, 0x3c(%rbx)\n"           /* again: 0x1005 -> 0x2005, rax 0x1005 */
    "pushfq\n pop jr_saved+128(%rip)\n"
    "mov %rax, jr_saved+0(%rip)\n mov %rcx, jr_saved+8(%rip)\n mov %rdx, jr_saved+16(%rip)\n"
    "mov %rbx, jr_saved+24(%rip)\n mov %rsp, jr_saved+32(%rip)\n mov %rbp, jr_saved+40(%rip)\n"
    "mov %rsi, jr_saved+48(%rip)\n mov %rdi, jr_saved+56(%rip)\n mov %r8, jr_saved+64(%rip)\n"
    "mov %r9, jr_saved+72(%rip)\n mov %r10, jr_saved+80(%rip)\n mov %r11, jr_saved+88(%rip)\n"
    "mov %r12, jr_saved+96(%rip)\n mov %r13, jr_saved+104(%rip)\n mov %r14, jr_saved+112(%rip)\n"
    "mov %r15, jr_saved+120(%rip)\n"
    "pop %r15\n pop %r14\n pop %r13\n pop %r12\n pop %rbp\n pop %rbx\n ret\n"
    "1: add $64, %rsp\n movq $1, jr_saved+0(%rip)\n"
    "pop %r15\n pop %r14\n pop %r13\n pop %r12\n pop %rbp\n pop %rbx\n ret\n");

/* 2 threads, one split counter. */
static void *adder(void *unused)
{
    (void)unused;
    for (int k = 0; k < 10000; k++) {
        __asm__ volatile("lock addq $1, jr_line+60(%%rip)" : : : "memory", "cc");
        jr_hop_add(jr_line + 126);
    }
    return NULL;
}

static int threads(void)
{
    pthread_t a, b;
    pthread_create(&a, NULL, adder, NULL);
    pthread_create(&b, NULL, adder, NULL);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    uint64_t total;
    uint32_t hopped;
    memcpy(&total, jr_line + 60, 8);
    memcpy(&hopped, jr_line + 126, 4);
    return total != 20000 ? 30 : hopped != 20000 ? 31 : 0;
}

int main(int argc, char **argv)
{
    static const uint64_t want[16] = {0x1005, 0x1111, 0x2222, 0, 0, 0xdddd, 0x3333, 0x4444,
                                      0x5555, 0x6666, 0x7777, 0x8888, 0x9999, 0xaaaa, 0xbbbb,
                                      0xcccc};
    uint64_t word;

    if (argc > 1 && strcmp(argv[1], "threads") == 0)
        return threads();
    memset(jr_line, 0, sizeof(jr_line));
    word = 0x1000;
    memcpy(jr_line + 60, &word, 8);
    word = 0x3000;
    memcpy(jr_line + 188, &word, 8);
    uint32_t small = 0x4000;
    memcpy(jr_line + 126, &small, 4);
    jr_run(jr_line);
    for (int k = 0; k < 16; k++) {
        uint64_t expect = k == 3 ? (uint64_t)jr_line : k == 4 ? jr_saved[17] : want[k];
        if (jr_saved[k] != expect)
            return 10 + k;
    }
    /* flags of 0x1005 + 0x1000 = 0x2005: PF (two bits in 0x05), nothing else; DF clear
     * (AC is left out: the alignment-check method sets it on purpose) */
    if ((jr_saved[16] & 0xCD5) != 0x4)
        return 26;
    memcpy(&word, jr_line + 60, 8);
    if (word != 0x2005)
        return 27;
    memcpy(&word, jr_line + 188, 8);
    if (word != 0x3003 || jr_saved[18] != 0x3000)
        return 28;
    memcpy(&small, jr_line + 126, 4);
    return small == 0x4001 ? 0 : 29;
}
