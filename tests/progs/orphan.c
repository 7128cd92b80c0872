/* orphan.c: a command that exits at once, leaving a child that split-locks
 * 100 ms later (Intel LKVS's split-lock test has this shape). `run` must
 * wait for that child, as its subreaper, unless told to stop with the
 * command. */
#include <stdint.h>
#include <time.h>
#include <unistd.h>

static _Alignas(64) unsigned char buffer[128];

int main(void)
{
    if (fork() != 0)
        return 0; /* the command is done; its child is not */
    struct timespec pause = {0, 100 * 1000 * 1000};
    nanosleep(&pause, NULL);
    volatile uint64_t *p = (volatile uint64_t *)(buffer + 60);
    __asm__ volatile("lock btsq $3, %0" : "+m"(*p) : : "memory", "cc");
    return 0;
}
