/* tracer.c: the ptrace alignment-trap tracer, for programs the preloaded
 * agent cannot enter (static binaries, setuid, programs that take SIGBUS or
 * SIGTRAP for themselves, or that clear their environment).
 *
 * The command is seized (PTRACE_SEIZE) at its start gate, with every clone,
 * fork, vfork and exec reported. EFLAGS.AC is set in each thread at its
 * first stop and again after every exec (exec clears it). A SIGBUS stop with
 * si_code BUS_ADRALN and AC set is our trap: a locked instruction is recorded
 * (trapbuf.h) with its registers; AC is cleared and the thread single-steps
 * the instruction; at the SIGTRAP that follows AC is set again and the
 * thread goes on, the signal suppressed. Every other signal is delivered
 * as it came; group stops are left to the shell (PTRACE_LISTEN).
 *
 * slp_tracer_poll() handles stops for up to a given time and returns, so
 * the caller can read the kernel log and pass signals on in between. It
 * assumes SIGCHLD is blocked in the calling thread (it waits for it with
 * sigtimedwait). Needs: Linux, x86-64. Returns status codes; never prints. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "splitlock.h"
#include "agent/sitewire.h"
#include "agent/trapbuf.h"

#if SLP_HAS_X86_64

#define EFLAGS_AC 0x40000ULL

struct task {
    int tid;
    int stepping; /* single-stepping a trapped instruction, AC off */
    int trap_blocked; /* SIGTRAP was blocked when the step began: block it again after */
    int entering; /* a signal was delivered with a step: is a handler being entered? */
    int detaching;
};

struct slp_tracer {
    int child;
    struct slt_header *buf;
    struct slt_record *records;
    /* Our own copy, taken before the program ran: the buffer is in memory the
     * traced program can write (via /proc/PID/fd), so no bound is read from it. */
    uint64_t capacity;
    struct task *tasks;
    size_t ntasks, cap;
    struct slp_trace_info info;
};

static struct task *find(struct slp_tracer *t, int tid)
{
    for (size_t i = 0; i < t->ntasks; i++)
        if (t->tasks[i].tid == tid)
            return &t->tasks[i];
    return NULL;
}

static struct task *add(struct slp_tracer *t, int tid)
{
    struct task *k = find(t, tid);

    if (k != NULL)
        return k;
    if (t->ntasks == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 64;
        struct task *more = realloc(t->tasks, cap * sizeof(*more));
        if (more == NULL)
            return NULL;
        t->tasks = more;
        t->cap = cap;
    }
    k = &t->tasks[t->ntasks++];
    memset(k, 0, sizeof(*k));
    k->tid = tid;
    t->info.tasks_seen++;
    return k;
}

static void drop(struct slp_tracer *t, int tid)
{
    for (size_t i = 0; i < t->ntasks; i++)
        if (t->tasks[i].tid == tid) {
            t->tasks[i] = t->tasks[--t->ntasks];
            return;
        }
}

/* AC on in this stopped thread (off when `on` is 0); 1 when it changed. */
static int set_ac(int tid, int on)
{
    struct user_regs_struct regs;

    if (ptrace(PTRACE_GETREGS, tid, 0, &regs) != 0)
        return 0;
    if (!!(regs.eflags & EFLAGS_AC) == !!on)
        return 0;
    regs.eflags = on ? (regs.eflags | EFLAGS_AC) : (regs.eflags & ~EFLAGS_AC);
    return ptrace(PTRACE_SETREGS, tid, 0, &regs) == 0;
}

