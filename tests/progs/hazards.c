/* hazards.c: a test program for `run --trace`, with its hazards at known sites.
 *
 *   hazards ACTION... where ACTION is one of
 *     split N        N x `lock btsq` on 8 bytes at line offset 60 (site_split): split locks
 *     hazard N       N x `lock xaddl` on 4 bytes at line offset 1 (site_hazard):
 *                    misaligned, inside one line: splits at another placement
 *     aligned N      N x `lock btsq` on an aligned qword (site_aligned): never traps
 *     unlocked N     N x plain misaligned 4-byte loads (site_unlocked): traps, not locked
 *     threads N      N threads, each doing `split 1`
 *     fork           fork, exec this program with `split 1 hazard 1`, wait
 *     own-sigbus     install a SIGBUS handler, then take a real bus error (a page of a
 *                    truncated file: BUS_ADRERR) and one sent by kill(): both must reach it
 *     work N         N million rounds of arithmetic, no memory traffic (for benchmarks)
 *     own-sigtrap    install a SIGTRAP handler, then raise(SIGTRAP) and execute int3:
 *                    both must reach it
 *     exit N         exit with status N
 * Each site is a global label, so tests find its offset with nm. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

static _Alignas(64) unsigned char line[192];

__attribute__((noinline)) static void split_lock(void)
{
    __asm__ volatile(".globl site_split\nsite_split:\n\tlock btsq $1, %0"
                     : "+m"(*(volatile uint64_t *)(line + 60))::"memory", "cc");
}

__attribute__((noinline)) static void hazard(void)
{
    uint32_t one = 1;
    __asm__ volatile(".globl site_hazard\nsite_hazard:\n\tlock xaddl %1, %0"
                     : "+m"(*(volatile uint32_t *)(line + 65)), "+r"(one)::"memory", "cc");
}

__attribute__((noinline)) static void aligned(void)
{
    __asm__ volatile(".globl site_aligned\nsite_aligned:\n\tlock btsq $2, %0"
                     : "+m"(*(volatile uint64_t *)(line + 128))::"memory", "cc");
}

__attribute__((noinline)) static uint32_t unlocked(void)
{
    uint32_t v;
    __asm__ volatile(".globl site_unlocked\nsite_unlocked:\n\tmovl %1, %0"
                     : "=r"(v)
                     : "m"(*(volatile uint32_t *)(line + 131)));
    return v;
}

static void *thread_main(void *arg)
{
    (void)arg;
    split_lock();
    return NULL;
}

static sigjmp_buf back;
static volatile sig_atomic_t own_codes[4], own_count;

static void own_handler(int sig, siginfo_t *si, void *ctx)
{
    (void)sig;
    (void)ctx;
    if (own_count < 4)
        own_codes[own_count] = si->si_code;
    own_count++;
    if (si->si_code == BUS_ADRERR)
        siglongjmp(back, 1);
}

static int own_sigbus(void)
{
    struct sigaction sa;
    char path[] = "/tmp/hazards-XXXXXX";
    int fd = mkstemp(path);
    volatile char *page;

    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = own_handler;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGBUS, &sa, NULL);
    if (fd < 0 || ftruncate(fd, 4096) != 0)
        return 1;
    page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    unlink(path);
    if (page == MAP_FAILED || ftruncate(fd, 0) != 0)
        return 1;
    if (sigsetjmp(back, 1) == 0)
        page[0] = 1; /* beyond the end of the file: SIGBUS, BUS_ADRERR */
    kill(getpid(), SIGBUS); /* SI_USER: the handler returns */
    printf("hazards: own SIGBUS handler ran %d times (si_code %d, %d)\n", (int)own_count,
           (int)own_codes[0], (int)own_codes[1]);
    close(fd);
    return own_count == 2 ? 0 : 1;
}

static volatile sig_atomic_t traps_seen;

static void own_trap(int sig)
{
    (void)sig;
    traps_seen++;
}

static int own_sigtrap(void)
{
    signal(SIGTRAP, own_trap);
    raise(SIGTRAP);
    __asm__ volatile("int3");
    printf("hazards: own SIGTRAP handler ran %d times\n", (int)traps_seen);
    return traps_seen == 2 ? 0 : 1;
}

int main(int argc, char **argv)
{
    int status = 0;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        long n = i + 1 < argc ? strtol(argv[i + 1], NULL, 10) : 0;
        if (!strcmp(a, "split")) {
            for (long k = 0; k < n; k++)
                split_lock();
            i++;
        } else if (!strcmp(a, "hazard")) {
            for (long k = 0; k < n; k++)
                hazard();
            i++;
        } else if (!strcmp(a, "aligned")) {
            for (long k = 0; k < n; k++)
                aligned();
            i++;
        } else if (!strcmp(a, "unlocked")) {
            uint32_t sum = 0;
            for (long k = 0; k < n; k++)
                sum += unlocked();
            if (sum == 12345)
                puts("");
            i++;
        } else if (!strcmp(a, "threads")) {
            pthread_t t[64];
            if (n > 64)
                n = 64;
            for (long k = 0; k < n; k++)
                pthread_create(&t[k], NULL, thread_main, NULL);
            for (long k = 0; k < n; k++)
                pthread_join(t[k], NULL);
            i++;
        } else if (!strcmp(a, "fork")) {
            pid_t pid = fork();
            if (pid == 0) {
                char *args[] = {argv[0], "split", "1", "hazard", "1", NULL};
                execv("/proc/self/exe", args);
                _exit(127);
            }
            waitpid(pid, NULL, 0);
        } else if (!strcmp(a, "work")) {
            volatile uint64_t x = 1;
            for (long k = 0; k < n * 1000000; k++)
                x = x * 6364136223846793005ULL + 1442695040888963407ULL;
            i++;
        } else if (!strcmp(a, "own-sigtrap")) {
            status |= own_sigtrap();
        } else if (!strcmp(a, "own-sigbus")) {
            status |= own_sigbus();
        } else if (!strcmp(a, "exit")) {
            fflush(stdout);
            return (int)n;
        } else {
            fprintf(stderr, "hazards: unknown action %s\n", a);
            return 2;
        }
    }
    return status;
}
