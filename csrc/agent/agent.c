/* agent.c: the in-process alignment-trap tracer, preloaded (LD_PRELOAD) into
 * every process of a program that `splitlock-probe run --trace` runs.
 *
 * Two modes. Breakpoint mode (breakpoints.c, when SPLITLOCK_AGENT_SITES
 * names the tool's site socket) traps only the locked instructions of each
 * loaded image. Alignment-check (AC) mode, described here, traps every
 * misaligned access, so it also sees code in no image (JIT), at a far
 * higher cost.
 *
 * It sets EFLAGS.AC, so every misaligned data access at CPL 3 raises #AC,
 * delivered as SIGBUS with si_code BUS_ADRALN (Linux keeps CR0.AM on). Its
 * SIGBUS handler records a *locked* instruction (its bytes and registers)
 * in the buffer the tool shares with it (trapbuf.h), clears AC and sets the
 * trap flag TF in the interrupted context; the instruction then runs once
 * unchecked, and the SIGTRAP that follows sets AC again and clears TF. The
 * tool decodes the records; this file only tells locked from unlocked.
 *
 * The program's own SIGBUS and SIGTRAP stay its own: sigaction() and
 * signal() (and __sysv_signal, sysv_signal, bsd_signal, ssignal, sigset,
 * __sigaction: every libc way into the signal table) are wrapped, so its
 * handlers are kept here and called for every
 * signal that is not our trap; with none, the default action happens as it
 * would without us. sigprocmask() and pthread_sigmask() never block the two
 * (a blocked fault signal would kill the program).
 *
 * AC is per thread: threads and forked children inherit it with the rest
 * of the registers; exec clears it, and the constructor sets it again in
 * the new image. Nothing happens unless SPLITLOCK_AGENT_FD names the tool's
 * buffer (checked by device and inode, so a reused fd number is never
 * written to). Needs: Linux, x86-64, glibc. Built as its own shared
 * library; it never prints and never exits. */
#define _GNU_SOURCE
#include <aio.h>
#include <dlfcn.h>
#include <mqueue.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include "agent.h"

#if defined(__x86_64__) && defined(__linux__)

#define EFLAGS_TF 0x100ULL
#define EFLAGS_AC 0x40000ULL
#define ARCH_GET_FS 0x1003
#define ARCH_GET_GS 0x1004

typedef int (*sigaction_fn)(int, const struct sigaction *, struct sigaction *);
typedef int (*sigmask_fn)(int, const sigset_t *, sigset_t *);

struct slt_header *sla_buf;
static int ac_mode; /* 1: EFLAGS.AC traps every misaligned access; 0: breakpoints */
static struct slt_record *records;
static uint64_t capacity; /* taken when attaching, bounded by the mapping */
static sigaction_fn real_sigaction;
static sigmask_fn real_sigprocmask, real_pthread_sigmask;
static struct sigaction program_bus, program_trap; /* what the program asked for */
static __thread int stepping __attribute__((tls_model("initial-exec")));

void sla_bus_entry(int sig, siginfo_t *si, void *uctx);
void sla_trap_entry(int sig, siginfo_t *si, void *uctx);

/* The kernel enters a handler with AC still set: clear it with aligned
 * stack accesses before any C runs (the interrupted context keeps its own). */