static void record(struct slp_tracer *t, int tid, const struct user_regs_struct *r,
                   const uint8_t *insn, uint32_t len)
{
    uint64_t i = __atomic_fetch_add(&t->buf->next, 1, __ATOMIC_RELAXED);
    struct slt_record *out;

    __atomic_add_fetch(&t->buf->locked, 1, __ATOMIC_RELAXED);
    if (i >= t->capacity) {
        __atomic_add_fetch(&t->buf->dropped, 1, __ATOMIC_RELAXED);
        return;
    }
    out = &t->records[i];
    out->pid = (uint32_t)tid; /* the thread group is filled in by the reader from task records */
    out->tid = (uint32_t)tid;
    out->rip = r->rip;
    out->rflags = r->eflags;
    out->regs[0] = r->rax;
    out->regs[1] = r->rcx;
    out->regs[2] = r->rdx;
    out->regs[3] = r->rbx;
    out->regs[4] = r->rsp;
    out->regs[5] = r->rbp;
    out->regs[6] = r->rsi;
    out->regs[7] = r->rdi;
    out->regs[8] = r->r8;
    out->regs[9] = r->r9;
    out->regs[10] = r->r10;
    out->regs[11] = r->r11;
    out->regs[12] = r->r12;
    out->regs[13] = r->r13;
    out->regs[14] = r->r14;
    out->regs[15] = r->r15;
    out->fs_base = r->fs_base;
    out->gs_base = r->gs_base;
    memcpy(out->insn, insn, SLT_INSN_MAX);
    out->insn_len = len;
    __atomic_store_n(&out->source, 2u, __ATOMIC_RELEASE);
}

static uint32_t read_insn(int tid, uint64_t rip, uint8_t *out)
{
    struct iovec local = {out, SLT_INSN_MAX}, remote = {(void *)(uintptr_t)rip, SLT_INSN_MAX};
    long n;

    memset(out, 0, SLT_INSN_MAX);
    n = syscall(SYS_process_vm_readv, tid, &local, 1, &remote, 1, 0);
    if (n > 0)
        return (uint32_t)n;
    for (n = 0; n < SLT_INSN_MAX; n += 8) { /* word by word, as far as it is mapped */
        long word;
        errno = 0;
        word = ptrace(PTRACE_PEEKTEXT, tid, (void *)(uintptr_t)(rip + (uint64_t)n), 0);
        if (errno != 0)
            break;
        memcpy(out + n, &word, 8);
    }
    return (uint32_t)n;
}

/* A SIGBUS stop: our trap (record it and step over it), or the program's. */
static int on_sigbus(struct slp_tracer *t, struct task *k)
{
    struct user_regs_struct regs;
    siginfo_t si;
    uint8_t insn[SLT_INSN_MAX];
    uint32_t len;

    if (ptrace(PTRACE_GETSIGINFO, k->tid, 0, &si) != 0 ||
        ptrace(PTRACE_GETREGS, k->tid, 0, &regs) != 0)
        return 0;
    if (si.si_code != BUS_ADRALN || !(regs.eflags & EFLAGS_AC))
        return 0;
    __atomic_add_fetch(&t->buf->traps, 1, __ATOMIC_RELAXED);
    len = read_insn(k->tid, regs.rip, insn);
    if (slt_is_locked(insn, len))
        record(t, k->tid, &regs, insn, len);
    regs.eflags &= ~EFLAGS_AC;
    if (ptrace(PTRACE_SETREGS, k->tid, 0, &regs) != 0)
        return 0;
    /* The kernel forces the step's SIGTRAP through a blocked mask by
     * unblocking it for good: note the bit, to put it back after. */
    uint64_t mask;
    k->trap_blocked = ptrace(PTRACE_GETSIGMASK, k->tid, (void *)sizeof(mask), &mask) == 0 &&
                      (mask & (1ULL << (SIGTRAP - 1)));
    k->stepping = 1;
    ptrace(PTRACE_SINGLESTEP, k->tid, 0, 0);
    return 1;
}

static void resume(struct task *k, int sig)
{
    if (k->detaching) {
        set_ac(k->tid, 0);
        ptrace(PTRACE_DETACH, k->tid, 0, (void *)(uintptr_t)sig);
        return;
    }
    ptrace(PTRACE_CONT, k->tid, 0, (void *)(uintptr_t)sig);
}

