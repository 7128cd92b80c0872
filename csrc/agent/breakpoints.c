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
 * Where it can, the int3 then becomes a jump (its operand made of general
 * registers; a site under 5 bytes brings the instructions the tool found
 * safe to move, sls_site.moved, and the copy runs them after it, a final
 * conditional jump re-aimed; or, moving nothing, it hops: a 2-byte `jmp rel8`
 * into alignment filler nothing runs, sls_site.hop, whose 5 bytes the tool
 * read and we check again): a 5-byte `jmp` to a stub in the slot that
 * works out the operand's address itself, and when it is aligned
 * (every real program, nearly every time) runs the copy and jumps back: no
 * signal at all, so a watched op costs nanoseconds, not a SIGTRAP's ~3 us,
 * and a thread with every signal blocked runs it safely. A misaligned one
 * unblocks SIGTRAP for a moment and traps at the stub's own int3, where the
 * handler takes the registers back from the stub's frame, records, puts the
 * thread's signal mask back and resumes at the copy. The int3 goes in first
 * and the jump's last bytes before its first, with every CPU serialised
 * between (membarrier SYNC_CORE, as the kernel's text_poke_bp does), so no
 * thread ever runs half an instruction.
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
#include <signal.h>
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
/* A slot: the jump's stub at 0, the copy of the instruction and its jump
 * back at COPY_AT (the int3 path resumes there), the misaligned path at
 * MISALIGNED_AT ending in the int3 at REPORT_AT, SIGTRAP's mask bit last. */
#define SLOT_SIZE 192
#define COPY_AT 64
#define MISALIGNED_AT 112
#define REPORT_AT (MISALIGNED_AT + 40) /* the misaligned path's int3 */
#define MASK_AT 184
#define STUB_FRAME 9  /* words the misaligned path leaves on the stack */
#define RED_ZONE 128  /* the System V ABI's: leaf functions keep data below rsp */
#define JMP_REL32 0xE9
#define JMP_REL8 0xEB
#define MEMBARRIER_QUERY 0
#define MEMBARRIER_PRIVATE_EXPEDITED_SYNC_CORE (1 << 5)
#define MEMBARRIER_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE (1 << 6)
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
    uint8_t *armed;            /* ARMED_INT3 or ARMED_JUMP: watched */
    uint8_t *slots;            /* SLOT_SIZE bytes per site */
};

enum { ARMED_INT3 = 1, ARMED_JUMP = 2 };

static struct image *images[MAX_IMAGES];
static int sync_core_ok; /* membarrier SYNC_CORE registered: jumps may be written */
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

/* The copy of site i at COPY_AT, the instructions moved with it (a final
 * conditional jump re-aimed as jcc rel32), then a jump back past them. */
static int fill_copy(uint8_t *slot, const struct sls_site *s, uint64_t at)
{
    uint64_t end = at + s->len + s->moved;
    uint8_t *copy = slot + COPY_AT, *p;
    uint32_t plain = s->moved;

    if (s->len == 0 || s->len > 15 || s->len + s->moved > SLS_INSN_MAX)
        return -1;
    memcpy(copy, s->insn, s->len);
    if (s->base == SLS_BASE_RIP) {
        int64_t target = (int64_t)(at + s->len) + s->disp;
        int64_t disp = target - (int64_t)((uint64_t)copy + s->len);
        int32_t d32 = (int32_t)disp;
        if (disp != d32 || s->disp_at == 0 || s->disp_at + 4 > s->len)
            return -1;
        memcpy(copy + s->disp_at, &d32, 4);
    }
    p = copy + s->len;
    if (s->flags & SLS_MOVED_JCC) {
        /* The jcc is the last moved instruction: rel8 (7x) or rel32 (0F 8x). */
        const uint8_t *moved = s->insn + s->len;
        uint32_t jlen = 0;
        int64_t rel = 0;
        for (uint32_t k = 0; k < s->moved; k++) {
            if (k + 2 == s->moved && (moved[k] & 0xF0) == 0x70) {
                jlen = 2;
                rel = (int8_t)moved[k + 1];
            } else if (k + 6 == s->moved && moved[k] == 0x0F && (moved[k + 1] & 0xF0) == 0x80) {
                jlen = 6;
                int32_t r32;
                memcpy(&r32, moved + k + 2, 4);
                rel = r32;
            }
        }
        if (jlen == 0)
            return -1;
        plain = s->moved - jlen;
        uint8_t cond = jlen == 2 ? (uint8_t)(moved[plain] & 0x0F) : (uint8_t)(moved[plain + 1] & 0x0F);
        memcpy(p, moved, plain);
        p += plain;
        int64_t target = (int64_t)end + rel;
        int64_t disp = target - (int64_t)((uint64_t)p + 6);
        int32_t d32 = (int32_t)disp;
        if (disp != d32)
            return -1;
        *p++ = 0x0F;
        *p++ = (uint8_t)(0x80 | cond);
        memcpy(p, &d32, 4);
        p += 4;
    } else {
        memcpy(p, s->insn + s->len, plain);
        p += plain;
    }
    *p++ = 0xFF; /* jmp *0(%rip) */
    *p++ = 0x25;
    memset(p, 0, 4);
    memcpy(p + 4, &end, 8);
    return p + 12 - slot > MISALIGNED_AT ? -1 : 0;
}

