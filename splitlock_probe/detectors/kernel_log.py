"""Kernel evidence: #AC/#DB lines in the log, and the SIGBUS of fatal mode.

warn / ratelimit: the kernel prints `#AC: <comm>/<tid> took a split_lock trap`
(once per thread) or `#DB: ... bus_lock trap` (ratelimited). Each measurement
runs in a fresh thread, so a line with its thread id proves that measurement
split a line. No line proves nothing: the kernel prints a thread once, drops
lines past 10 per 5 s, and leaves detection off on a core for ~2 jiffies
after a trap.

fatal: no line for user space; the kernel sends SIGBUS (BUS_ADRALN) before the
op runs. That signal arriving while our own EFLAGS.AC check is off is a
split lock; an op that ran unharmed in fatal mode did not split.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from splitlock_probe.detectors.base import Availability, Evidence
from splitlock_probe.detectors.signals import describe, is_alignment_trap
from splitlock_probe.host.kernel import FATAL, OFF, RATELIMIT, UNSUPPORTED, WARN
from splitlock_probe.host.kmsg.messages import TrapEvent
from splitlock_probe.host.kmsg.tally import LogTally
from splitlock_probe.host.state import HostState

NAME = "kmsg"


def availability(host: HostState) -> Availability:
    k = host.kernel
    mode = k.effective_mode
    if mode == UNSUPPORTED:
        return Availability(False, k.mode_source)
    if mode == OFF:
        return Availability(False, "split_lock_detect=off: the kernel does not trap split locks")
    if mode == FATAL:
        return Availability(
            True, "split_lock_detect=fatal: the kernel's SIGBUS (BUS_ADRALN) marks a split lock"
        )
    if not host.log_readable:
        return Availability(False, host.log_reason)
    # ratelimit mode turns #AC off and counts bus locks with #DB instead.
    traps = "#AC split-lock" if k.split_lock_detect and mode == WARN else "#DB bus-lock"
    return Availability(True, f"{traps} lines in the kernel log ({mode}), matched by thread id")


def logs_lines(mode: str) -> bool:
    return mode == WARN or mode.startswith(RATELIMIT)


@dataclass
class ScanLog:
    """What the kernel log said while a scan ran."""

    mode: str
    paced: bool
    pace_reason: str
    tally: LogTally = field(default_factory=LogTally)
    overwritten: int = 0  # records lost before they were read (EPIPE)
    ours: dict[int, list[TrapEvent]] = field(default_factory=dict)  # probe thread id -> lines

    def attribute(self, threads: Mapping[int, str | None]) -> None:
        """File each trap line under the probe thread it names: thread id and name
        must both match (a finished probe's id may be reused by another task)."""
        for event in self.tally.events:
            if event.pid in threads and event.comm == threads[event.pid]:
                self.ours.setdefault(event.pid, []).append(event)

    @property
    def attributed(self) -> int:
        """Trap lines filed under a probe thread."""
        return sum(len(v) for v in self.ours.values())

    @property
    def others(self) -> int:
        """Trap lines of other tasks during the scan."""
        return len(self.tally.events) - self.attributed

    def as_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "paced": self.paced,
            "pace_reason": self.pace_reason,
            "lines": self.tally.lines,
            "attributed": self.attributed,
            "other_tasks": self.others,
            "suppressed": dict(self.tally.suppressed),
            "malformed": self.tally.malformed,
            "overwritten": self.overwritten,
        }


def interpret(
    timing_raw: dict[str, Any] | None,
    tid: int | None,
    log: ScanLog | None,
    mode: str,
    comm: str | None = None,
) -> Evidence:
    if mode == FATAL:
        if timing_raw is None:
            return Evidence(NAME, "ok", None, {"note": "the op ran only under our own AC check"})
        fault = timing_raw.get("fault")
        if fault is not None and is_alignment_trap(fault) and not fault["ac_armed"]:
            return Evidence(
                NAME, "ok", "split", {"source": "SIGBUS (fatal mode)", **describe(fault)}
            )
        if fault is not None:
            return Evidence(NAME, "ok", None, {"source": "signal", **describe(fault)})
        return Evidence(NAME, "ok", "clean", {"source": "no SIGBUS (fatal mode)"})
    if log is None or tid is None:
        return Evidence(NAME, "unavailable", None, {"note": "the log was not read"})
    lines = log.ours.get(tid, [])
    if lines:
        return Evidence(
            NAME,
            "ok",
            "split",
            {"source": "log", "tid": tid, "comm": comm, "lines": [e.as_dict() for e in lines]},
        )
    note = "no line for this thread: not proof of a clean op"
    if any(log.tally.suppressed.values()):
        note += " (the kernel suppressed lines during the scan)"
    return Evidence(NAME, "ok", None, {"source": "log", "tid": tid, "comm": comm, "note": note})
