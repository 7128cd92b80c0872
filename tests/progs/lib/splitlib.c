/* splitlib.c: a shared library for lifecycle.c to dlopen: one split lock in
 * a function of its own, found only if images loaded later are watched. */
#include <stdint.h>

static _Alignas(64) unsigned char lib_lines[128];

void split_in_library(void)
{
    __asm__ volatile("lock btsq $1, %0" : "+m"(*(uint64_t *)(lib_lines + 60)) : : "memory", "cc");
}
