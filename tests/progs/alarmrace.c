/* alarmrace.c: a signal racing the agent's trap. A 2 ms interval timer's
 * SIGALRM handler makes one misaligned load while the main loop makes
 * misaligned accesses (each an alignment trap under `run --trace`) for half
 * a second. A handler delivered on top of the agent's SIGBUS entry, with AC
 * still on and SIGBUS blocked, would die of its load (exit 135). */
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

static _Alignas(64) unsigned char buffer[128];
static volatile uint32_t sink;
static volatile sig_atomic_t alarms;

static void on_alarm(int sig)
{
    (void)sig;
    sink += *(volatile uint32_t *)(buffer + 3); /* misaligned, in the handler */
    alarms++;
}

int main(void)
{
    struct sigaction sa;
    struct itimerval every = {{0, 2000}, {0, 2000}};
    struct timespec start, now;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_alarm;
    sigaction(SIGALRM, &sa, NULL);
    setitimer(ITIMER_REAL, &every, NULL);
    clock_gettime(CLOCK_MONOTONIC, &start);
    do {
        for (int i = 0; i < 100; i++)
            sink += *(volatile uint32_t *)(buffer + 1 + (i & 7)); /* mostly misaligned */
        clock_gettime(CLOCK_MONOTONIC, &now);
    } while ((now.tv_sec - start.tv_sec) * 1000000000L + (now.tv_nsec - start.tv_nsec) <
             500000000L);
    return alarms > 10 ? 0 : 2; /* 2: the timer never raced (the test wants to know) */
}
