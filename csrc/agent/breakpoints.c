/* breakpoints.c: breakpoint mode, the agent's fast way to trace.
 *
 * Instead of trapping every misaligned access (EFLAGS.AC: millions of traps
 * in glibc's string routines, none of them locked), put an int3 on the first
 * byte of each locked instruction of each loaded image that can take a
 * misaligned operand (the tool lists them, sitewire.h). When one runs, the
 * SIGTRAP handler works out its operand's address from the registers,
 * records it if misaligned (the same record the AC mode makes), and resumes
 * at a copy of the instruction in a slot near the image, followed by a jump
 * back; the original is never put back, so other threads never miss it.
 * A RIP-relative copy gets its displacement moved by the distance.
 *
 * New images are learnt at the loader's debugger hook (r_debug.r_brk, the
 * function the loader calls after each change to its list, as gdb does):
 * it gets a breakpoint too. Everything here may run inside our SIGTRAP
 * handler with every signal blocked, so it calls no libc function that could
 * itself be patched (a lock, a cancellation point): raw system calls and
 * our own code only. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <ucontext.h>
#include <unistd.h>

#include "agent.h"
#include "sitewire.h"

#if defined(__x86_64__) && defined(__linux__)

#define MAX_IMAGES 1024
#define MAX_SITES (1u << 20)
#define SLOT_SIZE 32 /* insn (<= 15) + jmp *0(%rip) (6) + target (8) */
#define INT3 0xCC
#define RET 0xC3
#define ARCH_GET_FS 0x1003
#define ARCH_GET_GS 0x1004

struct image {
    uint64_t key_addr, key_ld; /* l_addr and l_ld: one link map entry */
    uint64_t lo, hi;           /* [lo, hi): where its sites lie */
    uint32_t count;
    int dead;                  /* unloaded: its range may be reused */
    int seen;                  /* in the current scan */
    uint32_t flags;            /* enum sls_image_flag */
    struct sls_site *sites;
    uint64_t *addr;            /* run-time address of each site, ascending */
    uint8_t *armed;            /* 1: the int3 is in place */
    uint8_t *slots;            /* SLOT_SIZE bytes per site */
};

static struct image *images[MAX_IMAGES];
static uint32_t image_count;
static char socket_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
static uint64_t loader_hook; /* r_brk, or 0 */
static uint64_t own_base;
static int scanning;
static int disarmed; /* the C library's sites and the loader hook were taken out */

static long sys(long n, long a, long b, long c, long d, long e, long f)
{
    return syscall(n, a, b, c, d, e, f);
}

static void *map_anon(size_t size)
{
    long p = sys(SYS_mmap, 0, (long)size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                 -1, 0);
    return (p < 0 && p > -4096) ? NULL : (void *)p;
}

static size_t page_round(size_t n)
{
    return (n + 4095) & ~(size_t)4095;
}

