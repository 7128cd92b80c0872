/* splitlock.h: the C API of splitlock-probe's compiled core.
 *
 * Every function returns a status code (SLP_OK or SLP_E*) and fills the
 * structs it is given. Nothing here prints, exits or allocates behind the
 * caller's back. On a machine that is not x86-64 everything compiles and
 * every probing call returns SLP_EUNSUPPORTED (see SLP_HAS_X86_64).
 */
#ifndef SPLITLOCK_H
#define SPLITLOCK_H

#include <stddef.h>
#include <stdint.h>

/* SLP_FORCE_PORTABLE builds the non-x86 code paths on any machine, so the
 * "unsupported host" behaviour is tested where it cannot happen for real. */
#if defined(__x86_64__) && !defined(SLP_FORCE_PORTABLE)
#define SLP_HAS_X86_64 1
#else
#define SLP_HAS_X86_64 0
#endif

/* Status codes. */
#define SLP_OK 0
#define SLP_EINVAL 1        /* no such (instruction, width, form) or bad argument */
#define SLP_EUNSUPPORTED 2  /* not an x86-64 machine */
#define SLP_EFAULT 3        /* the op raised SIGBUS or SIGSEGV: see struct slp_fault */
#define SLP_ESYS 4          /* a system call failed: errno is set */

/* Instructions. All are locked read-modify-writes (xchg is locked implicitly). */
#define SLP_INSN_BTS 0
#define SLP_INSN_BTR 1
#define SLP_INSN_BTC 2
#define SLP_INSN_XADD 3
#define SLP_INSN_CMPXCHG 4
#define SLP_INSN_XCHG 5
#define SLP_INSN_ADD 6
#define SLP_INSN_CMPXCHG16B 7

/* Bit-offset forms of bts/btr/btc. The register form addresses a bit string
 * (the offset moves the address); the immediate form takes the offset modulo
 * the operand width. Other instructions use SLP_FORM_NONE. */
#define SLP_FORM_NONE 0
#define SLP_FORM_REG 1
#define SLP_FORM_IMM 2

/* Immediate offsets compiled into the core: 0 .. SLP_IMM_MAX. */
#define SLP_IMM_MAX 63

/* Upper bound on timing batches per call. */
#define SLP_MAX_BATCHES 256

struct slp_op {
    int insn;         /* SLP_INSN_* */
    int width;        /* operand width in bytes: 1, 2, 4, 8 or 16 */
    int form;         /* SLP_FORM_* */
    int64_t bit;      /* bit offset for bts/btr/btc (register or immediate) */
};

/* What a fault looked like. Filled when a call returns SLP_EFAULT. */
struct slp_fault {
    int signo;        /* SIGBUS or SIGSEGV */
    int si_code;      /* BUS_ADRALN for #AC, SI_KERNEL for #GP, ... */
    int ac_armed;     /* 1 when we had set EFLAGS.AC: our alignment-check trap */
    uint64_t ip;      /* faulting instruction pointer */
    uint64_t addr;    /* si_addr (0 for #AC on Linux) */
};

struct slp_timing {
    uint64_t iterations;     /* ops per batch */
    uint32_t batches;
    double min_cycles;       /* TSC cycles per op, fastest batch */
    double median_cycles;    /* TSC cycles per op, median batch */
};

/* 1 when (insn, width, form) is compiled in, else 0. */
int slp_op_supported(const struct slp_op *op);

/* Run the op `count` times on addr, with faults caught. */
int slp_run(const struct slp_op *op, void *addr, uint64_t count,
            struct slp_fault *fault);

/* Time the op on addr: `batches` batches of `iterations` ops each, fenced
 * with rdtscp. iterations == 0 picks a count that makes a batch last about
 * target_cycles. */
int slp_time(const struct slp_op *op, void *addr, uint32_t batches,
             uint64_t iterations, uint64_t target_cycles,
             struct slp_timing *timing, struct slp_fault *fault);

/* Run the op once with EFLAGS.AC set. Returns SLP_OK when it did not trap,
 * SLP_EFAULT with fault->ac_armed == 1 when it did. AC is clear on return. */
int slp_trap(const struct slp_op *op, void *addr, struct slp_fault *fault);

/* TSC frequency, measured against CLOCK_MONOTONIC_RAW over `ms` ms. */
int slp_tsc_hz(uint32_t ms, double *hz);

/* Single ops timed one at a time (fenced), split and aligned interleaved,
 * `spacing_ns` of sleep after each pair, until n pairs or budget_cycles.
 * *done pairs were timed; SLP_EFAULT when a fault stopped them. */
int slp_cost_sample(const struct slp_op *op, void *split_addr, void *aligned_addr,
                    uint32_t n, uint64_t budget_cycles, uint64_t spacing_ns,
                    uint64_t *split_cycles, uint64_t *aligned_cycles, uint32_t *done,
                    struct slp_fault *fault);

#define SLP_VICTIM_STREAM 0    /* the victim copies memory beyond L2 */
#define SLP_VICTIM_ATOMIC 1    /* the victim runs aligned lock xadd on its own line */
#define SLP_NEIGHBOUR_IDLE 0   /* the aggressor runs nothing */
#define SLP_NEIGHBOUR_ALIGNED 1 /* the aggressor runs the op aligned */
#define SLP_NEIGHBOUR_SPLIT 2  /* the aggressor runs the op split */

