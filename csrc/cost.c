/* cost.c: what one split lock costs here, and what it does to the neighbours.
 *
 * slp_cost_sample times single locked ops one at a time (a fenced TSC read
 * around each), split and aligned interleaved so drift hits both, optionally
 * spaced out by a sleep (the spacing test tells a per-lock cost from one the
 * kernel charges once per window), within a cycle budget. Faults are caught
 * as in trap.c.
 *
 * slp_neighbour pins a victim thread to one CPU and an aggressor to another
 * for a while: the victim streams memory (or runs aligned atomics on its own
 * line), the aggressor runs nothing, aligned locked ops, or split locks; the
 * victim's work done and the aggressor's ops are returned.
 *
 * Needs: x86-64 with rdtscp, Linux (sched_setaffinity, pthreads). */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "guard.h"
#include "ops.h"
#include "tsc.h"

#if SLP_HAS_X86_64

#define SETTLE_CYCLES 10000u

static void sleep_ns(uint64_t ns)
{
    struct timespec t = {(time_t)(ns / 1000000000ULL), (long)(ns % 1000000000ULL)};
    while (nanosleep(&t, &t) != 0 && errno == EINTR) {
    }
}

int slp_cost_sample(const struct slp_op *op, void *split_addr, void *aligned_addr,
                    uint32_t n, uint64_t budget_cycles, uint64_t spacing_ns,
                    uint64_t *split_cycles, uint64_t *aligned_cycles, uint32_t *done,
                    struct slp_fault *fault)
{
    slp_loop_fn fn = slp_loop_lookup(op);
    volatile uint32_t i = 0;
    uint64_t began;
    int status;

    if (fn == NULL || split_addr == NULL || aligned_addr == NULL || split_cycles == NULL ||
        aligned_cycles == NULL || done == NULL)
        return SLP_EINVAL;
    if ((status = slp_guard_install()) != SLP_OK)
        return status;
    *done = 0;
    memset(&slp_guard.fault, 0, sizeof(slp_guard.fault));
    if (sigsetjmp(slp_guard.env, 1) != 0) {
        *done = i;
        if (fault != NULL)
            *fault = slp_guard.fault;
        return SLP_EFAULT;
    }
    slp_guard.armed = 1;
    fn(aligned_addr, op->bit, 1); /* warm the lines and the TLB */
    fn(split_addr, op->bit, 1);
    began = slp_tsc_begin();
    for (i = 0; i < n; i++) {
        /* Aligned first, and only after the last split lock has settled: right
         * after one, an aligned op on any line still pays ~10x its own cost
         * (measured here: 730 against 78 cycles), which is the split's. */
        uint64_t settle = slp_tsc_begin();
        while (slp_tsc_begin() - settle < SETTLE_CYCLES) {
        }
        uint64_t t0 = slp_tsc_begin();
        fn(aligned_addr, op->bit, 1);
        uint64_t t1 = slp_tsc_end();
        uint64_t t2 = slp_tsc_begin();
        fn(split_addr, op->bit, 1);
        uint64_t t3 = slp_tsc_end();
        aligned_cycles[i] = t1 - t0;
        split_cycles[i] = t3 - t2;
        if (spacing_ns)
            sleep_ns(spacing_ns);
        if (budget_cycles && slp_tsc_end() - began > budget_cycles) {
            i++;
            break;
        }
    }
    slp_guard.armed = 0;
    *done = i;
    return SLP_OK;
}

struct neighbour_job {
    int cpu;
    int kind;
    void *addr;
    int64_t bit;
    slp_loop_fn fn;
    volatile int *stop;
    uint64_t units;
    int error;
};

static int pin(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return sched_setaffinity(0, sizeof(set), &set);
}

#define STREAM_BYTES (16u << 20) /* twice 8 MiB: beyond any L2, into L3 and memory */

static void *aggressor(void *p)
{
    struct neighbour_job *j = p;
    if (pin(j->cpu) != 0) {
        j->error = errno;
        return NULL;
    }
    while (!*j->stop) {
        if (j->kind != SLP_NEIGHBOUR_IDLE)
            j->fn(j->addr, j->bit, 16);
        j->units += 16;
    }
    return NULL;
}

