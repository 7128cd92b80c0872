/* guard.h: internal to the core. Per-thread fault catching around a probe,
 * and the EFLAGS.AC switch. trap.c owns the signal handler. */
#ifndef SLP_GUARD_H
#define SLP_GUARD_H

#include <setjmp.h>
#include <signal.h>

#include "splitlock.h"

#define SLP_EFLAGS_AC 0x40000UL

struct slp_guard {
    sigjmp_buf env;
    volatile sig_atomic_t armed;  /* a fault now belongs to the probe */
    volatile sig_atomic_t ac;     /* we set EFLAGS.AC */
    struct slp_fault fault;
};

/* One per thread: probes in different threads never share a jump buffer. */
extern __thread struct slp_guard slp_guard;

/* Install the SIGBUS/SIGSEGV handlers once per process. SLP_OK or SLP_ESYS. */
int slp_guard_install(void);

#if SLP_HAS_X86_64
static inline void slp_ac_set(void)
{
    __asm__ __volatile__("pushfq\n\torl $0x40000, (%%rsp)\n\tpopfq" : : : "cc", "memory");
}
static inline void slp_ac_clear(void)
{
    __asm__ __volatile__("pushfq\n\tandl $~0x40000, (%%rsp)\n\tpopfq" : : : "cc", "memory");
}
#endif

#endif
