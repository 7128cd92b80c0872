"""Per-process trap counts that stay within a fixed size however long a watch
runs: past the limit, the process seen longest ago is aged out and its counts
move to an "aged out" total, so totals stay true while the table stays small."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from splitlock_probe.host.kmsg.messages import KINDS, SPLIT_LOCK, TrapEvent

DEFAULT_LIMIT = 200  # processes (comm, tid) kept; also the bound on per-comm metric series
OTHER = "[aged out]"  # the comm label that aged-out counts are kept under


@dataclass
class Row:
    comm: str
    pid: int
    guest: bool
    split_lock: int = 0
    bus_lock: int = 0
    new: int = 0  # events since the last interval
    last_seen: float = 0.0  # monotonic seconds
    last_ip: int = 0
    vm: str | None = None  # a guest's vCPU thread: the VM its monitor names

    @property
    def total(self) -> int:
        return self.split_lock + self.bus_lock


@dataclass
class BoundedCounts:
    limit: int = DEFAULT_LIMIT
    rows: OrderedDict[tuple[str, int], Row] = field(default_factory=OrderedDict)
    by_comm: OrderedDict[str, dict[str, int]] = field(default_factory=OrderedDict)
    aged_out: int = 0  # rows dropped
    aged_out_comms: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    totals: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))

    def add(self, event: TrapEvent, now: float) -> None:
        key = (event.comm, event.pid)
        row = self.rows.pop(key, None) or Row(event.comm, event.pid, event.guest)
        if event.kind == SPLIT_LOCK:
            row.split_lock += 1
        else:
            row.bus_lock += 1
        row.new += 1
        row.last_seen = now
        row.last_ip = event.ip
        self.rows[key] = row  # most recently seen last
        self.totals[event.kind] += 1
        counts = self.by_comm.pop(event.comm, None) or dict.fromkeys(KINDS, 0)
        counts[event.kind] += 1
        self.by_comm[event.comm] = counts
        self._bound()

    def _bound(self) -> None:
        while len(self.rows) > self.limit:
            self.rows.popitem(last=False)
            self.aged_out += 1
        while len(self.by_comm) > self.limit:
            _, counts = self.by_comm.popitem(last=False)
            for kind in KINDS:
                self.aged_out_comms[kind] += counts[kind]

    def comm_counts(self) -> list[tuple[str, dict[str, int]]]:
        """Counts per comm, with the aged-out ones under OTHER: at most limit + 1."""
        out = list(self.by_comm.items())
        if any(self.aged_out_comms.values()):
            out.append((OTHER, dict(self.aged_out_comms)))
        return out

    def start_interval(self) -> None:
        for row in self.rows.values():
            row.new = 0

    def top(self, n: int) -> list[Row]:
        """Busiest first; among equals, the most recently seen."""
        rows = sorted(self.rows.values(), key=lambda r: (-r.new, -r.total, -r.last_seen))
        return rows[:n]
