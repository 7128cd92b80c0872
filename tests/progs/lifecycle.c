/* lifecycle.c: everything glibc does with every signal blocked, under the
 * agent's breakpoints: threads started and ended (joined and detached),
 * pthread_kill and raise, posix_spawn, fork, system(), a SIGEV_THREAD timer;
 * a pthread_mutex_t placed to split a cache line, locked through the C
 * library's own pthread_mutex_lock (whose lock cmpxchg is the site), and,
 * given a path, a library loaded with dlopen whose function split-locks;
 * last, with `timer` after the path, a SIGEV_THREAD timer (glibc's helper
 * thread runs with every signal blocked).
 *   lifecycle [LIBRARY [timer]]
 * Exits 0 when everything ran; a breakpoint hit with SIGTRAP blocked would
 * kill it with SIGTRAP (133). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;
static _Alignas(64) unsigned char lines[256];
static pthread_mutex_t shared = PTHREAD_MUTEX_INITIALIZER;
static volatile sig_atomic_t usr1, ticks;
static int counter;

static void on_usr1(int sig)
{
    (void)sig;
    usr1++;
}

static void *worker(void *arg)
{
    (void)arg;
    for (int i = 0; i < 100; i++) {
        pthread_mutex_lock(&shared);
        counter++;
        pthread_mutex_unlock(&shared);
    }
    return NULL;
}

static void on_tick(union sigval v)
{
    (void)v;
    ticks++;
}

int main(int argc, char **argv)
{
    pthread_t joined[16];
    pthread_attr_t detached;

    signal(SIGUSR1, on_usr1);
    for (int round = 0; round < 4; round++) {
        for (int i = 0; i < 16; i++)
            if (pthread_create(&joined[i], NULL, worker, NULL) != 0)
                return 2;
        pthread_attr_init(&detached);
        pthread_attr_setdetachstate(&detached, PTHREAD_CREATE_DETACHED);
        for (int i = 0; i < 16; i++) {
            pthread_t t;
            if (pthread_create(&t, &detached, worker, NULL) != 0)
                return 2;
        }
        for (int i = 0; i < 16; i++)
            pthread_join(joined[i], NULL);
        pthread_kill(pthread_self(), SIGUSR1);
        raise(SIGUSR1);
    }
    pid_t pid;
    char *true_argv[] = {"true", NULL};
    if (posix_spawnp(&pid, "true", NULL, NULL, true_argv, environ) != 0 ||
        waitpid(pid, NULL, 0) != pid)
        return 3;
    pid = fork();
    if (pid == 0)
        _exit(0);
    waitpid(pid, NULL, 0);
    if (system("true") != 0)
        return 4;
    /* A mutex whose lock word straddles two lines: the C library's lock op splits. */
    pthread_mutex_t *split = (pthread_mutex_t *)(lines + 62);
    pthread_mutex_init(split, NULL);
    pthread_mutex_lock(split);
    pthread_mutex_unlock(split);
    if (argc > 1 && strcmp(argv[1], "-") != 0) {
        void *lib = dlopen(argv[1], RTLD_NOW);
        void (*poke)(void) = lib ? (void (*)(void))dlsym(lib, "split_in_library") : NULL;
        if (poke == NULL)
            return 6;
        poke();
    }
    if (argc > 2 && strcmp(argv[2], "timer") == 0) {
        timer_t timer;
        struct sigevent ev;
        memset(&ev, 0, sizeof(ev));
        ev.sigev_notify = SIGEV_THREAD;
        ev.sigev_notify_function = on_tick;
        struct itimerspec in = {{0, 0}, {0, 1000000}};
        if (timer_create(CLOCK_MONOTONIC, &ev, &timer) != 0 ||
            timer_settime(timer, 0, &in, NULL) != 0)
            return 5;
        for (int i = 0; i < 200 && !ticks; i++)
            usleep(1000);
    }
    sleep(0); /* let the detached threads end */
    usleep(20000);
    return usr1 == 8 && (argc <= 2 || ticks) ? 0 : 7;
}
