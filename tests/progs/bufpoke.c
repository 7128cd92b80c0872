/* bufpoke.c: a traced program that attacks the trace buffer.
 *
 * It finds the tool's trap buffer among its parent's descriptors
 * (/proc/PPID/fd, the memfd "splitlock-probe-traps"), maps it, sets the
 * header's capacity to 0xffffffff and its next record to 2^30, and then
 * split-locks: a tracer that trusted those numbers would write 240 GB past
 * the buffer. The tool must keep
 * its own bounds and say the buffer was tampered with. */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static _Alignas(64) unsigned char buffer[128];

static int poke(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int poked = 0;

    if (d == NULL)
        return 0;
    while ((e = readdir(d)) != NULL) {
        char path[512], target[256];
        ssize_t n;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        n = readlink(path, target, sizeof(target) - 1);
        if (n <= 0)
            continue;
        target[n] = 0;
        if (strstr(target, "splitlock-probe-traps") == NULL)
            continue;
        int fd = open(path, O_RDWR);
        if (fd < 0)
            continue;
        uint32_t *h = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (h != MAP_FAILED) {
            h[2] = 0xffffffffu;                 /* capacity */
            *(uint64_t *)(h + 4) = 1ull << 30; /* next */
            poked = 1;
        }
        close(fd);
    }
    closedir(d);
    return poked;
}

int main(void)
{
    char dir[64];
    volatile uint64_t *p = (volatile uint64_t *)(buffer + 60);

    snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)getppid());
    int poked = poke(dir) | poke("/proc/self/fd");
    for (int i = 0; i < 3; i++)
        __asm__ volatile("lock btsq $3, %0" : "+m"(*p) : : "memory", "cc");
    return poked ? 0 : 3; /* 3: found no buffer to poke (the test wants to know) */
}
