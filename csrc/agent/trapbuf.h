/* trapbuf.h: the buffer the alignment-trap tracers fill and the tool reads.
 *
 * One shared mapping (a memfd the tool creates): a header, then fixed-size
 * records, one per trapped *locked* instruction, each with the instruction's
 * bytes and the registers that give its operand's address. Writers claim a
 * record with an atomic add on `next`; past `capacity` they count `dropped`.
 * Both tracers write it: the preloaded agent (agent.c, in every process of
 * the traced program) and the ptrace tracer (csrc/tracer.c, in ours).
 * splitlock_probe/tracing/records.py reads it; the layout is checked against
 * the compiler in tests. */
#ifndef SPLITLOCK_TRAPBUF_H
#define SPLITLOCK_TRAPBUF_H

#include <stdint.h>

#define SLT_MAGIC 0x544c5053u /* "SPLT" */
#define SLT_VERSION 1u
#define SLT_INSN_MAX 16

struct slt_header {
    uint32_t magic;
    uint32_t version;
    uint32_t capacity;    /* records that fit after the header */
    uint32_t record_size; /* sizeof(struct slt_record) */
    uint64_t next;        /* records claimed (may exceed capacity) */
    uint64_t traps;       /* every alignment trap, locked or not */
    uint64_t locked;      /* traps of locked instructions */
    uint64_t dropped;     /* locked traps with no room left */
    uint64_t passed_on;   /* SIGBUS / SIGTRAP that were the program's own */
    uint64_t images;      /* program images the agent started in (one per exec) */
    uint64_t lost_ac;     /* threads found without AC (ptrace: re-armed at a stop) */
    /* Breakpoint mode (the agent traps only locked instructions, sitewire.h): */
    uint64_t armed;       /* sites given a breakpoint, summed over images */
    uint64_t unarmed;     /* sites that could not be (bytes differ, no room near) */
    uint64_t hits;        /* breakpoints hit: every run of a watched locked op */
    uint64_t blind;       /* images whose sites the tool could not give */
    uint64_t disarmed;    /* C library sites taken out again (sla_breakpoints_disarm) */
    uint64_t jumps;       /* armed sites whose int3 became a jump to a checking stub */
    uint64_t trapped;     /* hits that raised a SIGTRAP (an int3, or a misaligned jump) */
    uint64_t hops;        /* of the jumps, short sites' `jmp rel8` through alignment filler */
};

struct slt_record {
    uint32_t pid;
    uint32_t tid;
    uint64_t rip;
    uint64_t rflags;
    uint64_t regs[16]; /* rax rcx rdx rbx rsp rbp rsi rdi r8 .. r15: the ModRM numbering */
    uint64_t fs_base;
    uint64_t gs_base;
    uint8_t insn[SLT_INSN_MAX];
    uint32_t insn_len; /* bytes of insn that could be read */
    uint32_t source;   /* 1: agent, 2: ptrace */
};

/* Is this instruction locked? A LOCK prefix (0xF0) among its legacy
 * prefixes, or XCHG with a memory operand (0x86/0x87, ModRM.mod != 3), which
 * is locked without one. The tool decodes the rest. */
static inline int slt_is_locked(const uint8_t *b, uint32_t n)
{
    uint32_t i = 0;
    int lock = 0;

    for (; i < n; i++) {
        uint8_t p = b[i];
        if (p == 0xF0)
            lock = 1;
        else if (!(p == 0xF2 || p == 0xF3 || p == 0x2E || p == 0x36 || p == 0x3E ||
                   p == 0x26 || p == 0x64 || p == 0x65 || p == 0x66 || p == 0x67))
            break;
    }
    if (lock)
        return 1;
    if (i < n && (b[i] & 0xF0) == 0x40) /* REX */
        i++;
    return i + 1 < n && (b[i] == 0x86 || b[i] == 0x87) && (b[i + 1] >> 6) != 3;
}

#endif /* SPLITLOCK_TRAPBUF_H */
