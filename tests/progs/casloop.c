/* casloop.c: a compare-and-swap loop, `lock cmpxchg %reg,(%reg)` (4 bytes)
 * then `jne` back, as glibc's mutexes have it: too short for a jump of its
 * own, so breakpoint mode moves the jne into the stub with it. Two threads
 * add 1 through it 20,000 times each, one to an aligned counter, one to a
 * split one; each total must be exact. Exit 0, or 1 and 2 for a counter off. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <string.h>

static _Alignas(64) unsigned char line[192];

__attribute__((noinline)) static void add_one(uint32_t *counter)
{
    uint32_t old = __atomic_load_n(counter, __ATOMIC_RELAXED);
    while (!__atomic_compare_exchange_n(counter, &old, old + 1, 0, __ATOMIC_SEQ_CST,
                                        __ATOMIC_RELAXED))
        ;
}

static void *adder(void *counter)
{
    for (int k = 0; k < 20000; k++)
        add_one(counter);
    return NULL;
}

int main(void)
{
    pthread_t a, b;
    uint32_t total;

    pthread_create(&a, NULL, adder, line + 128); /* aligned */
    pthread_create(&b, NULL, adder, line + 62);  /* crosses the line at 64 */
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    memcpy(&total, line + 128, 4);
    if (total != 40000 / 2)
        return 1;
    memcpy(&total, line + 62, 4);
    return total == 40000 / 2 ? 0 : 2;
}
