/* tsc.h: internal to the core. The fenced TSC reads every timing uses:
 * lfence;rdtsc;lfence before, rdtscp;lfence after, so only what lies
 * between is counted. Needs: x86-64 with rdtscp. */
#ifndef SLP_TSC_H
#define SLP_TSC_H

#include <stdint.h>

static inline uint64_t slp_tsc_begin(void)
{
    uint32_t lo, hi;
    __asm__ __volatile__("lfence\n\trdtsc\n\tlfence" : "=a"(lo), "=d"(hi) : : "memory");
    return ((uint64_t)hi << 32) | lo;
}

static inline uint64_t slp_tsc_end(void)
{
    uint32_t lo, hi, aux;
    __asm__ __volatile__("rdtscp\n\tlfence" : "=a"(lo), "=d"(hi), "=c"(aux) : : "memory");
    (void)aux;
    return ((uint64_t)hi << 32) | lo;
}

#endif
