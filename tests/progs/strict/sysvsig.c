/* sysvsig.c: compiled with -std=c11 (strict ISO C), so glibc turns signal()
 * into __sysv_signal, as Debian's zstd does. It installs a SIGBUS handler
 * that exits 7, makes misaligned loads and one split lock. Under the agent it
 * must end with 0: the agent keeps its own SIGBUS handler. */
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static _Alignas(64) unsigned char buffer[128];

static void bus(int sig)
{
    (void)sig;
    _Exit(7);
}

int main(void)
{
    volatile uint64_t *split = (volatile uint64_t *)(buffer + 60);
    uint32_t sum = 0;

    signal(SIGBUS, bus);
    for (int i = 1; i < 8; i++) {
        uint32_t v;
        memcpy(&v, buffer + i, sizeof(v)); /* may be an aligned access after all */
        sum += *(volatile uint32_t *)(buffer + i * 4 + 1); /* misaligned, unlocked */
    }
    __asm__ volatile("lock btsq $3, %0" : "+m"(*split) : : "memory", "cc");
    return (int)(sum & 0);
}
