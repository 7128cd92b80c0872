"""Counting what a kernel log says: events, per-process counts, suppressed
lines, the mode the boot banner announced, and lines that did not parse.

Memory stays bounded however long the log: at most MAX_EVENTS events are
kept for the document (the rest counted), at most MAX_PROCESSES processes
(the one seen longest ago ages out, its counts staying in the totals), and
at most MAX_SITES trap addresses per process (the rest counted together)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from splitlock_probe.host.kmsg.lines import unwrap
from splitlock_probe.host.kmsg.messages import (
    BUS_LOCK,
    KINDS,
    SPLIT_LOCK,
    Banner,
    Malformed,
    Suppressed,
    TrapEvent,
    classify,
)


@dataclass
class ProcessCount:
    comm: str
    pid: int
    guest: bool
    split_lock: int = 0
    bus_lock: int = 0
    ips: dict[int, int] = field(default_factory=dict)  # trap address -> count
    other_ips: int = 0  # traps at addresses beyond MAX_SITES

    @property
    def total(self) -> int:
        return self.split_lock + self.bus_lock

    def as_dict(self) -> dict[str, Any]:
        return {
            "comm": self.comm,
            "pid": self.pid,
            "guest": self.guest,
            SPLIT_LOCK: self.split_lock,
            BUS_LOCK: self.bus_lock,
        }


MAX_EVENTS = 20_000  # beyond it, counted: a document of 20,000 events is ~5 MB
MAX_PROCESSES = 10_000
MAX_SITES = 64


@dataclass
class LogTally:
    events: list[TrapEvent] = field(default_factory=list)
    processes: OrderedDict[tuple[str, int], ProcessCount] = field(default_factory=OrderedDict)
    totals: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    events_dropped: int = 0  # events beyond MAX_EVENTS: counted, not kept
    processes_aged_out: int = 0
    suppressed: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    banner: Banner | None = None  # the last boot banner seen
    lines: int = 0
    malformed: int = 0
    recognized: int = 0  # lines in a kernel-log wrapper, or saying something we know
    keep_events: bool = True  # False: count only (memory stays bounded)
    per_process: bool = True  # False: the caller keeps its own (bounded) per-process counts

    def feed_line(self, raw: str) -> TrapEvent | None:
        """Take one raw line; returns the trap event it carried, if any."""
        line = unwrap(raw)
        if line is None:
            return None
        self.lines += 1
        msg = classify(line)
        if line.wrapped or msg is not None:
            self.recognized += 1
        if isinstance(msg, TrapEvent):
            self.add(msg)
            return msg
        if isinstance(msg, Suppressed):
            self.suppressed[msg.kind] += msg.count
        elif isinstance(msg, Banner):
            self.banner = msg
        elif isinstance(msg, Malformed):
            self.malformed += 1
        return None

    def feed(self, raw_lines: Iterable[str]) -> None:
        for raw in raw_lines:
            self.feed_line(raw)

    def add(self, event: TrapEvent) -> None:
        self.totals[event.kind] += 1
        if self.keep_events:
            if len(self.events) < MAX_EVENTS:
                self.events.append(event)
            else:
                self.events_dropped += 1
        if not self.per_process:
            return
        key = (event.comm, event.pid)
        proc = self.processes.pop(key, None)
        if proc is None:
            proc = ProcessCount(event.comm, event.pid, event.guest)
        self.processes[key] = proc  # the most recently seen last
        if len(self.processes) > MAX_PROCESSES:
            self.processes.popitem(last=False)
            self.processes_aged_out += 1
        if event.kind == SPLIT_LOCK:
            proc.split_lock += 1
        else:
            proc.bus_lock += 1
        if event.ip in proc.ips or len(proc.ips) < MAX_SITES:
            proc.ips[event.ip] = proc.ips.get(event.ip, 0) + 1
        else:
            proc.other_ips += 1

    @property
    def mode(self) -> str | None:
        return self.banner.mode if self.banner else None

    def ranked(self) -> list[ProcessCount]:
        """Processes, most events first."""
        return sorted(self.processes.values(), key=lambda p: (-p.total, p.comm, p.pid))

    def counts(self) -> dict[str, int]:
        """Every event read, including those of processes that aged out."""
        return dict(self.totals)
