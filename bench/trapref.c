/* trapref.c: the raw alignment-trap mechanisms, minimal, as the reference
 * `make bench` holds the tool's tracers against (written apart from them).
 *
 *   trapref inproc N   handlers in this process: SIGBUS clears AC and sets TF,
 *                      SIGTRAP sets AC and clears TF; N misaligned loads
 *   trapref ptrace N   a child does the N loads; the parent stops it at each
 *                      SIGBUS, clears AC, single-steps, sets AC, continues
 *   trapref none N     the N loads without AC: the loop's own cost
 * Prints nanoseconds per load. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#define AC 0x40000ULL
#define TF 0x100ULL

static _Alignas(64) unsigned char data[64];

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void ac(int on)
{
    if (on)
        __asm__ volatile("pushfq\n\torl $0x40000,(%%rsp)\n\tpopfq" ::: "memory", "cc");
    else
        __asm__ volatile("pushfq\n\tandl $~0x40000,(%%rsp)\n\tpopfq" ::: "memory", "cc");
}

__attribute__((noinline)) static uint32_t loads(long n)
{
    uint32_t sum = 0;
    for (long i = 0; i < n; i++) {
        uint32_t v;
        __asm__ volatile("movl %1, %0" : "=r"(v) : "m"(*(volatile uint32_t *)(data + 3)));
        sum += v;
    }
    return sum;
}

void bus_entry(int, siginfo_t *, void *);
void trap_entry(int, siginfo_t *, void *);
__asm__(".text\nbus_entry:\n\tpushfq\n\tandl $~0x40000,(%rsp)\n\tpopfq\n\tjmp on_bus\n"
        "trap_entry:\n\tpushfq\n\tandl $~0x40000,(%rsp)\n\tpopfq\n\tjmp on_trap\n");

__attribute__((used)) static void on_bus(int s, siginfo_t *si, void *c)
{
    greg_t *g = ((ucontext_t *)c)->uc_mcontext.gregs;
    (void)s;
    (void)si;
    g[REG_EFL] = (greg_t)(((uint64_t)g[REG_EFL] & ~AC) | TF);
}

__attribute__((used)) static void on_trap(int s, siginfo_t *si, void *c)
{
    greg_t *g = ((ucontext_t *)c)->uc_mcontext.gregs;
    (void)s;
    (void)si;
    g[REG_EFL] = (greg_t)(((uint64_t)g[REG_EFL] | AC) & ~TF);
}

static double inproc(long n)
{
    struct sigaction sa;
    double t;
    memset(&sa, 0, sizeof(sa));
    sa.sa_flags = SA_SIGINFO;
    sa.sa_sigaction = bus_entry;
    sigaction(SIGBUS, &sa, NULL);
    sa.sa_sigaction = trap_entry;
    sigaction(SIGTRAP, &sa, NULL);
    t = now();
    ac(1);
    loads(n);
    ac(0);
    return now() - t;
}

static double traced(long n)
{
    struct user_regs_struct r;
    int status;
    double t;
    pid_t pid = fork();

    if (pid == 0) {
        ptrace(PTRACE_TRACEME, 0, 0, 0);
        raise(SIGSTOP);
        ac(1);
        loads(n);
        ac(0);
        _exit(0);
    }
    waitpid(pid, &status, 0);
    t = now();
    ptrace(PTRACE_CONT, pid, 0, 0);
    for (;;) {
        waitpid(pid, &status, 0);
        if (WIFEXITED(status) || WIFSIGNALED(status))
            break;
        if (WSTOPSIG(status) != SIGBUS) {
            ptrace(PTRACE_CONT, pid, 0, (void *)(uintptr_t)WSTOPSIG(status));
            continue;
        }
        ptrace(PTRACE_GETREGS, pid, 0, &r);
        r.eflags &= ~AC;
        ptrace(PTRACE_SETREGS, pid, 0, &r);
        ptrace(PTRACE_SINGLESTEP, pid, 0, 0);
        waitpid(pid, &status, 0);
        ptrace(PTRACE_GETREGS, pid, 0, &r);
        r.eflags |= AC;
        ptrace(PTRACE_SETREGS, pid, 0, &r);
        ptrace(PTRACE_CONT, pid, 0, 0);
    }
    return now() - t;
}

int main(int argc, char **argv)
{
    long n = argc > 2 ? strtol(argv[2], NULL, 10) : 10000;
    double ns;

    if (argc < 2)
        return 2;
    if (!strcmp(argv[1], "inproc"))
        ns = inproc(n);
    else if (!strcmp(argv[1], "ptrace"))
        ns = traced(n);
    else {
        double t = now();
        loads(n);
        ns = now() - t;
    }
    printf("%.1f\n", ns / (double)n);
    return 0;
}
