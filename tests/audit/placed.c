/* placed.c: locked ops on global and static objects placed to split a line,
 * to be misaligned inside one, and to be clean, for `audit` and `run --trace`
 * tests. Every op is on a fixed address (RIP-relative, or absolute on i386),
 * so the audit's verdicts are exact; one more goes through a pointer.
 * Compiles freestanding (-m32 -ffreestanding -c works without 32-bit libc). */
#include <stdint.h>

struct seed { char pad[60]; uint32_t flags; uint32_t more; };  /* flags at 60 */
struct ctl { uint32_t head; uint32_t flags; uint64_t seq; };     /* 16 bytes */
struct __attribute__((packed)) wire { uint8_t tag; uint32_t count; };

_Alignas(64) struct seed g_seed;       /* btsq on flags: 60..67, a split lock */
_Alignas(64) struct ctl g_ctl[4];      /* btsq on g_ctl[3].flags: 52..59, misaligned */
_Alignas(64) struct wire g_wire;       /* lock incl on count at 1: misaligned */
_Alignas(64) uint64_t g_counter;       /* lock xadd on 8 aligned bytes: clean */
static _Alignas(64) struct ctl s_ctl;  /* lock incl on head: clean */

#define LOCKED(op, lval) __asm__ volatile(op " %0" : "+m"(lval) : : "memory", "cc")
#ifdef __x86_64__
typedef uint64_t wide_t; /* the 8-byte bts of the seed */
#define BTS "lock btsq"
#define XADD "lock xaddq"
#else
typedef uint32_t wide_t; /* i386 has no 8-byte bts: the 4-byte one */
#define BTS "lock btsl"
#define XADD "lock xaddl"
#endif

__attribute__((noinline)) void seed_split(void)
{
    /* the seed's bug class: an 8-byte bts on a 4-byte field */
    __asm__ volatile(BTS " $3, %0" : "+m"(*(wide_t *)&g_seed.flags) : : "memory", "cc");
}

__attribute__((noinline)) void ctl_misaligned(void)
{
    __asm__ volatile(BTS " $1, %0" : "+m"(*(wide_t *)&g_ctl[3].flags) : : "memory", "cc");
}

__attribute__((noinline)) void straddle(void)
{
    /* 4 bytes at 62: a split lock in both ABIs */
    LOCKED("lock incl", *(uint32_t *)((char *)&g_seed + 62));
}

__attribute__((noinline)) void wire_misaligned(void)
{
    LOCKED("lock incl", g_wire.count);
}

__attribute__((noinline)) void counter_clean(void)
{
    wide_t one = 1;
    __asm__ volatile(XADD " %0, %1" : "+r"(one), "+m"(*(wide_t *)&g_counter) : : "memory", "cc");
}

__attribute__((noinline)) void static_clean(void)
{
    LOCKED("lock incl", s_ctl.head);
}

__attribute__((noinline)) void through_pointer(struct ctl *p)
{
    LOCKED("lock incl", p->flags);
}

#ifdef PLACED_ABSOLUTE
/* as kernel code addresses a global (-mcmodel=kernel): absolute, R_X86_64_32S */
__attribute__((noinline)) void absolute_misaligned(void)
{
    __asm__ volatile("lock incl g_wire+1" : : : "memory", "cc");
}
#endif

void run_all(void)
{
    seed_split();
    straddle();
    ctl_misaligned();
    wire_misaligned();
    counter_clean();
    static_clean();
    through_pointer(&g_ctl[0]);
}

#ifndef PLACED_NO_MAIN
#include <stdlib.h>

int main(void)
{
    /* one on the heap: 4 bytes at 2 bytes into a 64-aligned block, misaligned */
    char *heap = aligned_alloc(64, 128);

    run_all();
    if (heap != NULL)
        through_pointer((struct ctl *)(void *)(heap - 2));
    free(heap);
    return 0;
}
#endif
