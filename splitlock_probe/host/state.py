"""What the host is: its CPU, the kernel's split-lock mode, whether its log
can be read, and its PMU; all read through paths.root()."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from splitlock_probe.errors import ExitStatus
from splitlock_probe.host import kernel
from splitlock_probe.host.cpu import Cpu, cpu, is_x86
from splitlock_probe.host.kmsg import source
from splitlock_probe.host.kmsg.tally import LogTally
from splitlock_probe.host.perf.state import PmuState, pmu_state


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

    def exit_status(self) -> ExitStatus:
        """`host`'s policy: a host with no x86 locked ops to probe is unsupported."""
        return ExitStatus.OK if self.x86 else ExitStatus.UNSUPPORTED


def state(events: Sequence[str] | None = None) -> HostState:
    """Everything the detectors need to know about this host. `events`: the
    user's --event specs for the hardware counters (UsageError if one is bad)."""
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