#define SLA_ENTRY(name, target)                                                                    \
    __asm__(".text\n.globl " #name "\n.hidden " #name "\n.type " #name ", @function\n" #name     \
            ":\n\tpushfq\n\tandl $~0x40000, (%rsp)\n\tpopfq\n\tjmp " #target "\n.size " #name   \
            ", .-" #name "\n")
SLA_ENTRY(sla_bus_entry, sla_bus_handler);
SLA_ENTRY(sla_trap_entry, sla_trap_handler);

static void set_ac(void)
{
    if (ac_mode)
        __asm__ volatile("pushfq\n\torl $0x40000, (%%rsp)\n\tpopfq" ::: "memory", "cc");
}

static void clear_ac(void)
{
    if (ac_mode)
        __asm__ volatile("pushfq\n\tandl $~0x40000, (%%rsp)\n\tpopfq" ::: "memory", "cc");
}

static struct sigaction *program_action(int sig)
{
    return sig == SIGBUS ? &program_bus : &program_trap;
}

/* Not our trap: what the program would have had without us. */
static void pass_on(int sig, siginfo_t *si, void *uctx)
{
    struct sigaction *p = program_action(sig);

    __atomic_add_fetch(&sla_buf->passed_on, 1, __ATOMIC_RELAXED);
    if (p->sa_handler == SIG_IGN && sig == SIGTRAP && si->si_code <= 0)
        return;
    if (p->sa_handler == SIG_DFL || p->sa_handler == SIG_IGN) {
        struct sigaction dfl;
        memset(&dfl, 0, sizeof(dfl));
        dfl.sa_handler = SIG_DFL;
        real_sigaction(sig, &dfl, NULL);
        /* A fault runs again and meets the default; a trap or a signal sent
         * by someone does not, so it is raised again (delivered on return). */
        if (sig == SIGTRAP || si->si_code <= 0)
            raise(sig);
        return;
    }
    /* Its handler runs with the mask it would have had without us (ours blocks
     * everything): the interrupted code's, its sa_mask, and the signal itself
     * unless SA_NODEFER. It is traced like the rest of the program, so it must
     * be able to take our SIGBUS; and a longjmp out of it must leave AC on. */
    sigset_t mask = ((ucontext_t *)uctx)->uc_sigmask;
    for (int s = 1; s < NSIG; s++)
        if (sigismember(&p->sa_mask, s) == 1)
            sigaddset(&mask, s);
    if (!(p->sa_flags & SA_NODEFER))
        sigaddset(&mask, sig);
    sigdelset(&mask, SIGBUS);
    sigdelset(&mask, SIGTRAP);
    real_pthread_sigmask(SIG_SETMASK, &mask, NULL);
    set_ac();
    if (p->sa_flags & SA_SIGINFO)
        p->sa_sigaction(sig, si, uctx);
    else
        p->sa_handler(sig);
    clear_ac();
    if (p->sa_flags & SA_RESETHAND)
        p->sa_handler = SIG_DFL;
}

static uint32_t read_insn(uint64_t rip, uint8_t *out)
{
    /* The faulting instruction's page is mapped; the next one may not be. */
    if ((rip & 4095) <= 4096 - SLT_INSN_MAX) {
        memcpy(out, (const void *)(uintptr_t)rip, SLT_INSN_MAX);
        return SLT_INSN_MAX;
    }
    struct iovec local = {out, SLT_INSN_MAX}, remote = {(void *)(uintptr_t)rip, SLT_INSN_MAX};
    long n = syscall(SYS_process_vm_readv, getpid(), &local, 1, &remote, 1, 0);
    if (n > 0)
        return (uint32_t)n;
    n = (long)(4096 - (rip & 4095)); /* at least the rest of its own page */
    memcpy(out, (const void *)(uintptr_t)rip, (size_t)n);
    return (uint32_t)n;
}

void sla_record(ucontext_t *uc, const uint8_t *insn, uint32_t len)
{
    static const int order[16] = {REG_RAX, REG_RCX, REG_RDX, REG_RBX, REG_RSP, REG_RBP,
                                  REG_RSI, REG_RDI, REG_R8,  REG_R9,  REG_R10, REG_R11,
                                  REG_R12, REG_R13, REG_R14, REG_R15};
    greg_t *g = uc->uc_mcontext.gregs;
    uint64_t i = __atomic_fetch_add(&sla_buf->next, 1, __ATOMIC_RELAXED);
    struct slt_record *r;

    __atomic_add_fetch(&sla_buf->locked, 1, __ATOMIC_RELAXED);
    if (i >= capacity) {
        __atomic_add_fetch(&sla_buf->dropped, 1, __ATOMIC_RELAXED);
        return;
    }
    r = &records[i];
    r->pid = (uint32_t)getpid();
    r->tid = (uint32_t)syscall(SYS_gettid);
    r->rip = (uint64_t)g[REG_RIP];
    r->rflags = (uint64_t)g[REG_EFL];
    for (int k = 0; k < 16; k++)
        r->regs[k] = (uint64_t)g[order[k]];
    syscall(SYS_arch_prctl, ARCH_GET_FS, &r->fs_base);
    syscall(SYS_arch_prctl, ARCH_GET_GS, &r->gs_base);
    memcpy(r->insn, insn, SLT_INSN_MAX);
    r->insn_len = len;
    __atomic_store_n(&r->source, 1u, __ATOMIC_RELEASE); /* last: the record is whole */
}

__attribute__((visibility("hidden"), used)) void sla_bus_handler(int sig, siginfo_t *si,
                                                                 void *uctx)
{
    ucontext_t *uc = uctx;
    greg_t *g = uc->uc_mcontext.gregs;
    uint8_t insn[SLT_INSN_MAX];
    uint32_t len;

    if (!ac_mode || si->si_code != BUS_ADRALN || !((uint64_t)g[REG_EFL] & EFLAGS_AC)) {
        pass_on(sig, si, uctx);
        return;
    }
    __atomic_add_fetch(&sla_buf->traps, 1, __ATOMIC_RELAXED);
    len = read_insn((uint64_t)g[REG_RIP], insn);
    if (slt_is_locked(insn, len))
        sla_record(uc, insn, len);
    g[REG_EFL] = (greg_t)(((uint64_t)g[REG_EFL] & ~EFLAGS_AC) | EFLAGS_TF);
    stepping = 1;
}

__attribute__((visibility("hidden"), used)) void sla_trap_handler(int sig, siginfo_t *si,
                                                                  void *uctx)
{
    ucontext_t *uc = uctx;
    greg_t *g = uc->uc_mcontext.gregs;

    if (!ac_mode && si->si_code == SI_KERNEL && sla_breakpoint_hit(uc))
        return;
    /* Ours by its state, not only by si_code: we set TF and are stepping, and the
     * kernel (not kill()) sent it. Some single steps arrive as TRAP_BRKPT. */
    if (stepping && si->si_code > 0 && ((uint64_t)g[REG_EFL] & EFLAGS_TF)) {
        g[REG_EFL] = (greg_t)(((uint64_t)g[REG_EFL] | EFLAGS_AC) & ~EFLAGS_TF);
        stepping = 0;
        return;
    }
    pass_on(sig, si, uctx);
}

static int ours(int sig)
{
    return sla_buf != NULL && (sig == SIGBUS || sig == SIGTRAP);
}

int sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
    if (real_sigaction == NULL)
        real_sigaction = (sigaction_fn)dlsym(RTLD_NEXT, "sigaction");
    if (!ours(sig)) {
        struct sigaction copy;
        if (sla_buf == NULL || act == NULL)
            return real_sigaction(sig, act, old);
        /* Its handlers must never run with our signals blocked. */
        copy = *act;
        sigdelset(&copy.sa_mask, SIGBUS);
        sigdelset(&copy.sa_mask, SIGTRAP);
        return real_sigaction(sig, &copy, old);
    }
    if (old != NULL)
        *old = *program_action(sig);
    if (act != NULL)
        *program_action(sig) = *act;
    return 0;
}

