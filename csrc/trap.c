/* trap.c: the SIGBUS/SIGSEGV harness and the alignment-check trap.
 *
 * A fault inside an armed region (slp_run, slp_time, slp_trap) is recorded
 * in the thread's struct slp_guard and unwound with siglongjmp, so the probe
 * returns SLP_EFAULT instead of killing the process. A fault outside one is
 * handed back to whatever handler was there before (default: die), so real
 * crashes stay crashes.
 *
 * EFLAGS.AC stays set when the kernel enters a signal handler, and with AC
 * set any misaligned access faults again; so the handler's first
 * instructions (slp_fault_entry, below, in asm) clear AC before any C runs.
 * Needs: Linux, x86-64.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <ucontext.h>

#include "guard.h"
#include "ops.h"

__thread struct slp_guard slp_guard;

#if SLP_HAS_X86_64

static struct sigaction old_sigbus, old_sigsegv;
static int install_status = SLP_OK;
static int install_errno;
static pthread_once_t install_once = PTHREAD_ONCE_INIT;

void slp_fault_entry(int sig, siginfo_t *si, void *uctx);

/* Clear AC with aligned stack accesses only, then enter the C handler. */
__asm__(".text\n"
        ".globl slp_fault_entry\n"
        ".hidden slp_fault_entry\n"
        ".type slp_fault_entry, @function\n"
        "slp_fault_entry:\n"
        "\tpushfq\n"
        "\tandl $~0x40000, (%rsp)\n"
        "\tpopfq\n"
        "\tjmp slp_fault_handler\n"
        ".size slp_fault_entry, .-slp_fault_entry\n");

__attribute__((visibility("hidden"), used)) void
slp_fault_handler(int sig, siginfo_t *si, void *uctx)
{
    ucontext_t *uc = uctx;

    if (!slp_guard.armed) {
        /* Not ours: put the previous disposition back. A fault re-executes
         * and meets it; a signal sent by a process is raised again. */
        sigaction(sig, sig == SIGBUS ? &old_sigbus : &old_sigsegv, NULL);
        if (si->si_code <= 0)
            raise(sig);
        return;
    }
    uc->uc_mcontext.gregs[REG_EFL] &= ~SLP_EFLAGS_AC;
    slp_guard.fault.signo = sig;
    slp_guard.fault.si_code = si->si_code;
    slp_guard.fault.ac_armed = slp_guard.ac ? 1 : 0;
    slp_guard.fault.ip = (uint64_t)uc->uc_mcontext.gregs[REG_RIP];
    slp_guard.fault.addr = (uint64_t)(uintptr_t)si->si_addr;
    slp_guard.armed = 0;
    slp_guard.ac = 0;
    siglongjmp(slp_guard.env, 1);
}

static void install(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = slp_fault_entry;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGBUS, &sa, &old_sigbus) != 0 ||
        sigaction(SIGSEGV, &sa, &old_sigsegv) != 0) {
        install_status = SLP_ESYS;
        install_errno = errno;
    }
}

int slp_guard_install(void)
{
    pthread_once(&install_once, install);
    if (install_status != SLP_OK)
        errno = install_errno;
    return install_status;
}

/* Run the op `count` times with faults caught; with `ac`, under EFLAGS.AC. */
static int guarded_run(const struct slp_op *op, void *addr, uint64_t count, int ac,
                       struct slp_fault *fault)
{
    slp_loop_fn fn = slp_loop_lookup(op);
    int status;

    if (fn == NULL || addr == NULL)
        return SLP_EINVAL;
    if ((status = slp_guard_install()) != SLP_OK)
        return status;
    memset(&slp_guard.fault, 0, sizeof(slp_guard.fault));
    if (sigsetjmp(slp_guard.env, 1) == 0) {
        slp_guard.armed = 1;
        slp_guard.ac = ac;
        if (ac)
            slp_ac_set();
        fn(addr, op->bit, count);
        if (ac)
            slp_ac_clear();
        slp_guard.ac = 0;
        slp_guard.armed = 0;
        return SLP_OK;
    }
    slp_ac_clear(); /* the handler cleared it already; never leave it set */
    if (fault != NULL)
        *fault = slp_guard.fault;
    return SLP_EFAULT;
}

int slp_run(const struct slp_op *op, void *addr, uint64_t count,
            struct slp_fault *fault)
{
    return guarded_run(op, addr, count, 0, fault);
}

int slp_trap(const struct slp_op *op, void *addr, struct slp_fault *fault)
{
    return guarded_run(op, addr, 1, 1, fault);
}

#else /* !SLP_HAS_X86_64 */

int slp_guard_install(void) { return SLP_EUNSUPPORTED; }

int slp_run(const struct slp_op *op, void *addr, uint64_t count,
            struct slp_fault *fault)
{
    (void)op; (void)addr; (void)count; (void)fault;
    return SLP_EUNSUPPORTED;
}

int slp_trap(const struct slp_op *op, void *addr, struct slp_fault *fault)
{
    (void)op; (void)addr; (void)fault;
    return SLP_EUNSUPPORTED;
}

#endif
