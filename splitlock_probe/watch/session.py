"""`watch`: follow the kernel log (and the PMU, where it counts) for the whole
host, and hand out a snapshot each interval.

A Snapshot is built once per interval and never changed, so the live table,
the JSON lines, the Prometheus textfile and the /metrics server (another
thread) all see the same numbers without sharing mutable state.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any

from splitlock_probe.detectors import Availability
from splitlock_probe.detectors.availability import detector_availability
from splitlock_probe.host import procinfo
from splitlock_probe.host.cpus import online_cpus
from splitlock_probe.host.kernel import KernelState
from splitlock_probe.host.kmsg.messages import KINDS, TrapEvent
from splitlock_probe.host.kmsg.source import KernelLog
from splitlock_probe.host.kmsg.tally import LogTally
from splitlock_probe.host.state import HostState
from splitlock_probe.watch.cpus import CpuCounters
from splitlock_probe.watch.table import DEFAULT_LIMIT, BoundedCounts, Row

WATCH_DETECTORS = ("kmsg", "perf")  # what a whole-host watch can see


@dataclass(frozen=True)
class WatchRequest:
    interval: float = 2.0
    since_boot: bool = False
    limit: int = DEFAULT_LIMIT
    top: int = 20


@dataclass(frozen=True)
class Snapshot:
    taken: float  # time.time()
    watching_s: float
    intervals: int
    source: str
    since_boot: bool
    kernel: KernelState
    banner_mode: str | None
    detectors: dict[str, Availability]
    rows: tuple[Row, ...]  # the busiest processes, copies
    comms: tuple[tuple[str, dict[str, int]], ...]
    totals: dict[str, int]
    new: dict[str, int]  # events in the last interval
    suppressed: dict[str, int]
    lines: int
    malformed: int
    overwritten: int
    processes: int  # rows kept now
    aged_out: int
    limit: int
    pmu: dict[int, dict[str, int | None]] | None  # cpu -> event -> count since start
    pmu_kinds: dict[str, str]
    pmu_error: str | None
    lock_cost: dict[str, Any] | None = None  # host.cost.as_dict of the last measurement
    lock_cost_note: str | None = None


@dataclass
class Watch:
    request: WatchRequest
    host: HostState
    detectors: dict[str, Availability]
    log: KernelLog
    cpus: CpuCounters | None = None
    counts: BoundedCounts = field(init=False)
    tally: LogTally = field(default_factory=lambda: LogTally(keep_events=False, per_process=False))
    new: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    intervals: int = 0
    started: float = field(default_factory=time.monotonic)
    lock_cost: dict[str, Any] | None = None
    lock_cost_note: str | None = None
    vms: dict[tuple[str, int], str | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.counts = BoundedCounts(self.request.limit)
        if not self.request.since_boot:
            self.log.seek_end()

    @classmethod
    def open(cls, request: WatchRequest, host: HostState) -> Watch:
        """The live log (KernelLogUnreadable: exit 4, with the reason) and, where the
        PMU counts, a counter group on every online CPU."""
        everything = detector_availability(host)
        available = {n: everything[n] for n in WATCH_DETECTORS}
        log = KernelLog()
        if host.pmu.available:
            cpus = CpuCounters.open(host.pmu.counters, online_cpus())
        else:
            cpus = CpuCounters(error=host.pmu.reason)
        return cls(request, host, available, log, cpus)

    def feed(self, raw: str) -> TrapEvent | None:
        """One line: the tally counts lines, banners, suppressed and malformed
        ones; trap events go to the bounded per-process table."""
        event = self.tally.feed_line(raw)
        if event is not None:
            self.counts.add(event, time.monotonic())
            self.new[event.kind] += 1
        return event

    def read_log(self, final: bool = False) -> None:
        for raw in self.log.read_available(final=final):
            self.feed(raw)

    def interval(self) -> None:
        """Read the log as lines come, for one interval."""
        deadline = time.monotonic() + self.request.interval
        while True:
            self.read_log(final=False)
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self.log.wait(left)

    def snapshot(self, advance: bool = True) -> Snapshot:
        """The numbers now. `advance`: this ends an interval, and the next
        one's "new" counts start from zero."""
        if advance:
            self.intervals += 1
        snap = Snapshot(
            taken=time.time(),
            watching_s=time.monotonic() - self.started,
            intervals=self.intervals,
            source=str(self.log.path),
            since_boot=self.request.since_boot,
            kernel=self.host.kernel,
            banner_mode=self.tally.mode,
            detectors=self.detectors,
            rows=tuple(
                dataclasses.replace(r, vm=self._vm(r) if r.guest else None)
                for r in self.counts.top(self.request.top)
            ),
            comms=tuple((c, dict(n)) for c, n in self.counts.comm_counts()),
            totals=dict(self.counts.totals),
            new=dict(self.new),
            suppressed=dict(self.tally.suppressed),
            lines=self.tally.lines,
            malformed=self.tally.malformed,
            overwritten=self.log.overwritten,
            processes=len(self.counts.rows),
            aged_out=self.counts.aged_out,
            limit=self.request.limit,
            pmu=self.cpus.read() if self.cpus and self.cpus.groups else None,
            pmu_kinds=dict(self.cpus.kinds) if self.cpus else {},
            pmu_error=self.cpus.error if self.cpus else None,
            lock_cost=self.lock_cost,
            lock_cost_note=self.lock_cost_note,
        )
        if advance:
            self.counts.start_interval()
            self.new = dict.fromkeys(KINDS, 0)
        return snap

    def _vm(self, row: Row) -> str | None:
        """The VM behind a vCPU thread, looked up once while its monitor lives."""
        key = (row.comm, row.pid)
        if key not in self.vms:
            task = procinfo.lookup(row.pid, row.comm)
            self.vms[key] = task.vm if task is not None else None
            if len(self.vms) > self.request.limit:  # bounded like the table
                self.vms.pop(next(iter(self.vms)))
        return self.vms[key]

    def measure_cost(self) -> None:
        """What a split lock costs here (the quick measurement, ~0.05 s): at the
        start, and again on demand (SIGUSR1), between intervals."""
        from splitlock_probe.host.cost import as_dict, quick_here

        cost, self.lock_cost_note = quick_here()
        self.lock_cost = None if cost is None else as_dict(cost)

    def close(self) -> None:
        if self.cpus is not None:
            self.cpus.close()
        self.log.close()
