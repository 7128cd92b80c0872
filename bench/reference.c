/* reference.c: the smallest honest measurement of lock btsq latency, written
 * independently of csrc/ so `make bench` can hold the tool's numbers against
 * it in the same run. Prints JSON: min TSC cycles per op, aligned and split. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static inline uint64_t start(void)
{
    uint32_t lo, hi;
    __asm__ __volatile__("lfence; rdtsc; lfence" : "=a"(lo), "=d"(hi) : : "memory");
    return ((uint64_t)hi << 32) | lo;
}

static inline uint64_t stop(void)
{
    uint32_t lo, hi, aux;
    __asm__ __volatile__("rdtscp; lfence" : "=a"(lo), "=d"(hi), "=c"(aux) : : "memory");
    return ((uint64_t)hi << 32) | lo;
}

static double min_cycles(char *p, uint64_t n, int batches)
{
    double best = 1e30;
    int64_t bit = 3;
    for (int b = 0; b < batches + 1; b++) {
        uint64_t t = start();
        for (uint64_t i = 0; i < n; i++)
            __asm__ __volatile__("lock btsq %1, %0" : "+m"(*(volatile uint64_t *)p) : "r"(bit) : "cc", "memory");
        t = stop() - t;
        if (b > 0 && (double)t / (double)n < best) /* batch 0 warms up */
            best = (double)t / (double)n;
    }
    return best;
}

int main(void)
{
    char *buf = aligned_alloc(4096, 8192);
    if (buf == NULL)
        return 1;
    memset(buf, 0, 8192);
    printf("{\"aligned\": %.3f, \"split\": %.3f}\n",
           min_cycles(buf + 4096, 4096, 15), min_cycles(buf + 4096 + 60, 8, 15));
    return 0;
}
