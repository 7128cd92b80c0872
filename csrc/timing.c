/* timing.c: TSC-timed batches of one locked op, and TSC calibration.
 *
 * A batch is fenced on both sides (lfence;rdtsc ... rdtscp;lfence) so the
 * ops inside are all that is counted. The minimum over batches is the
 * op's cost with the least interference; the median shows the noise.
 * Faults are caught as in trap.c (a kernel in split_lock_detect=fatal mode
 * answers a split lock with SIGBUS). Needs: x86-64 with rdtscp.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "guard.h"
#include "ops.h"
#include "tsc.h"

#if SLP_HAS_X86_64

#define MAX_AUTO_ITERATIONS (1ULL << 24)

static uint64_t time_batch(slp_loop_fn fn, void *addr, int64_t bit, uint64_t n)
{
    uint64_t t0 = slp_tsc_begin();
    fn(addr, bit, n);
    return slp_tsc_end() - t0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

int slp_time(const struct slp_op *op, void *addr, uint32_t batches,
             uint64_t iterations, uint64_t target_cycles,
             struct slp_timing *timing, struct slp_fault *fault)
{
    slp_loop_fn fn = slp_loop_lookup(op);
    uint64_t cycles[SLP_MAX_BATCHES];
    volatile uint64_t n = iterations;
    int status;

    if (fn == NULL || addr == NULL || timing == NULL || batches == 0 ||
        batches > SLP_MAX_BATCHES)
        return SLP_EINVAL;
    if ((status = slp_guard_install()) != SLP_OK)
        return status;
    memset(&slp_guard.fault, 0, sizeof(slp_guard.fault));
    if (sigsetjmp(slp_guard.env, 1) != 0) {
        if (fault != NULL)
            *fault = slp_guard.fault;
        return SLP_EFAULT;
    }
    slp_guard.armed = 1;
    if (n == 0) {
        /* Double until one batch lasts target_cycles: amortises the fences. */
        n = 1;
        while (n < MAX_AUTO_ITERATIONS && time_batch(fn, addr, op->bit, n) < target_cycles)
            n *= 2;
    }
    fn(addr, op->bit, n); /* warm the line and the TLB */
    for (uint32_t b = 0; b < batches; b++)
        cycles[b] = time_batch(fn, addr, op->bit, n);
    slp_guard.armed = 0;

    qsort(cycles, batches, sizeof(cycles[0]), cmp_u64);
    timing->iterations = n;
    timing->batches = batches;
    timing->min_cycles = (double)cycles[0] / (double)n;
    timing->median_cycles = (double)cycles[batches / 2] / (double)n;
    return SLP_OK;
}

int slp_tsc_hz(uint32_t ms, double *hz)
{
    struct timespec t0, t1;
    uint64_t c0, c1;
    double elapsed;

    if (hz == NULL || ms == 0)
        return SLP_EINVAL;
    if (clock_gettime(CLOCK_MONOTONIC_RAW, &t0) != 0)
        return SLP_ESYS;
    c0 = slp_tsc_begin();
    do {
        if (clock_gettime(CLOCK_MONOTONIC_RAW, &t1) != 0)
            return SLP_ESYS;
        elapsed = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
    } while (elapsed < (double)ms * 1e-3);
    c1 = slp_tsc_end();
    *hz = (double)(c1 - c0) / elapsed;
    return SLP_OK;
}

#else /* !SLP_HAS_X86_64 */

int slp_time(const struct slp_op *op, void *addr, uint32_t batches,
             uint64_t iterations, uint64_t target_cycles,
             struct slp_timing *timing, struct slp_fault *fault)
{
    (void)op; (void)addr; (void)batches; (void)iterations;
    (void)target_cycles; (void)timing; (void)fault;
    return SLP_EUNSUPPORTED;
}

int slp_tsc_hz(uint32_t ms, double *hz)
{
    (void)ms; (void)hz;
    return SLP_EUNSUPPORTED;
}

#endif
