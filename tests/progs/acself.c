/* acself.c: a program that turns the alignment check on itself and expects
 * its own SIGBUS (BUS_ADRALN) for a misaligned load; its handler clears AC in
 * the interrupted context and the load runs again. Exit 0 when the handler
 * ran, 9 when it never did. Under the agent's alignment mode its trap cannot
 * be told from ours; breakpoint mode never sets AC, so it is the program's. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <ucontext.h>

static _Alignas(64) unsigned char buffer[128];
static volatile sig_atomic_t caught;
static volatile uint32_t sink;

static void on_bus(int sig, siginfo_t *si, void *uctx)
{
    ucontext_t *uc = uctx;
    (void)sig;
    if (si->si_code == BUS_ADRALN)
        caught++;
    uc->uc_mcontext.gregs[REG_EFL] &= ~0x40000LL; /* AC off: the load runs again */
}

int main(void)
{
    struct sigaction act;

    memset(&act, 0, sizeof(act));
    act.sa_sigaction = on_bus;
    act.sa_flags = SA_SIGINFO;
    sigaction(SIGBUS, &act, NULL);
    __asm__ volatile("pushfq\n\torl $0x40000, (%%rsp)\n\tpopfq" ::: "memory", "cc");
    sink = *(volatile uint32_t *)(buffer + 3);
    __asm__ volatile("pushfq\n\tandl $~0x40000, (%%rsp)\n\tpopfq" ::: "memory", "cc");
    return caught ? 0 : 9;
}
