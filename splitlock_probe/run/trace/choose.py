"""Which tracer to use for a command: the preloaded agent where the dynamic
loader will load it (about 4x cheaper per trap), ptrace where it will not."""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from splitlock_probe.detectors.base import Availability

AGENT, PTRACE, AUTO = "agent", "ptrace", "auto"
CHOICES = (AUTO, AGENT, PTRACE)
# What traps: a breakpoint at each locked instruction of each loaded image
# (the agent only), or the alignment check on every misaligned access.
BREAKPOINT, ALIGNMENT = "breakpoint", "alignment"
METHODS = (AUTO, BREAKPOINT, ALIGNMENT)


def choose_method(mechanism: str, wanted: str) -> str:
    """The agent traps locked instructions unless asked otherwise; ptrace traps
    misaligned accesses (its breakpoints would stop every thread at each one)."""
    if wanted == AUTO:
        return BREAKPOINT if mechanism == AGENT else ALIGNMENT
    if wanted == BREAKPOINT and mechanism != AGENT:
        from splitlock_probe.errors import UsageError

        raise UsageError(
            "--method breakpoint needs the agent (--trace=agent); ptrace traps alignment"
        )
    return wanted


def availability(wanted: str) -> Availability:
    """Alignment traps exist on every x86-64 CPU, VMs included."""
    from splitlock_probe import native
    from splitlock_probe.detectors.base import Availability
    from splitlock_probe.native.trace import agent_library

    reason = native.unsupported_reason()
    if reason:
        return Availability(False, reason)
    if wanted == AGENT and agent_library() is None:
        return Availability(False, "the trace agent was not built (reinstall); use ptrace")
    return Availability(
        True,
        "breakpoints at the locked instructions of every image the command loads (the "
        "agent), or EFLAGS.AC alignment traps in every thread (--method alignment, ptrace): "
        "locked ops with a misaligned operand, split or not",
    )


def _is_dynamic_elf(path: str) -> bool | None:
    """True: has a program interpreter; False: static; None: not an ELF."""
    try:
        from elftools.common.exceptions import ELFError
        from elftools.elf.elffile import ELFFile

        with open(path, "rb") as f:
            if f.read(4) != b"\x7fELF":
                return None
            f.seek(0)
            elf = ELFFile(f)
            return any(s["p_type"] == "PT_INTERP" for s in elf.iter_segments())
    except (OSError, ELFError, ValueError):
        return None


def clears_environment(argv: Sequence[str]) -> bool:
    """`env -i PROG` (or -, --ignore-environment): PROG starts without LD_PRELOAD."""
    if not argv or os.path.basename(argv[0]) != "env":
        return False
    for arg in argv[1:]:
        if arg in ("-i", "-", "--ignore-environment") or (
            arg.startswith("-") and not arg.startswith("--") and "i" in arg[1:]
        ):
            return True
        if not arg.startswith("-") and "=" not in arg:
            return False  # the program: options after it are its own
    return False


def choose(argv: Sequence[str], wanted: str, agent_built: bool) -> tuple[str, str]:
    """(mechanism, why)."""
    if wanted != AUTO:
        return wanted, f"--trace {wanted}"
    if not agent_built:
        return PTRACE, "the agent library was not built"
    if clears_environment(argv):
        return PTRACE, "env clears the environment: the agent could not follow the program"
    path = shutil.which(argv[0]) if argv else None
    if path is None:
        return AGENT, "the command was not found on PATH"
    mode = os.stat(path).st_mode
    if mode & (stat.S_ISUID | stat.S_ISGID):
        return PTRACE, f"{path} is set-user-ID or set-group-ID: the loader ignores LD_PRELOAD"
    dynamic = _is_dynamic_elf(path)
    if dynamic is False:
        return PTRACE, f"{path} is statically linked: nothing can be preloaded into it"
    if dynamic is None:
        return AGENT, f"{path} is a script: its interpreter gets the agent"
    return AGENT, f"{path} is dynamically linked"