static void handle(struct slp_tracer *t, int tid, int status, const struct rusage *usage)
{
    struct task *k;
    int sig, event;

    if (WIFEXITED(status) || WIFSIGNALED(status)) {
        drop(t, tid);
        if (tid == t->child) {
            t->info.done = 1;
            t->info.status = status;
            t->info.user_s = (double)usage->ru_utime.tv_sec + usage->ru_utime.tv_usec / 1e6;
            t->info.system_s = (double)usage->ru_stime.tv_sec + usage->ru_stime.tv_usec / 1e6;
            t->info.max_rss_kb = usage->ru_maxrss;
            t->info.voluntary_switches = usage->ru_nvcsw;
            t->info.involuntary_switches = usage->ru_nivcsw;
        }
        return;
    }
    if (!WIFSTOPPED(status))
        return;
    k = add(t, tid);
    if (k == NULL)
        return;
    sig = WSTOPSIG(status);
    event = status >> 16;
    if (event == PTRACE_EVENT_STOP) {
        if (sig == SIGSTOP || sig == SIGTSTP || sig == SIGTTIN || sig == SIGTTOU) {
            if (k->detaching)
                resume(k, 0);
            else
                ptrace(PTRACE_LISTEN, tid, 0, 0); /* a group stop: stays stopped */
            return;
        }
        if (!k->detaching && !k->stepping) /* a new thread or child, or our interrupt */
            set_ac(tid, 1);
        resume(k, 0);
        return;
    }
    if (event == PTRACE_EVENT_EXEC) {
        if (!k->detaching)
            set_ac(tid, 1); /* exec cleared it */
        __atomic_add_fetch(&t->buf->images, 1, __ATOMIC_RELAXED);
        resume(k, 0);
        return;
    }
    if (event != 0) { /* clone, fork, vfork: the new task reports its own stop */
        resume(k, 0);
        return;
    }
    if (sig == SIGTRAP && k->entering) {
        siginfo_t si;
        k->entering = 0;
        /* Stopped at a handler's first instruction (si_code SIGTRAP, from
         * ptrace_notify), or one instruction on when there was none. The
         * handler is traced like the rest, so it must be able to take our
         * SIGBUS: unblock it (and SIGTRAP) for the handler; its frame keeps
         * the program's mask for its return, and a longjmp out keeps AC. */
        if (ptrace(PTRACE_GETSIGINFO, tid, 0, &si) == 0 && si.si_code != TRAP_TRACE) {
            uint64_t mask;
            if (ptrace(PTRACE_GETSIGMASK, tid, (void *)sizeof(mask), &mask) == 0) {
                mask &= ~((1ULL << (SIGBUS - 1)) | (1ULL << (SIGTRAP - 1)));
                ptrace(PTRACE_SETSIGMASK, tid, (void *)sizeof(mask), &mask);
            }
        }
        resume(k, 0);
        return;
    }
    if (sig == SIGTRAP && k->stepping) {
        siginfo_t si;
        if (ptrace(PTRACE_GETSIGINFO, tid, 0, &si) == 0 && si.si_code == TRAP_TRACE) {
            k->stepping = 0;
            if (k->trap_blocked) {
                uint64_t mask;
                if (ptrace(PTRACE_GETSIGMASK, tid, (void *)sizeof(mask), &mask) == 0) {
                    mask |= 1ULL << (SIGTRAP - 1);
                    ptrace(PTRACE_SETSIGMASK, tid, (void *)sizeof(mask), &mask);
                }
                k->trap_blocked = 0;
            }
            if (!k->detaching)
                set_ac(tid, 1);
            resume(k, 0);
            return;
        }
    }
    if (sig == SIGBUS && !k->detaching && !k->stepping && on_sigbus(t, k))
        return;
    if (sig == SIGBUS || sig == SIGTRAP)
        __atomic_add_fetch(&t->buf->passed_on, 1, __ATOMIC_RELAXED);
    /* A signal while stepping cancels the step (the instruction then runs
     * unchecked); any thread found without AC here gets it back. */
    k->stepping = 0;
    if (!k->detaching && set_ac(tid, 1))
        __atomic_add_fetch(&t->buf->lost_ac, 1, __ATOMIC_RELAXED);
    if (!k->detaching) { /* deliver it with a step, to catch a handler's entry */
        k->entering = 1;
        ptrace(PTRACE_SINGLESTEP, tid, 0, (void *)(uintptr_t)sig);
        return;
    }
    resume(k, sig); /* the program's own signal, delivered as it came */
}

