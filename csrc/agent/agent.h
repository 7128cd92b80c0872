/* agent.h: what the agent's two halves share. agent.c owns the signal
 * handlers, the program's signal table and the alignment-check mode;
 * breakpoints.c owns breakpoint mode (a trap at each locked instruction).
 * Internal to the agent library: nothing here is exported. */
#ifndef SPLITLOCK_AGENT_H
#define SPLITLOCK_AGENT_H

#include <stdint.h>
#include <ucontext.h>

#include "trapbuf.h"

#define SLA_HIDDEN __attribute__((visibility("hidden")))

extern SLA_HIDDEN struct slt_header *sla_buf;

/* Save a locked instruction's bytes and registers (uc's RIP must be the
 * instruction's address) in the shared buffer. */
SLA_HIDDEN void sla_record(ucontext_t *uc, const uint8_t *insn, uint32_t len);

/* Breakpoint mode: start it (the tool's site socket), and claim a SIGTRAP
 * from int3 when it is one of ours: 1 if handled (uc moved on), else 0. */
SLA_HIDDEN int sla_breakpoints_start(const char *socket_path);
SLA_HIDDEN int sla_breakpoint_hit(ucontext_t *uc);
/* Take the C library's breakpoints and the loader hook out, for good. */
SLA_HIDDEN void sla_breakpoints_disarm(void);

#endif /* SPLITLOCK_AGENT_H */
