/* fakeqemu.c: looks like a QEMU process to the host: exec it with QEMU's argv
 * (argv[0] qemu-system-x86_64, -name guest=NAME,debug-threads=on). A thread
 * named "CPU 0/KVM", as QEMU names its vCPU threads, prints its thread id and
 * lives until stdin closes: a recorded log line can then name it. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

static void *vcpu(void *arg)
{
    (void)arg;
    prctl(PR_SET_NAME, "CPU 0/KVM", 0, 0, 0);
    printf("%ld\n", (long)syscall(SYS_gettid));
    fflush(stdout);
    char c;
    while (read(0, &c, 1) > 0) {
    }
    return NULL;
}

int main(void)
{
    pthread_t t;
    pthread_create(&t, NULL, vcpu, NULL);
    pthread_join(t, NULL);
    return 0;
}
