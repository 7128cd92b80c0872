/* sitewire.h: how the agent asks the tool for an image's locked sites.
 *
 * In breakpoint mode the agent traps only the locked instructions of each
 * loaded image, so it must know where they are. Finding them takes an x86
 * decoder, which the tool has (capstone, the same sweep as `audit`) and the
 * agent does not. The tool listens on a Unix socket (SPLITLOCK_AGENT_SITES,
 * in a directory only we can reach); per image the agent connects, sends one
 * line, "DEV INO PATH\n" (the file it mapped, and its identity), and reads a
 * reply header and `count` sites, sorted by vaddr. The tool opens PATH
 * itself and answers only if its device and inode are the ones named.
 * splitlock_probe/run/trace/sitewire.py writes the other side; the layout is
 * checked against the compiler in tests. */
#ifndef SPLITLOCK_SITEWIRE_H
#define SPLITLOCK_SITEWIRE_H

#include <stdint.h>

#define SLS_MAGIC 0x45544953u /* "SITE" */
#define SLS_INSN_MAX 16
#define SLS_BASE_NONE (-1)
#define SLS_BASE_RIP 16

enum sls_flag {
    SLS_FS = 1,     /* fs: segment override: add the thread's fs base */
    SLS_GS = 2,     /* gs: likewise */
    SLS_ADDR32 = 4, /* 0x67 prefix: the address is 32 bits */
    SLS_MOVED_JCC = 8, /* the last moved instruction is a conditional jump (re-aimed) */
};

enum sls_image_flag {
    SLS_C_LIBRARY = 1, /* its sites are taken out when glibc starts a helper
                        * thread that runs with every signal blocked */
};

struct sls_reply {
    uint32_t magic;
    int32_t status; /* 0: sites follow; else an errno, no sites */
    uint32_t count;
    uint32_t site_size; /* sizeof(struct sls_site) */
    uint32_t flags;     /* enum sls_image_flag */
    uint32_t reserved;
};

/* One locked instruction whose operand the agent must check when it runs:
 * the operand is EA = base + index * scale + disp (RIP-relative: from the
 * next instruction), its alignment judged against `width`. */
struct sls_site {
    uint64_t vaddr; /* link-time address: the load bias is added */
    int32_t disp;
    uint8_t len;     /* instruction bytes */
    uint8_t width;   /* operand bytes */
    int8_t base;     /* ModRM register number, SLS_BASE_RIP or SLS_BASE_NONE */
    int8_t index;    /* ModRM register number or SLS_BASE_NONE */
    uint8_t scale;   /* 1, 2, 4, 8 */
    uint8_t flags;   /* enum sls_flag */
    uint8_t disp_at; /* where disp32 sits in insn, for RIP-relative ones; else 0 */
    uint8_t moved;   /* bytes after it that move with it into its stub, so a site
                      * under 5 bytes can take a jump (run/trace/moved.py) */
    uint8_t insn[SLS_INSN_MAX]; /* the bytes expected at the site: it, then the moved ones */
    int32_t hop;        /* a short site that moves nothing: alignment filler this far
                         * from vaddr, within a jmp rel8's reach, where a jmp rel32
                         * to its stub may go (run/trace/hops.py); 0: none */
    uint8_t hop_code[5]; /* the filler's bytes there, as the tool read them */
};

#endif /* SPLITLOCK_SITEWIRE_H */
