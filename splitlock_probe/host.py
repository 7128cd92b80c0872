"""What the host is: CPU identity and flags, the kernel's split-lock mode,
and whether its log can be read; all read through paths.root()."""

from __future__ import annotations

import platform
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from splitlock_probe import kernel
from splitlock_probe.paths import read_text

if TYPE_CHECKING:
    from splitlock_probe.perf.state import PmuState


@dataclass(frozen=True)
class Cpu:
    vendor: str | None
    family: int | None
    model: int | None
    model_name: str | None
    flags: frozenset[str] = field(default_factory=frozenset)
    read: bool = True  # False: there was no /proc/cpuinfo to read

    @property
    def hypervisor(self) -> bool:
        return "hypervisor" in self.flags

    def as_dict(self) -> dict[str, Any]:
        return {
            "vendor": self.vendor,
            "family": self.family,
            "model": self.model,
            "model_name": self.model_name,
            "hypervisor": self.hypervisor,
        }


def parse_cpuinfo(text: str) -> Cpu:
    """The first processor block of /proc/cpuinfo (all cores match on x86)."""
    info: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if info:
                break
            continue
        key, sep, value = line.partition(":")
        if sep:
            info.setdefault(key.strip(), value.strip())

    def number(key: str) -> int | None:
        try:
            return int(info[key], 0)
        except (KeyError, ValueError):
            return None

    return Cpu(
        vendor=info.get("vendor_id"),
        family=number("cpu family"),
        model=number("model"),
        model_name=info.get("model name"),
        flags=frozenset(info.get("flags", "").split()),
    )


def cpu() -> Cpu:
    text = read_text("/proc/cpuinfo")
    if text is None:
        return Cpu(None, None, None, None, read=False)
    return parse_cpuinfo(text)


X86_MACHINES = frozenset({"x86_64", "amd64", "i386", "i486", "i586", "i686"})


def machine() -> str:
    return platform.machine()


@dataclass(frozen=True)
class HostState:
    cpu: Cpu
    kernel: kernel.KernelState
    log_readable: bool
    log_reason: str  # why the live log can or cannot be read
    pmu: PmuState

    @property
    def x86(self) -> bool:
        return is_x86(self.cpu)


def is_x86(c: Cpu) -> bool:
    """x86 cpuinfo has vendor_id, so a recorded tree answers for its own host;
    without a cpuinfo to read, the running machine answers."""
    if c.read:
        return c.vendor is not None
    return machine().lower() in X86_MACHINES


def state(events: Sequence[str] | None = None) -> HostState:
    """Everything the detectors need to know about this host. `events`: the
    user's --event specs for the hardware counters (UsageError if one is bad)."""
    from splitlock_probe.kmsg import source
    from splitlock_probe.kmsg.tally import LogTally
    from splitlock_probe.perf.state import pmu_state

    c = cpu()
    banner_mode: str | None = None
    try:
        with source.KernelLog() as log:
            tally = LogTally(keep_events=False)
            tally.feed(log.read_available())
            banner_mode = tally.mode
        readable, reason = True, f"{log.path} is readable"
    except source.KernelLogUnreadable as exc:
        readable, reason = False, str(exc)
    k = kernel.read(c.flags, banner_mode, is_x86(c))
    return HostState(c, k, readable, reason, pmu_state(c, k.perf_event_paranoid, events))
