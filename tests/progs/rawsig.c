/* rawsig.c: installs its SIGBUS handler with a raw rt_sigaction system call
 * (past the C library, so the agent never sees it), then makes a misaligned
 * load, one split lock, and sends itself a SIGBUS. It exits 0 when its
 * handler ran exactly once (for the kill). Under the agent's alignment mode
 * the misaligned load is a SIGBUS its handler cannot fix: it runs forever;
 * under breakpoints nothing of ours is a SIGBUS, and it lives. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

struct kernel_sigaction {
    void (*handler)(int);
    unsigned long flags;
    void (*restorer)(void);
    uint64_t mask;
};

void rawsig_restore(void);
__asm__(".text\n.globl rawsig_restore\nrawsig_restore:\n\tmovq $15, %rax\n\tsyscall\n");

static _Alignas(64) unsigned char buffer[128];
static volatile sig_atomic_t caught;
static volatile uint32_t sink;

static void on_bus(int sig)
{
    (void)sig;
    caught++;
}

int main(void)
{
    struct kernel_sigaction act;

    memset(&act, 0, sizeof(act));
    act.handler = on_bus;
    act.flags = 0x04000000 /* SA_RESTORER */;
    act.restorer = rawsig_restore;
    if (syscall(SYS_rt_sigaction, SIGBUS, &act, NULL, sizeof(act.mask)) != 0)
        return 2;
    sink = *(volatile uint32_t *)(buffer + 3);
    __asm__ volatile("lock btsq $1, %0" : "+m"(*(uint64_t *)(buffer + 60)) : : "memory", "cc");
    kill(getpid(), SIGBUS);
    return caught == 1 ? 0 : 3;
}
