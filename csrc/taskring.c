/* taskring.c: the side-band records perf keeps for a process tree: every
 * fork, thread, exit, name change (comm, exec) and executable mapping of a
 * task and all its descendants, in a ring buffer per CPU. This is how
 * `perf record -- CMD` follows a command; it works unprivileged for one's own
 * children (perf_event_paranoid <= 2) and sees threads that live for a
 * microsecond, which polling /proc cannot.
 *
 * An inherited event cannot be mapped with cpu -1 (the kernel refuses, so
 * children do not all write one buffer): open one per CPU. The records are
 * copied out whole, in order, each ending in its time stamp; the caller
 * parses them and merges the CPUs' rings by time.
 * Needs: Linux 3.12+ (PERF_COUNT_SW_DUMMY), any architecture. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "splitlock.h"

#ifdef __linux__
#include <linux/perf_event.h>

int slp_taskring_open(int pid, int cpu, uint32_t pages, struct slp_taskring *ring)
{
    struct perf_event_attr attr;
    long fd;
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    void *base;

    if (ring == NULL || pages == 0 || (pages & (pages - 1)) != 0)
        return SLP_EINVAL;
    memset(ring, 0, sizeof(*ring));
    ring->fd = -1;
    memset(&attr, 0, sizeof(attr));
    attr.size = sizeof(attr);
    attr.type = PERF_TYPE_SOFTWARE;
    attr.config = PERF_COUNT_SW_DUMMY;
    attr.inherit = 1;
    attr.task = 1;      /* PERF_RECORD_FORK / PERF_RECORD_EXIT */
    attr.comm = 1;      /* PERF_RECORD_COMM: prctl names and exec */
    attr.comm_exec = 1; /* ... flagged PERF_RECORD_MISC_COMM_EXEC on exec */
    attr.mmap = 1;      /* PERF_RECORD_MMAP of executable mappings */
    attr.sample_id_all = 1; /* every record ends with its time, so CPUs' rings merge in order */
    attr.sample_type = PERF_SAMPLE_TIME;
    attr.exclude_kernel = 1;
    attr.exclude_hv = 1;
    attr.watermark = 1;
    attr.wakeup_watermark = 1;
    fd = syscall(SYS_perf_event_open, &attr, pid, cpu, -1, PERF_FLAG_FD_CLOEXEC);
    if (fd < 0)
        return SLP_ESYS;
    base = mmap(NULL, (pages + 1) * page, PROT_READ | PROT_WRITE, MAP_SHARED, (int)fd, 0);
    if (base == MAP_FAILED) {
        int saved = errno;
        close((int)fd);
        errno = saved;
        return SLP_ESYS;
    }
    ring->fd = (int)fd;
    ring->base = base;
    ring->data_size = pages * page;
    ring->map_size = (pages + 1) * page;
    return SLP_OK;
}

int slp_taskring_read(struct slp_taskring *ring, void *out, size_t cap, size_t *len)
{
    struct perf_event_mmap_page *meta;
    const unsigned char *data;
    unsigned char *dst = out;
    uint64_t head, tail;
    size_t copied = 0;

    if (ring == NULL || ring->base == NULL || out == NULL || len == NULL)
        return SLP_EINVAL;
    meta = ring->base;
    data = (const unsigned char *)ring->base + meta->data_offset;
    if (meta->data_offset == 0) /* kernels before 4.1 leave it 0: data starts a page in */
        data = (const unsigned char *)ring->base + (ring->map_size - ring->data_size);
    head = __atomic_load_n(&meta->data_head, __ATOMIC_ACQUIRE);
    tail = meta->data_tail;
    while (tail < head) {
        struct perf_event_header h;
        size_t at = (size_t)(tail % ring->data_size);
        for (size_t i = 0; i < sizeof(h); i++) /* the header itself may wrap */
            ((unsigned char *)&h)[i] = data[(at + i) % ring->data_size];
        if (h.size < sizeof(h) || h.size > ring->data_size)
            break; /* cannot happen with a sane kernel; stop rather than loop */
        if (copied + h.size > cap)
            break; /* the caller reads again for the rest */
        for (size_t i = 0; i < h.size; i++)
            dst[copied + i] = data[(at + i) % ring->data_size];
        copied += h.size;
        tail += h.size;
    }
    __atomic_store_n(&meta->data_tail, tail, __ATOMIC_RELEASE);
    *len = copied;
    return SLP_OK;
}

int slp_taskring_close(struct slp_taskring *ring)
{
    if (ring == NULL)
        return SLP_EINVAL;
    if (ring->base != NULL)
        munmap(ring->base, ring->map_size);
    if (ring->fd >= 0)
        close(ring->fd);
    ring->base = NULL;
    ring->fd = -1;
    return SLP_OK;
}

#else

int slp_taskring_open(int pid, int cpu, uint32_t pages, struct slp_taskring *ring)
{
    (void)pid;
    (void)cpu;
    (void)pages;
    (void)ring;
    return SLP_EUNSUPPORTED;
}

int slp_taskring_read(struct slp_taskring *ring, void *out, size_t cap, size_t *len)
{
    (void)ring;
    (void)out;
    (void)cap;
    (void)len;
    return SLP_EUNSUPPORTED;
}

int slp_taskring_close(struct slp_taskring *ring)
{
    (void)ring;
    return SLP_EUNSUPPORTED;
}

#endif