int slp_tracer_new(int pid, void *buffer, struct slp_tracer **out)
{
    struct slp_tracer *t;
    long options = PTRACE_O_TRACECLONE | PTRACE_O_TRACEFORK | PTRACE_O_TRACEVFORK |
                   PTRACE_O_TRACEEXEC | PTRACE_O_EXITKILL;

    if (buffer == NULL || out == NULL || ((struct slt_header *)buffer)->magic != SLT_MAGIC)
        return SLP_EINVAL;
    t = calloc(1, sizeof(*t));
    if (t == NULL)
        return SLP_ESYS;
    t->child = pid;
    t->buf = buffer;
    t->records = (struct slt_record *)(t->buf + 1);
    t->capacity = t->buf->capacity;
    if (ptrace(PTRACE_SEIZE, pid, 0, (void *)options) != 0 || add(t, pid) == NULL) {
        int saved = errno;
        free(t->tasks);
        free(t);
        errno = saved;
        return SLP_ESYS;
    }
    *out = t;
    return SLP_OK;
}

static long ms_since(const struct timespec *start)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (now.tv_sec - start->tv_sec) * 1000 + (now.tv_nsec - start->tv_nsec) / 1000000;
}

int slp_tracer_poll(struct slp_tracer *t, int timeout_ms, struct slp_trace_info *info)
{
    struct timespec start;
    sigset_t chld;

    if (t == NULL || info == NULL)
        return SLP_EINVAL;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        struct rusage usage;
        int status;
        pid_t tid;

        while ((tid = wait4(-1, &status, __WALL | WNOHANG, &usage)) > 0)
            handle(t, tid, status, &usage);
        if (tid < 0 && errno == ECHILD)
            break; /* nobody left to wait for */
        long left = timeout_ms - ms_since(&start);
        if (left <= 0 || (t->info.done && t->ntasks == 0))
            break;
        struct timespec wait = {left / 1000, (left % 1000) * 1000000};
        sigtimedwait(&chld, NULL, &wait);
    }
    t->info.tasks_now = (uint32_t)t->ntasks;
    *info = t->info;
    return SLP_OK;
}

int slp_tracer_release(struct slp_tracer *t, int timeout_ms, struct slp_trace_info *info)
{
    /* The command ended; its orphans go on untraced, AC off. */
    for (size_t i = 0; i < t->ntasks; i++) {
        t->tasks[i].detaching = 1;
        ptrace(PTRACE_INTERRUPT, t->tasks[i].tid, 0, 0);
    }
    return slp_tracer_poll(t, timeout_ms, info);
}

int slp_tracer_free(struct slp_tracer *t)
{
    if (t != NULL) {
        free(t->tasks);
        free(t);
    }
    return SLP_OK;
}

#else

int slp_tracer_new(int pid, void *buffer, struct slp_tracer **out)
{
    (void)pid;
    (void)buffer;
    (void)out;
    return SLP_EUNSUPPORTED;
}

int slp_tracer_poll(struct slp_tracer *t, int timeout_ms, struct slp_trace_info *info)
{
    (void)t;
    (void)timeout_ms;
    (void)info;
    return SLP_EUNSUPPORTED;
}

int slp_tracer_release(struct slp_tracer *t, int timeout_ms, struct slp_trace_info *info)
{
    (void)t;
    (void)timeout_ms;
    (void)info;
    return SLP_EUNSUPPORTED;
}

int slp_tracer_free(struct slp_tracer *t)
{
    (void)t;
    return SLP_EUNSUPPORTED;
}

#endif

/* The buffer layout as this compiler lays it out, for the reader to check. */
int slp_trapbuf_layout(uint32_t *header, uint32_t *record, uint32_t *insn_offset)
{
    if (header == NULL || record == NULL || insn_offset == NULL)
        return SLP_EINVAL;
    *header = (uint32_t)sizeof(struct slt_header);
    *record = (uint32_t)sizeof(struct slt_record);
    *insn_offset = (uint32_t)__builtin_offsetof(struct slt_record, insn);
    return SLP_OK;
}

/* The site wire layout (agent/sitewire.h) as compiled, likewise. */
int slp_sitewire_layout(uint32_t *site, uint32_t *reply, uint32_t *insn_offset)
{
    if (site == NULL || reply == NULL || insn_offset == NULL)
        return SLP_EINVAL;
    *site = (uint32_t)sizeof(struct sls_site);
    *reply = (uint32_t)sizeof(struct sls_reply);
    *insn_offset = (uint32_t)__builtin_offsetof(struct sls_site, insn);
    return SLP_OK;
}
