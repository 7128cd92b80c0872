/* ops.h: internal to the core. The table of locked-op loops that ops.c
 * compiles and timing.c / trap.c run. */
#ifndef SLP_OPS_H
#define SLP_OPS_H

#include "splitlock.h"

/* Run one locked op `n` times on addr (bit: register offset, ignored by the
 * forms that have none or bake it in). */
typedef void (*slp_loop_fn)(void *addr, int64_t bit, uint64_t n);

/* The loop for op, or NULL when it is not compiled in. */
slp_loop_fn slp_loop_lookup(const struct slp_op *op);

#endif
