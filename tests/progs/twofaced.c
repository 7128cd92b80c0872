/* twofaced.c: one locked instruction that splits a line at one placement of
 * its data and is misaligned inside a line at another: a site that is both
 * a split and a hazard. Counts of either kind must include it. */
#include <stdint.h>

static _Alignas(64) unsigned char buffer[128];

__attribute__((noinline)) static void bts(volatile uint64_t *p)
{
    __asm__ volatile("lock btsq $3, %0" : "+m"(*p) : : "memory", "cc");
}

int main(void)
{
    for (int i = 0; i < 3; i++)
        bts((volatile uint64_t *)(buffer + 60)); /* bytes 60..67: splits */
    for (int i = 0; i < 2; i++)
        bts((volatile uint64_t *)(buffer + 4)); /* bytes 4..11: misaligned, one line */
    return 0;
}
