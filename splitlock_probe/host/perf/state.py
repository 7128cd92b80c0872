"""Can this host count split locks and bus locks, with which events, and if
not, what a person can do about it."""

from __future__ import annotations

import errno
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from splitlock_probe.errors import ProbeError
from splitlock_probe.host.cpu import Cpu
from splitlock_probe.host.kernel import read_int
from splitlock_probe.host.paths import root
from splitlock_probe.host.perf.resolve import Counter, for_cpu, parse_spec, split_specs
from splitlock_probe.host.perf.sysfs import DEVICES, core_pmus, discover


@dataclass(frozen=True)
class PmuState:
    available: bool
    reason: str
    counters: tuple[Counter, ...] = ()
    notes: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "available": self.available,
            "reason": self.reason,
            "events": [
                {"name": c.name, "kind": c.kind, "pmu": c.pmu, "type": c.type, "config": c.config}
                for c in self.counters
            ],
            "notes": list(self.notes),
        }


def explain(err: int, paranoid: int | None = None) -> str:
    """Why perf_event_open failed, said so a person can act on it."""
    if err in (errno.EACCES, errno.EPERM):
        if paranoid is None:
            paranoid = read_int("/proc/sys/kernel/perf_event_paranoid")
        return (
            f"perf_event_paranoid={paranoid}: not allowed to count ({errno.errorcode[err]}); "
            "`sysctl kernel.perf_event_paranoid=2` lets users count their own threads "
            "(or run as root, or with CAP_PERFMON)"
        )
    if err == errno.ENOENT:
        return "the PMU does not know this event (ENOENT): this CPU uses another one; pass --event"
    if err == errno.EOPNOTSUPP:
        return (
            "the PMU cannot count this event here (EOPNOTSUPP): virtual PMUs in VMs often lack it"
        )
    if err == errno.ENODEV:
        return "no such PMU on this host (ENODEV)"
    if err == errno.EINVAL:
        return "the kernel rejected the event's encoding (EINVAL)"
    return f"perf_event_open failed: {os.strerror(err)}"


def _try_open(counters: Sequence[Counter], paranoid: int | None) -> str | None:
    """None when every counter opens here, else why not."""
    from splitlock_probe import native
    from splitlock_probe.native import perf as native_perf

    for c in counters:
        try:
            fd = native_perf.open_event(c.type, c.config, c.config1, c.config2)
        except native.PerfOpenError as exc:
            return f"{explain(exc.errno, paranoid)} [{c.name} on {c.pmu}]"
        except ProbeError as exc:
            return str(exc)
        native_perf.close(fd)
    return None


def pmu_state(cpu: Cpu, paranoid: int | None, events: Sequence[str] | None = None) -> PmuState:
    """What counting can do here. `events`: the user's --event specs, which replace
    the table (UsageError when one names nothing)."""
    pmus = discover()
    notes: tuple[str, ...] = ()
    if events:
        specs = split_specs(events)
        counters = tuple(c for spec in specs for c in parse_spec(spec, cpu, pmus))
    else:
        if not core_pmus(pmus):
            why = f"no core PMU ({DEVICES}/cpu is missing)"
            if cpu.hypervisor:
                why += ": this virtual machine has no virtual PMU"
            return PmuState(False, why)
        res = for_cpu(cpu, pmus)
        counters, notes = res.counters, res.notes
        if not counters:
            ident = cpu.identity or ""
            return PmuState(
                False,
                f"no known split-lock or bus-lock event for {cpu.vendor} {ident}; "
                "pass --event (r10f4, or cpu/event=0x..,umask=0x../)",
                (),
                notes,
            )
    if str(root()) != "/":
        # Counters count the live CPU, not the recorded one: resolve, never pretend to count.
        why = "recorded host (SPLITLOCK_PROBE_ROOT): events resolved from its sysfs; counting "
        why += "works only on the live host"
        if paranoid is not None and paranoid > 2:
            why += f", where perf_event_paranoid={paranoid} refuses unprivileged counting"
        return PmuState(False, why, counters, notes)
    failure = _try_open(counters, paranoid)
    if failure:
        return PmuState(False, failure, counters, notes)
    names = ", ".join(dict.fromkeys(f"{c.name} ({c.pmu})" for c in counters))
    return PmuState(True, f"counting {names} per probe thread", counters, notes)
