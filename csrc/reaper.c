/* reaper.c: make this process the reaper of its orphaned descendants
 * (PR_SET_CHILD_SUBREAPER), so that a wrapped command's grandchildren whose
 * parents exit stay in our tree instead of moving to init, and `run` can
 * still tie their threads to the command.
 * Needs: Linux 3.4 or later (any architecture). */
#define _GNU_SOURCE
#include <errno.h>

#include "splitlock.h"

#ifdef __linux__
#include <sys/prctl.h>

int slp_child_subreaper(int on)
{
    return prctl(PR_SET_CHILD_SUBREAPER, on ? 1UL : 0UL, 0UL, 0UL, 0UL) == 0 ? SLP_OK : SLP_ESYS;
}

#else

int slp_child_subreaper(int on)
{
    (void)on;
    return SLP_EUNSUPPORTED;
}

#endif