static uint8_t *put(uint8_t *at, const void *bytes, size_t n)
{
    memcpy(at, bytes, n);
    return at + n;
}

/* `lea rax, [base + index*scale + disp]` with the stub's own pushes (the red
 * zone skipped, flags and rax saved) allowed for when the base is rsp; a
 * fixed address (RIP-relative, or no registers) as `mov rax, imm64`. */
static uint8_t *put_address(uint8_t *p, const struct sls_site *s, uint64_t at)
{
    static const uint8_t scale_bits[9] = {0, 0, 1, 0, 2, 0, 0, 0, 3};

    if (s->base == SLS_BASE_RIP || (s->base < 0 && s->index < 0)) {
        uint64_t ea = (uint64_t)(int64_t)s->disp + (s->base == SLS_BASE_RIP ? at + s->len : 0);
        *p++ = 0x48;
        *p++ = 0xB8; /* mov rax, imm64 */
        return put(p, &ea, 8);
    }
    int64_t disp = s->disp + (s->base == 4 ? RED_ZONE + 16 : 0); /* rsp moved by the stub */
    int32_t d32 = (int32_t)disp;
    if (disp != d32)
        return NULL;
    uint8_t rex = 0x48 | (s->index >= 8 ? 0x02 : 0) | (s->base >= 8 ? 0x01 : 0);
    uint8_t index = s->index >= 0 ? (uint8_t)(s->index & 7) : 4; /* 4: no index */
    uint8_t mod_base = s->base >= 0 ? (uint8_t)(0x80 | 4) : 0x04;   /* mod 10, rm SIB */
    uint8_t sib_base = s->base >= 0 ? (uint8_t)(s->base & 7) : 5;   /* 5 with mod 00: none */
    *p++ = rex;
    *p++ = 0x8D;
    *p++ = mod_base;
    *p++ = (uint8_t)(scale_bits[s->scale & 15] << 6 | index << 3 | sib_base);
    return put(p, &d32, 4);
}

/* Room for a jump: 5 bytes with the instructions moved along, or a hop (a
 * 2-byte jmp rel8 into filler, for a site that moves nothing). */
static int has_room(const struct sls_site *s)
{
    return s->len + s->moved >= 5 || (s->hop != 0 && s->moved == 0 && s->len >= 2);
}

/* The jump's stub for site i: see the head of this file. Returns 0 when the
 * site can take a jump (has_room, and a general-register operand). */