struct slp_neighbour_result {
    uint64_t victim_units;   /* bytes copied or atomic ops done by the victim */
    uint64_t aggressor_ops;  /* locked ops the aggressor ran */
    uint64_t elapsed_ns;
};

/* A victim thread pinned to victim_cpu beside an aggressor pinned to
 * aggressor_cpu, for ms milliseconds. SLP_ESYS (errno) when a CPU cannot
 * be had. */
int slp_neighbour(const struct slp_op *op, void *split_addr, void *aligned_addr,
                  int victim_cpu, int aggressor_cpu, int victim_kind, int aggressor_kind,
                  uint32_t ms, struct slp_neighbour_result *out);

/* Arena: `pages` read-write pages between two PROT_NONE guard pages. */
int slp_arena_map(size_t pages, void **base);
int slp_arena_unmap(void *base, size_t pages);

/* Xen struct layouts as the C compiler lays them out (xen_abi.h). */
struct slp_field_info {
    const char *layout;
    const char *field;
    size_t offset;
    size_t size;
};
size_t slp_layout_fields(const struct slp_field_info **fields);

/* Hardware and software event counters (perf_event_open), on any Linux.
 * An event is what perf_event_attr needs: the PMU's type (PERF_TYPE_RAW, 4,
 * for the core PMU; /sys/bus/event_source/devices/<pmu>/type for others)
 * and its config words. Counters open disabled, read as a group with the
 * enabled and running times (scale a multiplexed count by their ratio). */
#define SLP_PERF_MAX_GROUP 8
#define SLP_PERF_ENABLE 0
#define SLP_PERF_DISABLE 1
#define SLP_PERF_RESET 2

struct slp_perf_event {
    uint32_t type;
    uint64_t config;
    uint64_t config1;
    uint64_t config2;
    int exclude_kernel;  /* needed where perf_event_paranoid >= 2 */
    int exclude_hv;
    int inherit;         /* count threads and children created later too */
};

struct slp_perf_values {
    uint64_t nr;
    uint64_t time_enabled;  /* ns */
    uint64_t time_running;  /* ns; < time_enabled when multiplexed */
    uint64_t values[SLP_PERF_MAX_GROUP];
};

/* Open one counter: pid 0 and cpu -1 count the calling thread anywhere;
 * pid -1 and cpu N count everything on CPU N. group_fd -1 starts a group.
 * SLP_ESYS with errno as perf_event_open(2) left it. */
int slp_perf_open(const struct slp_perf_event *event, int pid, int cpu, int group_fd, int *fd);
/* SLP_PERF_ENABLE, SLP_PERF_DISABLE or SLP_PERF_RESET on fd (its whole group with `group`). */
int slp_perf_ctl(int fd, int what, int group);
/* Read the group led by leader_fd. */
int slp_perf_read(int leader_fd, struct slp_perf_values *values);
int slp_perf_close(int fd);

/* Become (on=1) or stop being (on=0) the reaper of orphaned descendants.
 * SLP_ESYS with errno from prctl(2); SLP_EUNSUPPORTED off Linux. */
int slp_child_subreaper(int on);

/* A process tree's task records (taskring.c): forks, exits, names and
 * executable mappings of pid and every descendant, on one CPU. pages: a
 * power of two. Read copies whole records (perf_event_header first) into
 * out, at most cap bytes; *len says how many. */
struct slp_taskring {
    int fd;
    void *base;
    size_t data_size;
    size_t map_size;
};
int slp_taskring_open(int pid, int cpu, uint32_t pages, struct slp_taskring *ring);
int slp_taskring_read(struct slp_taskring *ring, void *out, size_t cap, size_t *len);
int slp_taskring_close(struct slp_taskring *ring);

/* The ptrace alignment-trap tracer (tracer.c): records locked traps of a
 * seized command's whole tree into a trapbuf.h buffer. */
struct slp_tracer;
struct slp_trace_info {
    int done;    /* the command has ended */
    int status;  /* its wait status */
    double user_s;
    double system_s;
    long max_rss_kb;
    long voluntary_switches;
    long involuntary_switches;
    uint64_t tasks_seen;
    uint32_t tasks_now;
};
int slp_tracer_new(int pid, void *buffer, struct slp_tracer **out);
int slp_tracer_poll(struct slp_tracer *t, int timeout_ms, struct slp_trace_info *info);
int slp_tracer_release(struct slp_tracer *t, int timeout_ms, struct slp_trace_info *info);
int slp_tracer_free(struct slp_tracer *t);
/* The trace buffer layout (agent/trapbuf.h), as compiled. */
int slp_trapbuf_layout(uint32_t *header, uint32_t *record, uint32_t *insn_offset);
/* The breakpoint site wire layout (agent/sitewire.h), as compiled. */
int slp_sitewire_layout(uint32_t *site, uint32_t *reply, uint32_t *insn_offset);

/* What this core is: "x86-64 core, gcc 12.2.0" (for --version). */
const char *slp_build(void);

#endif /* SPLITLOCK_H */
