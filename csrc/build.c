/* build.c: what this core is, for `splitlock-probe --version`. */
#include "splitlock.h"

const char *slp_build(void)
{
#if SLP_HAS_X86_64
#define SLP_CORE "x86-64 core"
#else
#define SLP_CORE "portable core (no x86-64 probing)"
#endif
#if defined(__clang__)
    return SLP_CORE ", clang " __clang_version__;
#elif defined(__GNUC__)
    return SLP_CORE ", gcc " __VERSION__;
#else
    return SLP_CORE ", an unknown compiler";
#endif
}