static int fill_stub(uint8_t *slot, const struct sls_site *s, uint64_t at, uint64_t *hits)
{
    static const uint8_t enter[] = {0x48, 0x8D, 0x64, 0x24, 0x80, /* lea rsp, [rsp-128] */
                                    0x9C, 0x50};                  /* pushfq; push rax */
    static const uint8_t count[] = {0xF0, 0x48, 0xFF, 0x00};     /* lock inc qword [rax] */
    static const uint8_t leave[] = {0x58, 0x9D,                   /* pop rax; popfq */
                                    0x48, 0x8D, 0xA4, 0x24, 0x80, 0x00, 0x00, 0x00};
    /* push rcx, r11, rdi, rsi, rdx, r10; sub rsp, 8 (the old mask) */
    static const uint8_t save[] = {0x51, 0x41, 0x53, 0x57, 0x56, 0x52,
                                   0x41, 0x52, 0x48, 0x83, 0xEC, 0x08};
    /* eax = rt_sigprocmask, edi = SIG_UNBLOCK */
    static const uint8_t unblock[] = {0xB8, 14, 0, 0, 0, 0xBF, 1, 0, 0, 0};
    /* rdx = rsp (the old mask), r10d = 8; syscall; int3 */
    static const uint8_t call[] = {0x48, 0x89, 0xE2, 0x41, 0xBA, 8, 0, 0, 0, 0x0F, 0x05, INT3};
    uint8_t *p = slot;
    uint64_t mask = 1ULL << (SIGTRAP - 1);
    int32_t rel;

    if (!has_room(s) || s->width < 2 || s->width > 16 || (s->width & (s->width - 1)) ||
        (s->flags & (SLS_FS | SLS_GS | SLS_ADDR32)))
        return -1;
    p = put(p, enter, sizeof(enter));
    p = put_address(p, s, at);
    if (p == NULL)
        return -1;
    *p++ = 0xA8; /* test al, width - 1 */
    *p++ = (uint8_t)(s->width - 1);
    *p++ = 0x0F; /* jnz rel32: the misaligned path */
    *p++ = 0x85;
    rel = (int32_t)(MISALIGNED_AT - (p + 4 - slot));
    p = put(p, &rel, 4);
    *p++ = 0x48;
    *p++ = 0xB8; /* mov rax, &hits */
    p = put(p, &hits, 8);
    p = put(p, count, sizeof(count));
    p = put(p, leave, sizeof(leave));
    if (p - slot > COPY_AT)
        return -1;
    while (p < slot + COPY_AT)
        *p++ = 0x90; /* nop: falls into the copy */
    p = slot + MISALIGNED_AT;
    p = put(p, save, sizeof(save));
    p = put(p, unblock, sizeof(unblock));
    *p++ = 0x48; /* lea rsi, [rip + MASK_AT] */
    *p++ = 0x8D;
    *p++ = 0x35;
    rel = (int32_t)(MASK_AT - (p + 4 - slot));
    p = put(p, &rel, 4);
    p = put(p, call, sizeof(call));
    if (p - 1 - slot != REPORT_AT || p - slot > MASK_AT)
        return -1;
    memcpy(slot + MASK_AT, &mask, 8);
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

static int write_code(int mem, uint64_t at, const uint8_t *bytes, size_t n)
{
    for (size_t k = 0; k < n; k++)
        if (poke(mem, at + k, bytes[k]) != 0)
            return -1;
    return 0;
}

/* Every CPU running one of our threads serialises (fetches code afresh). */
static int sync_cores(void)
{
    return sync_core_ok &&
           sys(SYS_membarrier, MEMBARRIER_PRIVATE_EXPEDITED_SYNC_CORE, 0, 0, 0, 0, 0) == 0;
}

static void start_sync_core(void)
{
    long have = sys(SYS_membarrier, MEMBARRIER_QUERY, 0, 0, 0, 0, 0);
    if (have > 0 && (have & MEMBARRIER_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE) &&
        sys(SYS_membarrier, MEMBARRIER_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE, 0, 0, 0, 0, 0) == 0)
        sync_core_ok = 1;
}

static int open_mem(void)
{
    return (int)sys(SYS_openat, AT_FDCWD, (long)"/proc/self/mem", O_RDWR | O_CLOEXEC, 0, 0, 0);
}

/* Where site i's jump lands first: its own bytes, or the filler it hops
 * through (a short site: `jmp rel8` there, `jmp rel32` on from it). */
static uint64_t jump_entry(const struct image *img, uint32_t i)
{
    return img->addr[i] + (uint64_t)(int64_t)img->sites[i].hop;
}

/* The bytes after the int3 that the jump puts in: a jmp rel32's four, or a
 * hop's rel8 (the hop itself, filler nothing runs, is written first). */
static int jump_tail(struct image *img, uint32_t i, int mem)
{
    const struct sls_site *s = &img->sites[i];
    uint64_t at = img->addr[i], entry = jump_entry(img, i);
    int32_t rel = (int32_t)((int64_t)(uint64_t)(img->slots + (size_t)i * SLOT_SIZE) -
                            (int64_t)(entry + 5));
    if (s->hop == 0)
        return write_code(mem, at + 1, (const uint8_t *)&rel, 4);
    uint8_t hop[5] = {JMP_REL32}, rel8 = (uint8_t)(int8_t)((int64_t)entry - (int64_t)(at + 2));
    memcpy(hop + 1, &rel, 4);
    if (write_code(mem, entry, hop, 5) != 0)
        return -1;
    return write_code(mem, at + 1, &rel8, 1);
}

static size_t tail_bytes(const struct sls_site *s)
{
    return s->hop != 0 ? 1 : 4;
}

/* Turn the int3s of the sites marked ARMED_JUMP in `ready` into jumps to
 * their stubs: the jump's last bytes first (behind the int3, never run),
 * every CPU serialised, then its first byte. Without SYNC_CORE the int3s stay. */
static void make_jumps(struct image *img, uint8_t *ready, int mem)
{
    if (!sync_cores())
        return;
    for (uint32_t i = 0; i < img->count; i++) {
        if (!(ready[i] & ARMED_JUMP) || jump_tail(img, i, mem) == 0)
            continue;
        /* as it was: the int3 stays */
        write_code(mem, img->addr[i] + 1, img->sites[i].insn + 1, tail_bytes(&img->sites[i]));
        ready[i] &= (uint8_t)~ARMED_JUMP;
    }
    if (!sync_cores()) {
        for (uint32_t i = 0; i < img->count; i++)
            if (ready[i] & ARMED_JUMP)
                write_code(mem, img->addr[i] + 1, img->sites[i].insn + 1,
                           tail_bytes(&img->sites[i]));
        return;
    }
    for (uint32_t i = 0; i < img->count; i++) {
        const struct sls_site *s = &img->sites[i];
        if (!(ready[i] & ARMED_JUMP))
            continue;
        if (poke(mem, img->addr[i], s->hop != 0 ? JMP_REL8 : JMP_REL32) == 0) {
            __atomic_store_n(&img->armed[i], ARMED_JUMP, __ATOMIC_RELEASE);
            __atomic_add_fetch(&sla_buf->jumps, 1, __ATOMIC_RELAXED);
            if (s->hop != 0)
                __atomic_add_fetch(&sla_buf->hops, 1, __ATOMIC_RELAXED);
        }
    }
    sync_cores();
}

/* A hop is used only where its bytes are still the filler the tool read,
 * within the rel8's reach, clear of the site itself. */
static int hop_is_filler(const struct sls_site *s, uint64_t at)
{
    int64_t rel = s->hop - 2;
    if (rel < -128 || rel > 127 || (s->hop > -5 && s->hop < (int32_t)s->len))
        return 0;
    return memcmp((const void *)(at + (uint64_t)(int64_t)s->hop), s->hop_code, 5) == 0;
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
        uint8_t *slot = img->slots + (size_t)i * SLOT_SIZE;
        img->addr[i] = at;
        ready[i] = memcmp((const void *)at, sites[i].insn, sites[i].len + sites[i].moved) == 0 &&
                   fill_copy(slot, &sites[i], at) == 0;
        uint64_t entry = jump_entry(img, i);
        if (ready[i] && fill_stub(slot, &sites[i], at, &sla_buf->hits) == 0 &&
            (int64_t)(int32_t)((int64_t)(uint64_t)slot - (int64_t)(entry + 5)) ==
                (int64_t)(uint64_t)slot - (int64_t)(entry + 5) &&
            (sites[i].hop == 0 || hop_is_filler(&sites[i], at)))
            ready[i] |= ARMED_JUMP;
    }
    if (img->count > 0)
        sys(SYS_mprotect, (long)img->slots, (long)page_round((size_t)img->count * SLOT_SIZE),
            PROT_READ | PROT_EXEC, 0, 0, 0);
    /* Published before any int3 is written: a thread that hits one finds it. */
    images[image_count] = img;
    __atomic_store_n(&image_count, image_count + 1, __ATOMIC_RELEASE);
    uint32_t jumps = 0;
    for (uint32_t i = 0; i < img->count; i++) {
        if (ready[i]) {
            __atomic_store_n(&img->armed[i], ARMED_INT3, __ATOMIC_RELEASE);
            if (poke(mem, img->addr[i], INT3) == 0) {
                __atomic_add_fetch(&sla_buf->armed, 1, __ATOMIC_RELAXED);
                jumps += (ready[i] & ARMED_JUMP) != 0;
                continue;
            }
            __atomic_store_n(&img->armed[i], 0, __ATOMIC_RELEASE);
            ready[i] = 0;
        }
        __atomic_add_fetch(&sla_buf->unarmed, 1, __ATOMIC_RELAXED);
    }
    if (jumps > 0)
        make_jumps(img, ready, mem);
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
    start_sync_core();
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
 * first such call, every C library site still on an int3 gets its own byte back (the table
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
        /* A jump stays: it raises no signal unless its operand is misaligned,
         * and then unblocks SIGTRAP itself for the moment it needs. */
        for (uint32_t i = 0; i < img->count; i++)
            if (img->armed[i] == ARMED_INT3 &&
                poke(mem, img->addr[i], img->sites[i].insn[0]) == 0)
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

/* The int3 of a stub's misaligned path: take the thread's registers back
 * from the stub's frame (fill_stub: old mask, r10, rdx, rsi, rdi, r11, rcx,
 * rax, flags, then the red zone), record at the site, give the thread its
 * signal mask back (SIGTRAP blocked again if it was) and run the copy. */
static int stub_report(ucontext_t *uc, uint64_t ip)
{
    greg_t *g = uc->uc_mcontext.gregs;
    uint32_t n = __atomic_load_n(&image_count, __ATOMIC_ACQUIRE);

    for (uint32_t k = 0; k < n; k++) {
        struct image *img = images[k];
        uint64_t lo = (uint64_t)(uintptr_t)img->slots;
        if (img->count == 0 || ip < lo || ip >= lo + (uint64_t)img->count * SLOT_SIZE ||
            (ip - lo) % SLOT_SIZE != REPORT_AT)
            continue;
        uint32_t i = (uint32_t)((ip - lo) / SLOT_SIZE);
        if (__atomic_load_n(&img->armed[i], __ATOMIC_ACQUIRE) != ARMED_JUMP)
            return 0;
        const uint64_t *frame = (const uint64_t *)(uintptr_t)g[REG_RSP];
        uint64_t old_mask = frame[0];
        g[REG_R10] = (greg_t)frame[1];
        g[REG_RDX] = (greg_t)frame[2];
        g[REG_RSI] = (greg_t)frame[3];
        g[REG_RDI] = (greg_t)frame[4];
        g[REG_R11] = (greg_t)frame[5];
        g[REG_RCX] = (greg_t)frame[6];
        g[REG_RAX] = (greg_t)frame[7];
        g[REG_EFL] = (greg_t)frame[8];
        g[REG_RSP] = (greg_t)((uint64_t)g[REG_RSP] + STUB_FRAME * 8 + RED_ZONE);
        g[REG_RIP] = (greg_t)img->addr[i];
        __atomic_add_fetch(&sla_buf->hits, 1, __ATOMIC_RELAXED);
        __atomic_add_fetch(&sla_buf->trapped, 1, __ATOMIC_RELAXED);
        sla_record(uc, img->sites[i].insn, img->sites[i].len);
        if (old_mask & (1ULL << (SIGTRAP - 1)))
            ((unsigned long *)(void *)&uc->uc_sigmask)[0] |= 1UL << (SIGTRAP - 1);
        g[REG_RIP] = (greg_t)(uintptr_t)(img->slots + (size_t)i * SLOT_SIZE + COPY_AT);
        return 1;
    }
    return 0;
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
        return stub_report(uc, ip);
    const struct sls_site *s = &img->sites[i];
    __atomic_add_fetch(&sla_buf->hits, 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&sla_buf->trapped, 1, __ATOMIC_RELAXED);
    if (s->width > 1 && (operand_address(g, s, ip) & (uint64_t)(s->width - 1)) != 0) {
        g[REG_RIP] = (greg_t)ip;
        sla_record(uc, s->insn, s->len);
    }
    g[REG_RIP] = (greg_t)(uintptr_t)(img->slots + (size_t)i * SLOT_SIZE + COPY_AT);
    return 1;
}

#endif
