"""Open, enable, read and close a group of counters on one PMU.

A group is read in one system call, so its counts cover the same instants.
Counters of different PMUs (cpu_core and cpu_atom) cannot share a group:
open one group per PMU.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType

from splitlock_probe.host.perf.resolve import Counter
from splitlock_probe.native import perf as native_perf


@dataclass(frozen=True)
class Reading:
    counts: dict[str, int | None]  # None: the group never ran (multiplexed out)
    enabled_ns: int
    running_ns: int

    @property
    def scaled(self) -> bool:
        return 0 < self.running_ns < self.enabled_ns


class CounterGroup:
    def __init__(
        self,
        counters: Sequence[Counter],
        pid: int = 0,
        cpu: int = -1,
        exclude_kernel: bool = True,
        inherit: bool = False,
    ) -> None:
        if not counters:
            raise ValueError("a group needs at least one counter")
        if len({c.type for c in counters}) != 1:
            raise ValueError("counters of different PMUs cannot share a group")
        if len(counters) > native_perf.max_group():
            raise ValueError(f"at most {native_perf.max_group()} counters in a group")
        self.counters = tuple(counters)
        self._fds: list[int] = []
        try:
            for c in self.counters:
                leader = self._fds[0] if self._fds else -1
                fd = native_perf.open_event(
                    c.type,
                    c.config,
                    c.config1,
                    c.config2,
                    pid,
                    cpu,
                    leader,
                    exclude_kernel,
                    inherit,
                )
                self._fds.append(fd)
        except BaseException:
            self.close()
            raise

    def enable(self) -> None:
        native_perf.control(self._fds[0], "reset")
        native_perf.control(self._fds[0], "enable")

    def disable(self) -> None:
        native_perf.control(self._fds[0], "disable")

    def read(self) -> Reading:
        v = native_perf.read_group(self._fds[0])
        counts: dict[str, int | None] = {}
        for c, raw in zip(self.counters, v.values, strict=True):
            if v.time_running == 0:
                counts[c.name] = None if v.time_enabled else raw
            elif v.time_running < v.time_enabled:
                counts[c.name] = round(raw * v.time_enabled / v.time_running)
            else:
                counts[c.name] = raw
        return Reading(counts, v.time_enabled, v.time_running)

    def close(self) -> None:
        for fd in reversed(self._fds):
            native_perf.close(fd)
        self._fds = []

    def __enter__(self) -> CounterGroup:
        return self

    def __exit__(
        self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def by_pmu(counters: Sequence[Counter]) -> list[list[Counter]]:
    """Counters split into groups that can each be opened together."""
    groups: dict[int, list[Counter]] = {}
    for c in counters:
        groups.setdefault(c.type, []).append(c)
    return list(groups.values())


def open_groups(
    counters: Sequence[Counter],
    pid: int = 0,
    cpu: int = -1,
    exclude_kernel: bool = True,
    inherit: bool = False,
) -> list[CounterGroup]:
    """One open group per PMU, all or none: if one fails to open, those already
    open are closed and its PerfOpenError is raised (errno says why)."""
    groups: list[CounterGroup] = []
    try:
        for members in by_pmu(counters):
            groups.append(CounterGroup(members, pid, cpu, exclude_kernel, inherit))
    except BaseException:
        for g in groups:
            g.close()
        raise
    return groups
