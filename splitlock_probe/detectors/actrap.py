"""Alignment-check trap: one op with EFLAGS.AC set (docs/reference.md §2).

Linux keeps CR0.AM on, so with AC set any misaligned data access at CPL 3
raises #AC, delivered as SIGBUS/BUS_ADRALN; this works on every x86 CPU,
VMs included. It proves misalignment, not a line crossing: no trap proves
the op cannot split; a trap says it is misaligned (a split here or at
another placement).
"""

from __future__ import annotations

from typing import Any

from splitlock_probe import native
from splitlock_probe.detectors.base import Availability, Evidence
from splitlock_probe.detectors.signals import describe, is_alignment_trap, is_general_protection
from splitlock_probe.host.state import HostState

NAME = "actrap"


def availability(host: HostState) -> Availability:
    reason = native.unsupported_reason() or ("" if host.x86 else "not an x86 CPU")
    if reason:
        return Availability(False, reason)
    return Availability(True, "EFLAGS.AC alignment check (#AC -> SIGBUS BUS_ADRALN)")


def interpret(raw: dict[str, Any]) -> Evidence:
    fault = raw.get("fault")
    if not raw["trapped"] or fault is None:
        return Evidence(NAME, "ok", "aligned", {"trapped": False})
    info = describe(fault)
    if is_alignment_trap(fault):
        return Evidence(NAME, "ok", "misaligned", {"trapped": True, **info})
    if is_general_protection(fault):
        return Evidence(
            NAME, "fault", "faulted", {"trapped": True, **info, "cause": "general protection (#GP)"}
        )
    return Evidence(NAME, "fault", None, {"trapped": True, **info, "cause": "unexpected signal"})