int __sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
    return sigaction(sig, act, old);
}

/* Every other way into the signal table goes through sigaction above, with
 * the semantics each entry point has in glibc. */
static sighandler_t install(int sig, sighandler_t handler, int flags)
{
    struct sigaction act, old;

    memset(&act, 0, sizeof(act));
    act.sa_handler = handler;
    act.sa_flags = flags;
    if (sigaction(sig, &act, &old) != 0)
        return SIG_ERR;
    return old.sa_handler;
}

sighandler_t signal(int sig, sighandler_t handler)
{
    return install(sig, handler, SA_RESTART); /* BSD semantics, glibc's default */
}

sighandler_t bsd_signal(int sig, sighandler_t handler)
{
    return install(sig, handler, SA_RESTART);
}

sighandler_t ssignal(int sig, sighandler_t handler)
{
    return install(sig, handler, SA_RESTART);
}

/* What signal() becomes under strict ISO C (-std=c11, no _DEFAULT_SOURCE):
 * System V semantics. Debian's zstd installs its SIGBUS handler this way. */
sighandler_t __sysv_signal(int sig, sighandler_t handler)
{
    return install(sig, handler, SA_RESETHAND | SA_NODEFER);
}

sighandler_t sysv_signal(int sig, sighandler_t handler)
{
    return install(sig, handler, SA_RESETHAND | SA_NODEFER);
}

sighandler_t sigset(int sig, sighandler_t handler)
{
    sigset_t one;

    sigemptyset(&one);
    sigaddset(&one, sig);
    if (handler == SIG_HOLD) { /* block it; ours are never blocked (see sigprocmask) */
        struct sigaction old;
        sigprocmask(SIG_BLOCK, &one, NULL);
        return sigaction(sig, NULL, &old) == 0 ? old.sa_handler : SIG_ERR;
    }
    sighandler_t old = install(sig, handler, 0);
    if (old != SIG_ERR)
        sigprocmask(SIG_UNBLOCK, &one, NULL);
    return old;
}

static const sigset_t *without_ours(int how, const sigset_t *set, sigset_t *copy)
{
    if (sla_buf == NULL || set == NULL || how == SIG_UNBLOCK)
        return set;
    *copy = *set;
    sigdelset(copy, SIGBUS);
    sigdelset(copy, SIGTRAP);
    return copy;
}

int sigprocmask(int how, const sigset_t *set, sigset_t *old)
{
    sigset_t copy;

    if (real_sigprocmask == NULL)
        real_sigprocmask = (sigmask_fn)dlsym(RTLD_NEXT, "sigprocmask");
    return real_sigprocmask(how, without_ours(how, set, &copy), old);
}

