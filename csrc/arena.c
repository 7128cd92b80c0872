/* arena.c: probe memory. Read-write pages between two PROT_NONE guard pages,
 * populated up front, so a probe at any offset touches only this memory and
 * never takes a first-touch page fault inside a timed batch. Needs: mmap. */
#define _GNU_SOURCE
#include <sys/mman.h>
#include <unistd.h>

#include "splitlock.h"

static size_t page_size(void)
{
    long p = sysconf(_SC_PAGESIZE);
    return p > 0 ? (size_t)p : 4096;
}

int slp_arena_map(size_t pages, void **base)
{
    size_t ps = page_size();
    char *m;

    if (pages == 0 || base == NULL)
        return SLP_EINVAL;
    m = mmap(NULL, (pages + 2) * ps, PROT_READ | PROT_WRITE,
             MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (m == MAP_FAILED)
        return SLP_ESYS;
    if (mprotect(m, ps, PROT_NONE) != 0 ||
        mprotect(m + (pages + 1) * ps, ps, PROT_NONE) != 0) {
        munmap(m, (pages + 2) * ps);
        return SLP_ESYS;
    }
    *base = m + ps;
    return SLP_OK;
}

int slp_arena_unmap(void *base, size_t pages)
{
    size_t ps = page_size();

    if (base == NULL || pages == 0)
        return SLP_EINVAL;
    if (munmap((char *)base - ps, (pages + 2) * ps) != 0)
        return SLP_ESYS;
    return SLP_OK;
}
