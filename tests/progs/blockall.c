/* blockall.c: blocks every signal with a raw rt_sigprocmask system call (past
 * the C library, as some runtimes do), then does one misaligned locked op and
 * exits 0 (3 if SIGTRAP is no longer blocked afterwards). The op is
 * `lock btsq $1, line+60(%rip)` (10 bytes), or with "short" `lock incl (%reg)`
 * (3 or 4 bytes). Untraced it lives. Under the agent's alignment mode the
 * trap is a blocked SIGBUS, which the kernel turns into death (run says
 * why); under breakpoints the long op runs through a jump (no signal), the
 * short one hops to its stub through alignment filler, and both live; under
 * ptrace it lives, and the op is found. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static _Alignas(64) unsigned char buffer[128];

int main(int argc, char **argv)
{
    uint64_t all = ~0ULL, now = 0;

    syscall(SYS_rt_sigprocmask, SIG_BLOCK, &all, NULL, sizeof(all));
    if (argc > 1 && strcmp(argv[1], "short") == 0) {
        uint32_t *at = (uint32_t *)(buffer + 62);
        __asm__ volatile("lock incl (%0)" : : "r"(at) : "memory", "cc");
    } else {
        __asm__ volatile("lock btsq $1, %0" : "+m"(*(uint64_t *)(buffer + 60)) : : "memory", "cc");
    }
    syscall(SYS_rt_sigprocmask, SIG_BLOCK, NULL, &now, sizeof(now));
    return (now & (1ULL << (SIGTRAP - 1))) ? 0 : 3;
}
