/* splitter.c: a test program that really split-locks, for `run` tests.
 *
 *   splitter [--threads N] [--fork] [--exit CODE] [--kmsg PATH] [--sleep-ms MS]
 *
 * The main thread and N more threads each do one `lock btsq` on 8 bytes at
 * offset 60 of a 64-byte-aligned buffer: a split lock at the global label
 * splitter_site. --fork runs a second copy of itself (fork + exec, one extra
 * thread) and waits for it. --exit ends with that status.
 *
 * --kmsg PATH plays the kernel where it cannot trap split locks (VMs, AMD):
 * after each thread's split lock it appends the record a warn-mode kernel
 * writes to /dev/kmsg, "#AC: <comm>/<tid> took a split_lock trap at address:
 * 0x<ip>", naming its real thread id and the real address of the op. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern const char splitter_site[];
static const char *kmsg_path;
static long sleep_ms;
static _Alignas(64) unsigned char buffer[128];

__attribute__((noinline)) static void split_lock(void)
{
    volatile uint64_t *p = (volatile uint64_t *)(buffer + 60);
    __asm__ volatile(".globl splitter_site\nsplitter_site:\n\tlock btsq $3, %0"
                     : "+m"(*p)
                     :
                     : "memory", "cc");
}

static void report(void)
{
    char comm[17] = {0}, line[256];
    struct timespec now;
    static unsigned long seq = 900000;
    int fd, n;

    if (kmsg_path == NULL)
        return;
    prctl(PR_GET_NAME, comm, 0, 0, 0);
    clock_gettime(CLOCK_MONOTONIC, &now);
    n = snprintf(line, sizeof(line),
                 "4,%lu,%lld,-;x86/split lock detection: #AC: %s/%ld took a split_lock trap "
                 "at address: 0x%lx\n",
                 __atomic_add_fetch(&seq, 1, __ATOMIC_SEQ_CST) + (unsigned long)getpid() * 100,
                 (long long)now.tv_sec * 1000000 + now.tv_nsec / 1000, comm,
                 (long)syscall(SYS_gettid), (unsigned long)(uintptr_t)splitter_site);
    fd = open(kmsg_path, O_WRONLY | O_APPEND | O_CLOEXEC);
    if (fd >= 0) {
        if (write(fd, line, (size_t)n) != n)
            perror("splitter: kmsg");
        close(fd);
    }
}

static void *thread_main(void *arg)
{
    char name[16];

    snprintf(name, sizeof(name), "splitter-%ld", (long)(intptr_t)arg);
    prctl(PR_SET_NAME, name, 0, 0, 0);
    split_lock();
    report();
    if (sleep_ms)
        usleep((useconds_t)sleep_ms * 1000);
    return NULL;
}

int main(int argc, char **argv)
{
    long threads = 0, code = 0;
    int do_fork = 0;
    pthread_t tids[64];

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = strtol(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--exit") && i + 1 < argc)
            code = strtol(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--kmsg") && i + 1 < argc)
            kmsg_path = argv[++i];
        else if (!strcmp(argv[i], "--sleep-ms") && i + 1 < argc)
            sleep_ms = strtol(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--fork"))
            do_fork = 1;
        else {
            fprintf(stderr, "splitter: unknown argument %s\n", argv[i]);
            return 2;
        }
    }
    if (threads > 64)
        threads = 64;
    split_lock();
    report();
    for (long i = 0; i < threads; i++)
        pthread_create(&tids[i], NULL, thread_main, (void *)(intptr_t)i);
    for (long i = 0; i < threads; i++)
        pthread_join(tids[i], NULL);
    if (do_fork) {
        pid_t pid = fork();
        if (pid == 0) {
            char *args[] = {argv[0], "--threads", "1", NULL, NULL, NULL};
            if (kmsg_path) {
                args[3] = "--kmsg";
                args[4] = (char *)kmsg_path;
            }
            execv("/proc/self/exe", args);
            _exit(127);
        }
        waitpid(pid, NULL, 0);
    }
    printf("splitter: %ld split locks done\n", 1 + threads);
    return (int)code;
}