int pthread_sigmask(int how, const sigset_t *set, sigset_t *old)
{
    sigset_t copy;

    if (real_pthread_sigmask == NULL)
        real_pthread_sigmask = (sigmask_fn)dlsym(RTLD_NEXT, "pthread_sigmask");
    return real_pthread_sigmask(how, without_ours(how, set, &copy), old);
}

/* glibc blocks every signal with raw system calls while it makes or ends a
 * thread and inside posix_spawn's child; a misaligned access then would be
 * a blocked SIGBUS, which the kernel turns into death. So those run with AC
 * off: a new thread sets it once its start routine is called, and clears
 * it when the routine ends. */
struct sla_start {
    void *(*fn)(void *);
    void *arg;
};

typedef int (*create_fn)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);

static void *sla_thread(void *p)
{
    struct sla_start s = *(struct sla_start *)p;
    void *result;

    free(p);
    set_ac();
    result = s.fn(s.arg);
    clear_ac();
    return result;
}

int pthread_create(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *), void *arg)
{
    static create_fn real;
    struct sla_start *s;
    int r;

    if (real == NULL)
        real = (create_fn)dlsym(RTLD_NEXT, "pthread_create");
    if (sla_buf == NULL || !ac_mode || (s = malloc(sizeof(*s))) == NULL)
        return real(t, attr, fn, arg);
    s->fn = fn;
    s->arg = arg;
    clear_ac();
    r = real(t, attr, sla_thread, s);
    set_ac();
    if (r != 0)
        free(s);
    return r;
}

void pthread_exit(void *value)
{
    static void (*real)(void *);

    if (real == NULL)
        real = (void (*)(void *))dlsym(RTLD_NEXT, "pthread_exit");
    clear_ac();
    real(value);
    __builtin_unreachable();
}

typedef int (*spawn_fn)(pid_t *, const char *, const posix_spawn_file_actions_t *,
                        const posix_spawnattr_t *, char *const[], char *const[]);

static int spawn_without_ac(const char *name, pid_t *pid, const char *path,
                            const posix_spawn_file_actions_t *fa, const posix_spawnattr_t *sa,
                            char *const argv[], char *const envp[])
{
    spawn_fn real = (spawn_fn)dlsym(RTLD_NEXT, name);
    int r;

    clear_ac();
    r = real(pid, path, fa, sa, argv, envp);
    if (sla_buf != NULL)
        set_ac();
    return r;
}

int posix_spawn(pid_t *pid, const char *path, const posix_spawn_file_actions_t *fa,
                const posix_spawnattr_t *sa, char *const argv[], char *const envp[])
{
    return spawn_without_ac("posix_spawn", pid, path, fa, sa, argv, envp);
}

int posix_spawnp(pid_t *pid, const char *file, const posix_spawn_file_actions_t *fa,
                 const posix_spawnattr_t *sa, char *const argv[], char *const envp[])
{
    return spawn_without_ac("posix_spawnp", pid, file, fa, sa, argv, envp);
}

int system(const char *command)
{
    static int (*real)(const char *);
    int r;

    if (real == NULL)
        real = (int (*)(const char *))dlsym(RTLD_NEXT, "system");
    clear_ac();
    r = real(command);
    if (sla_buf != NULL)
        set_ac();
    return r;
}

/* Breakpoint mode: the C library calls that start a helper thread with every
 * signal blocked take the C library's breakpoints out first (breakpoints.c),
 * and a program's own thread attributes never block our signals. */
