/* blockall.c: blocks every signal with a raw rt_sigprocmask system call (past
 * the C library, as some runtimes do), then does one misaligned locked op and
 * exits 0. Untraced it lives; under the agent the alignment trap is a blocked
 * SIGBUS, which the kernel turns into death (run says why); under ptrace it
 * lives, and the op is found. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <unistd.h>

static _Alignas(64) unsigned char buffer[128];

int main(void)
{
    uint64_t all = ~0ULL;

    syscall(SYS_rt_sigprocmask, SIG_BLOCK, &all, NULL, sizeof(all));
    __asm__ volatile("lock btsq $1, %0" : "+m"(*(uint64_t *)(buffer + 60)) : : "memory", "cc");
    return 0;
}
