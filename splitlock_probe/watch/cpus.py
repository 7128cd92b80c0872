"""The PMU's split-lock or bus-lock event counted on every CPU, whoever runs
there: one counter group per CPU and core PMU (pid -1, cpu N). That needs
perf_event_paranoid <= 0, or root / CAP_PERFMON; kernel mode counts too.
A hybrid part's cpu_core PMU counts only on P-cores and cpu_atom only on
E-cores: a CPU where a PMU does not open is skipped, not an error."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from splitlock_probe.host.perf.counters import CounterGroup, by_pmu
from splitlock_probe.host.perf.resolve import Counter
from splitlock_probe.host.perf.state import explain
from splitlock_probe.native import PerfOpenError


@dataclass
class CpuCounters:
    groups: dict[int, list[CounterGroup]] = field(default_factory=dict)  # cpu -> groups
    error: str | None = None  # why nothing could be counted
    kinds: dict[str, str] = field(default_factory=dict)  # event name -> split_lock | bus_lock

    @classmethod
    def open(cls, counters: Sequence[Counter], cpus: Sequence[int]) -> CpuCounters:
        out = cls(kinds={c.name: c.kind for c in counters})
        last_errno = 0
        for cpu in cpus:
            for members in by_pmu(counters):
                try:
                    group = CounterGroup(members, pid=-1, cpu=cpu, exclude_kernel=False)
                except PerfOpenError as exc:
                    last_errno = exc.errno
                    continue
                group.enable()
                out.groups.setdefault(cpu, []).append(group)
        if not out.groups:
            out.error = explain(last_errno) if last_errno else "no counters to open"
        return out

    def read(self) -> dict[int, dict[str, int | None]]:
        """Counts since the start, per CPU and event."""
        counts: dict[int, dict[str, int | None]] = {}
        for cpu, groups in self.groups.items():
            for group in groups:
                counts.setdefault(cpu, {}).update(group.read().counts)
        return counts

    def close(self) -> None:
        for groups in self.groups.values():
            for group in groups:
                group.close()
        self.groups = {}