static void *victim(void *p)
{
    struct neighbour_job *j = p;
    if (pin(j->cpu) != 0) {
        j->error = errno;
        return NULL;
    }
    if (j->kind == SLP_VICTIM_STREAM) {
        unsigned char *a = malloc(STREAM_BYTES), *b = malloc(STREAM_BYTES);
        if (a == NULL || b == NULL) {
            free(a);
            free(b);
            j->error = ENOMEM;
            return NULL;
        }
        memset(a, 1, STREAM_BYTES);
        memset(b, 2, STREAM_BYTES);
        while (!*j->stop) {
            for (size_t off = 0; off < STREAM_BYTES && !*j->stop; off += 1u << 16) {
                memcpy(b + off, a + off, 1u << 16);
                j->units += 1u << 16;
            }
        }
        free(a);
        free(b);
    } else {
        static _Alignas(64) volatile uint64_t own_line;
        while (!*j->stop) {
            for (int k = 0; k < 64; k++)
                __atomic_fetch_add(&own_line, 1, __ATOMIC_SEQ_CST); /* lock xadd, aligned */
            j->units += 64;
        }
    }
    return NULL;
}

int slp_neighbour(const struct slp_op *op, void *split_addr, void *aligned_addr,
                  int victim_cpu, int aggressor_cpu, int victim_kind, int aggressor_kind,
                  uint32_t ms, struct slp_neighbour_result *out)
{
    slp_loop_fn fn = slp_loop_lookup(op);
    volatile int stop = 0;
    struct neighbour_job v, a;
    pthread_t vt, at;
    struct timespec t0, t1;

    if (fn == NULL || out == NULL || split_addr == NULL || aligned_addr == NULL || ms == 0 ||
        victim_cpu == aggressor_cpu)
        return SLP_EINVAL;
    memset(&v, 0, sizeof(v));
    memset(&a, 0, sizeof(a));
    v.cpu = victim_cpu;
    v.kind = victim_kind;
    v.stop = &stop;
    a.cpu = aggressor_cpu;
    a.kind = aggressor_kind;
    a.addr = aggressor_kind == SLP_NEIGHBOUR_SPLIT ? split_addr : aligned_addr;
    a.bit = op->bit;
    a.fn = fn;
    a.stop = &stop;
    if (pthread_create(&vt, NULL, victim, &v) != 0)
        return SLP_ESYS;
    if (pthread_create(&at, NULL, aggressor, &a) != 0) {
        stop = 1;
        pthread_join(vt, NULL);
        return SLP_ESYS;
    }
    clock_gettime(CLOCK_MONOTONIC, &t0);
    sleep_ns((uint64_t)ms * 1000000ULL);
    stop = 1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    pthread_join(at, NULL);
    pthread_join(vt, NULL);
    if (v.error || a.error) {
        errno = v.error ? v.error : a.error;
        return SLP_ESYS;
    }
    out->victim_units = v.units;
    out->aggressor_ops = aggressor_kind == SLP_NEIGHBOUR_IDLE ? 0 : a.units;
    out->elapsed_ns = (uint64_t)(t1.tv_sec - t0.tv_sec) * 1000000000ULL +
                      (uint64_t)(t1.tv_nsec - t0.tv_nsec);
    return SLP_OK;
}

#else /* !SLP_HAS_X86_64 */

int slp_cost_sample(const struct slp_op *op, void *split_addr, void *aligned_addr,
                    uint32_t n, uint64_t budget_cycles, uint64_t spacing_ns,
                    uint64_t *split_cycles, uint64_t *aligned_cycles, uint32_t *done,
                    struct slp_fault *fault)
{
    (void)op; (void)split_addr; (void)aligned_addr; (void)n; (void)budget_cycles;
    (void)spacing_ns; (void)split_cycles; (void)aligned_cycles; (void)done; (void)fault;
    return SLP_EUNSUPPORTED;
}

int slp_neighbour(const struct slp_op *op, void *split_addr, void *aligned_addr,
                  int victim_cpu, int aggressor_cpu, int victim_kind, int aggressor_kind,
                  uint32_t ms, struct slp_neighbour_result *out)
{
    (void)op; (void)split_addr; (void)aligned_addr; (void)victim_cpu; (void)aggressor_cpu;
    (void)victim_kind; (void)aggressor_kind; (void)ms; (void)out;
    return SLP_EUNSUPPORTED;
}

#endif
