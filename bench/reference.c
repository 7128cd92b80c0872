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

static int cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* 2,000 split ops timed one by one, each after the last one's bus lock has
 * settled (10,000 cycles of waiting): the median single-op cost. */
static double single_p50(char *p)
{
    static uint64_t t[2000];
    int64_t bit = 3;
    for (int i = 0; i < 2000; i++) {
        uint64_t wait = start();
        while (start() - wait < 10000) {
        }
        uint64_t s = start();
        __asm__ __volatile__("lock btsq %1, %0" : "+m"(*(volatile uint64_t *)p) : "r"(bit) : "cc", "memory");
        t[i] = stop() - s;
    }
    qsort(t, 2000, sizeof(t[0]), cmp);
    return (double)t[1000];
}

int main(void)
{
    char *buf = aligned_alloc(4096, 8192);
    if (buf == NULL)
        return 1;
    memset(buf, 0, 8192);
    printf("{\"aligned\": %.3f, \"split\": %.3f, \"split_single_p50\": %.1f}\n",
           min_cycles(buf + 4096, 4096, 15), min_cycles(buf + 4096 + 60, 8, 15),
           single_p50(buf + 4096 + 60));
    return 0;
}