static int io_all(int write, int fd, void *data, size_t size)
{
    uint8_t *p = data;
    while (size > 0) {
        long n = sys(write ? SYS_write : SYS_read, fd, (long)p, (long)size, 0, 0, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        size -= (size_t)n;
    }
    return 0;
}

static char *put_number(char *at, uint64_t v)
{
    char digits[24];
    int n = 0;
    do {
        digits[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *at++ = digits[--n];
    return at;
}

/* Ask the tool for an image's sites: "DEV INO PATH\n" in, sls_reply + sites out. */
static struct sls_site *fetch_sites(const char *path, uint32_t *count, uint32_t *flags)
{
    struct sockaddr_un sa;
    struct stat st;
    struct sls_reply reply;
    struct sls_site *sites = NULL;
    char line[4200], *at = line;
    size_t path_len = strlen(path);
    int fd;

    if (path_len + 64 > sizeof(line) || sys(SYS_stat, (long)path, (long)&st, 0, 0, 0, 0) != 0)
        return NULL;
    fd = (int)sys(SYS_socket, AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, 0, 0, 0);
    if (fd < 0)
        return NULL;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, socket_path, sizeof(sa.sun_path) - 1);
    if (sys(SYS_connect, fd, (long)&sa, sizeof(sa), 0, 0, 0) != 0)
        goto out;
    at = put_number(at, (uint64_t)st.st_dev);
    *at++ = ' ';
    at = put_number(at, (uint64_t)st.st_ino);
    *at++ = ' ';
    memcpy(at, path, path_len);
    at += path_len;
    *at++ = '\n';
    if (io_all(1, fd, line, (size_t)(at - line)) != 0 || io_all(0, fd, &reply, sizeof(reply)) != 0)
        goto out;
    if (reply.magic != SLS_MAGIC || reply.status != 0 ||
        reply.site_size != sizeof(struct sls_site) || reply.count > MAX_SITES)
        goto out;
    *count = reply.count;
    *flags = reply.flags;
    if (reply.count == 0) {
        sites = map_anon(4096); /* an image with nothing to watch: still known */
        goto out;
    }
    sites = map_anon(page_round(reply.count * sizeof(struct sls_site)));
    if (sites != NULL && io_all(0, fd, sites, reply.count * sizeof(struct sls_site)) != 0) {
        sys(SYS_munmap, (long)sites, (long)page_round(reply.count * sizeof(*sites)), 0, 0, 0, 0);
        sites = NULL;
    }
out:
    sys(SYS_close, fd, 0, 0, 0, 0, 0);
    return sites;
}

/* Slots within +-2 GiB of the sites, so RIP-relative copies still reach. */
static uint8_t *map_slots(uint64_t lo, uint64_t hi, size_t size)
{
    for (int k = 0; k < 32; k++) {
        uint64_t step = (uint64_t)(k / 2 + 1) << 21;
        uint64_t hint = (k & 1) ? (lo & ~0x1FFFFFULL) - step - size : ((hi + 0x1FFFFF) & ~0x1FFFFFULL) + step;
        long p = sys(SYS_mmap, (long)hint, (long)size, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p < 0 && p > -4096)
            return NULL;
        uint64_t at = (uint64_t)p;
        uint64_t far = at > lo ? at + size - lo : hi - at;
        if (far < (1ULL << 30))
            return (uint8_t *)p;
        sys(SYS_munmap, p, (long)size, 0, 0, 0, 0);
    }
    return NULL;
}

/* The copy of site i, then a jump back to the instruction after it. */
static int fill_slot(uint8_t *slot, const struct sls_site *s, uint64_t at)
{
    uint64_t back = at + s->len;

    if (s->len == 0 || s->len > 15)
        return -1;
    memcpy(slot, s->insn, s->len);
    if (s->base == SLS_BASE_RIP) {
        int64_t target = (int64_t)(at + s->len) + s->disp;
        int64_t disp = target - (int64_t)((uint64_t)slot + s->len);
        int32_t d32 = (int32_t)disp;
        if (disp != d32 || s->disp_at == 0 || s->disp_at + 4 > s->len)
            return -1;
        memcpy(slot + s->disp_at, &d32, 4);
    }
    slot[s->len] = 0xFF; /* jmp *0(%rip) */
    slot[s->len + 1] = 0x25;
    memset(slot + s->len + 2, 0, 4);
    memcpy(slot + s->len + 6, &back, 8);
    return 0;
}

/* Write one byte into code: through /proc/self/mem (as a debugger does: no
 * window where the page is not executable), else by mprotect. */
static int poke(int mem, uint64_t at, uint8_t byte)
{
    if (mem >= 0 && sys(SYS_pwrite64, mem, (long)&byte, 1, (long)at, 0, 0) == 1)
        return 0;
    uint64_t page = at & ~4095ULL;
    if (sys(SYS_mprotect, (long)page, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, 0, 0, 0) != 0)
        return -1;
    *(volatile uint8_t *)at = byte;
    sys(SYS_mprotect, (long)page, 4096, PROT_READ | PROT_EXEC, 0, 0, 0);
    return 0;
}

static int open_mem(void)
{
    return (int)sys(SYS_openat, AT_FDCWD, (long)"/proc/self/mem", O_RDWR | O_CLOEXEC, 0, 0, 0);
}

static void arm_image(const char *path, uint64_t bias, uint64_t key_ld, int mem)
{
    struct image *img;
    uint32_t count = 0, flags = 0;
    struct sls_site *sites;

    if (image_count >= MAX_IMAGES || disarmed)
        return;
    sites = fetch_sites(path, &count, &flags);
    if (sites == NULL) {
        __atomic_add_fetch(&sla_buf->blind, 1, __ATOMIC_RELAXED);
        return;
    }
    img = map_anon(page_round(sizeof(*img)));
    if (img == NULL)
        return;
    img->key_addr = bias;
    img->key_ld = key_ld;
    img->seen = 1;
    img->flags = flags;
    img->sites = sites;
    img->count = count;
    if (count > 0) {
        img->addr = map_anon(page_round(count * sizeof(uint64_t)));
        img->armed = map_anon(page_round(count));
        img->lo = bias + sites[0].vaddr;
        img->hi = bias + sites[count - 1].vaddr + 1;
        img->slots = map_slots(img->lo, img->hi, page_round((size_t)count * SLOT_SIZE));
        if (img->addr == NULL || img->armed == NULL || img->slots == NULL) {
            __atomic_add_fetch(&sla_buf->unarmed, count, __ATOMIC_RELAXED);
            img->count = 0;
        }
    }
    uint8_t *ready = map_anon(page_round(count ? count : 1));
    if (ready == NULL) {
        __atomic_add_fetch(&sla_buf->unarmed, img->count, __ATOMIC_RELAXED);
        img->count = 0;
    }
    for (uint32_t i = 0; i < img->count; i++) {
        uint64_t at = bias + sites[i].vaddr;
        img->addr[i] = at;
        ready[i] = memcmp((const void *)at, sites[i].insn, sites[i].len) == 0 &&
                   fill_slot(img->slots + (size_t)i * SLOT_SIZE, &sites[i], at) == 0;
    }
    if (img->count > 0)
        sys(SYS_mprotect, (long)img->slots, (long)page_round((size_t)img->count * SLOT_SIZE),
            PROT_READ | PROT_EXEC, 0, 0, 0);
    /* Published before any int3 is written: a thread that hits one finds it. */
    images[image_count] = img;
    __atomic_store_n(&image_count, image_count + 1, __ATOMIC_RELEASE);
    for (uint32_t i = 0; i < img->count; i++) {
        if (ready[i]) {
            __atomic_store_n(&img->armed[i], 1, __ATOMIC_RELEASE);
            if (poke(mem, img->addr[i], INT3) == 0) {
                __atomic_add_fetch(&sla_buf->armed, 1, __ATOMIC_RELAXED);
                continue;
            }
            __atomic_store_n(&img->armed[i], 0, __ATOMIC_RELEASE);
        }
        __atomic_add_fetch(&sla_buf->unarmed, 1, __ATOMIC_RELAXED);
    }
    if (ready != NULL)
        sys(SYS_munmap, (long)ready, (long)page_round(count ? count : 1), 0, 0, 0, 0);
}

static const char *image_path(struct link_map *lm, int first, char *buf, size_t size)
{
    if (lm->l_name != NULL && lm->l_name[0] == '/')
        return lm->l_name;
    if (!first)
        return NULL; /* the vDSO, or a name we cannot open */
    long n = sys(SYS_readlink, (long)"/proc/self/exe", (long)buf, (long)size - 1, 0, 0, 0);
    if (n <= 0)
        return NULL;
    buf[n] = '\0';
    return buf;
}

/* Every image in the loader's list that we have not armed yet; images gone
 * from it are forgotten (their addresses may be reused). */
static void scan(void)
{
    char exe[4096];
    int first = 1, mem;

    if (__atomic_exchange_n(&scanning, 1, __ATOMIC_ACQUIRE))
        return;
    for (uint32_t k = 0; k < image_count; k++)
        images[k]->seen = 0;
    mem = open_mem();
    for (struct link_map *lm = _r_debug.r_map; lm != NULL; lm = lm->l_next, first = 0) {
        uint32_t k;
        for (k = 0; k < image_count; k++)
            if (!images[k]->dead && images[k]->key_addr == lm->l_addr &&
                images[k]->key_ld == (uint64_t)lm->l_ld)
                break;
        if (k < image_count) {
            images[k]->seen = 1;
            continue;
        }
        if (lm->l_addr == own_base && !first)
            continue; /* ourselves: our own atomics must never trap */
        const char *path = image_path(lm, first, exe, sizeof(exe));
        if (path != NULL)
            arm_image(path, lm->l_addr, (uint64_t)lm->l_ld, mem);
    }
    for (uint32_t k = 0; k < image_count; k++)
        if (!images[k]->seen)
            __atomic_store_n(&images[k]->dead, 1, __ATOMIC_RELEASE);
    if (mem >= 0)
        sys(SYS_close, mem, 0, 0, 0, 0, 0);
    __atomic_store_n(&scanning, 0, __ATOMIC_RELEASE);
}

int sla_breakpoints_start(const char *path)
{
    Dl_info self;
    int mem;

    if (strlen(path) >= sizeof(socket_path))
        return -1;
    memcpy(socket_path, path, strlen(path) + 1);
    if (dladdr((void *)sla_breakpoints_start, &self) == 0)
        return -1;
    own_base = (uint64_t)self.dli_fbase;
    scan();
    /* The loader's hook is a bare `ret` in glibc; anything else is left alone
     * and images loaded later go unwatched (counted as blind by the tool). */
    if (_r_debug.r_brk != 0 && *(const uint8_t *)_r_debug.r_brk == RET) {
        mem = open_mem();
        if (poke(mem, (uint64_t)_r_debug.r_brk, INT3) == 0)
            loader_hook = (uint64_t)_r_debug.r_brk;
        if (mem >= 0)
            sys(SYS_close, mem, 0, 0, 0, 0, 0);
    }
    return loader_hook ? 0 : 1;
}

/* glibc starts helper threads with every signal blocked for SIGEV_THREAD
 * timers and mq_notify, for aio and for getaddrinfo_a, and they run the C
 * library's locks: a breakpoint there would kill the program. So before the
 * first such call, every C library site gets its own byte back (the table
 * stays: a thread already trapped still finds its copy), and so does the
 * loader hook (a helper may dlopen); images loaded afterwards go unwatched. */
void sla_breakpoints_disarm(void)
{
    int mem;

    if (__atomic_exchange_n(&disarmed, 1, __ATOMIC_ACQ_REL))
        return;
    mem = open_mem();
    if (loader_hook != 0)
        poke(mem, loader_hook, RET);
    uint32_t n = __atomic_load_n(&image_count, __ATOMIC_ACQUIRE);
    for (uint32_t k = 0; k < n; k++) {
        struct image *img = images[k];
        if (img->dead || !(img->flags & SLS_C_LIBRARY))
            continue;
        for (uint32_t i = 0; i < img->count; i++)
            if (img->armed[i] && poke(mem, img->addr[i], img->sites[i].insn[0]) == 0)
                __atomic_add_fetch(&sla_buf->disarmed, 1, __ATOMIC_RELAXED);
    }
    if (mem >= 0)
        sys(SYS_close, mem, 0, 0, 0, 0, 0);
}

static uint64_t reg(const greg_t *g, int n)
{
    static const int order[16] = {REG_RAX, REG_RCX, REG_RDX, REG_RBX, REG_RSP, REG_RBP,
                                  REG_RSI, REG_RDI, REG_R8,  REG_R9,  REG_R10, REG_R11,
                                  REG_R12, REG_R13, REG_R14, REG_R15};
    return (uint64_t)g[order[n & 15]];
}

static uint64_t operand_address(const greg_t *g, const struct sls_site *s, uint64_t at)
{
    uint64_t ea = (uint64_t)(int64_t)s->disp, base = 0;

    if (s->base == SLS_BASE_RIP)
        ea += at + s->len;
    else if (s->base >= 0)
        ea += reg(g, s->base);
    if (s->index >= 0)
        ea += reg(g, s->index) * s->scale;
    if (s->flags & SLS_ADDR32)
        ea &= 0xFFFFFFFFULL;
    if (s->flags & (SLS_FS | SLS_GS)) {
        sys(SYS_arch_prctl, (s->flags & SLS_FS) ? ARCH_GET_FS : ARCH_GET_GS, (long)&base, 0, 0,
            0, 0);
        ea += base;
    }
    return ea;
}

static struct image *image_at(uint64_t ip, uint32_t *index)
{
    uint32_t n = __atomic_load_n(&image_count, __ATOMIC_ACQUIRE);

    for (uint32_t k = 0; k < n; k++) {
        struct image *img = images[k];
        if (__atomic_load_n(&img->dead, __ATOMIC_ACQUIRE) || ip < img->lo || ip >= img->hi)
            continue;
        uint32_t lo = 0, hi = img->count;
        while (lo < hi) {
            uint32_t mid = lo + (hi - lo) / 2;
            if (img->addr[mid] < ip)
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo < img->count && img->addr[lo] == ip &&
            __atomic_load_n(&img->armed[lo], __ATOMIC_ACQUIRE)) {
            *index = lo;
            return img;
        }
    }
    return NULL;
}

int sla_breakpoint_hit(ucontext_t *uc)
{
    greg_t *g = uc->uc_mcontext.gregs;
    uint64_t ip = (uint64_t)g[REG_RIP] - 1; /* int3 reports the byte after it */
    uint32_t i;
    struct image *img;

    if (loader_hook != 0 && ip == loader_hook) {
        if (_r_debug.r_state == RT_CONSISTENT && !__atomic_load_n(&disarmed, __ATOMIC_ACQUIRE))
            scan();
        /* Do what the hook's `ret` would have. */
        g[REG_RIP] = (greg_t) * (uint64_t *)(uintptr_t)g[REG_RSP];
        g[REG_RSP] += 8;
        return 1;
    }
    img = image_at(ip, &i);
    if (img == NULL)
        return 0;
    const struct sls_site *s = &img->sites[i];
    __atomic_add_fetch(&sla_buf->hits, 1, __ATOMIC_RELAXED);
    if (s->width > 1 && (operand_address(g, s, ip) & (uint64_t)(s->width - 1)) != 0) {
        g[REG_RIP] = (greg_t)ip;
        sla_record(uc, s->insn, s->len);
    }
    g[REG_RIP] = (greg_t)(uintptr_t)(img->slots + (size_t)i * SLOT_SIZE);
    return 1;
}

#endif