#define SLA_DISARMING(ret, name, params, args, when)                                              \
    ret name params                                                                               \
    {                                                                                             \
        static ret(*real) params;                                                                 \
        if (real == NULL)                                                                         \
            real = (ret(*) params)dlsym(RTLD_NEXT, #name);                                        \
        if (sla_buf != NULL && !ac_mode && (when))                                                \
            sla_breakpoints_disarm();                                                             \
        return real args;                                                                         \
    }

SLA_DISARMING(int, timer_create, (clockid_t c, struct sigevent *ev, timer_t *t), (c, ev, t),
              ev != NULL && ev->sigev_notify == SIGEV_THREAD)
SLA_DISARMING(int, mq_notify, (mqd_t q, const struct sigevent *ev), (q, ev),
              ev != NULL && ev->sigev_notify == SIGEV_THREAD)
SLA_DISARMING(int, aio_read, (struct aiocb * cb), (cb), 1)
SLA_DISARMING(int, aio_write, (struct aiocb * cb), (cb), 1)
SLA_DISARMING(int, aio_fsync, (int op, struct aiocb *cb), (op, cb), 1)
SLA_DISARMING(int, lio_listio, (int m, struct aiocb *const l[], int n, struct sigevent *ev),
              (m, l, n, ev), 1)
SLA_DISARMING(int, aio_read64, (struct aiocb64 * cb), (cb), 1)
SLA_DISARMING(int, aio_write64, (struct aiocb64 * cb), (cb), 1)
SLA_DISARMING(int, aio_fsync64, (int op, struct aiocb64 *cb), (op, cb), 1)
SLA_DISARMING(int, lio_listio64, (int m, struct aiocb64 *const l[], int n, struct sigevent *ev),
              (m, l, n, ev), 1)
SLA_DISARMING(int, getaddrinfo_a, (int m, struct gaicb *l[], int n, struct sigevent *ev),
              (m, l, n, ev), 1)

int pthread_attr_setsigmask_np(pthread_attr_t *attr, const sigset_t *set)
{
    static int (*real)(pthread_attr_t *, const sigset_t *);
    sigset_t copy;

    if (real == NULL)
        real = (int (*)(pthread_attr_t *, const sigset_t *))dlsym(RTLD_NEXT,
                                                                  "pthread_attr_setsigmask_np");
    return real(attr, without_ours(SIG_SETMASK, set, &copy));
}

static struct slt_header *attach(void)
{
    const char *fd_text = getenv("SPLITLOCK_AGENT_FD");
    const char *id_text = getenv("SPLITLOCK_AGENT_ID");
    struct stat st;
    char id[64];
    void *map;
    int fd;

    if (fd_text == NULL || id_text == NULL)
        return NULL;
    fd = atoi(fd_text);
    if (fstat(fd, &st) != 0)
        return NULL;
    /* The number may have been closed and reused: only our buffer will do. */
    snprintf(id, sizeof(id), "%lu:%lu", (unsigned long)st.st_dev, (unsigned long)st.st_ino);
    if (strcmp(id, id_text) != 0 || (size_t)st.st_size < sizeof(struct slt_header))
        return NULL;
    map = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED)
        return NULL;
    if (((struct slt_header *)map)->magic != SLT_MAGIC ||
        ((struct slt_header *)map)->record_size != sizeof(struct slt_record)) {
        munmap(map, (size_t)st.st_size);
        return NULL;
    }
    /* No more records than the mapping holds, whatever the header says now. */
    capacity = ((struct slt_header *)map)->capacity;
    if (capacity > ((size_t)st.st_size - sizeof(struct slt_header)) / sizeof(struct slt_record))
        capacity = ((size_t)st.st_size - sizeof(struct slt_header)) / sizeof(struct slt_record);
    return map;
}

__attribute__((constructor)) static void sla_start(void)
{
    struct sigaction sa;
    struct slt_header *h;

    real_sigaction = (sigaction_fn)dlsym(RTLD_NEXT, "sigaction");
    real_sigprocmask = (sigmask_fn)dlsym(RTLD_NEXT, "sigprocmask");
    real_pthread_sigmask = (sigmask_fn)dlsym(RTLD_NEXT, "pthread_sigmask");
    if (real_sigaction == NULL || real_sigprocmask == NULL || real_pthread_sigmask == NULL)
        return;
    h = attach();
    if (h == NULL)
        return;
    records = (struct slt_record *)(h + 1);
    memset(&sa, 0, sizeof(sa));
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    /* Every signal blocked while ours run: otherwise a pending one is delivered
     * on top of our SIGBUS entry, before AC is cleared and with SIGBUS blocked,
     * and the program's handler dies of its first misaligned access. Pending
     * signals come after our handler returns, with AC off. */
    sigfillset(&sa.sa_mask);
    /* What the program inherited across exec stays its own. */
    real_sigaction(SIGBUS, NULL, &program_bus);
    real_sigaction(SIGTRAP, NULL, &program_trap);
    sa.sa_sigaction = sla_bus_entry;
    if (real_sigaction(SIGBUS, &sa, NULL) != 0)
        return;
    sa.sa_sigaction = sla_trap_entry;
    if (real_sigaction(SIGTRAP, &sa, NULL) != 0)
        return;
    sla_buf = h;
    __atomic_add_fetch(&sla_buf->images, 1, __ATOMIC_RELAXED);
    /* The tool's site socket asks for breakpoint mode; without it, AC mode. */
    const char *sites = getenv("SPLITLOCK_AGENT_SITES");
    if (sites != NULL && sites[0] != '\0') {
        sla_breakpoints_start(sites);
        return;
    }
    ac_mode = 1;
    set_ac();
}

#endif
