"""What `run` was asked, and what it found: the request, each thread the
kernel named, the command's end, and the verdict (exit status) over them."""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass, field
from typing import Any

from splitlock_probe.detectors import Availability
from splitlock_probe.errors import ExitStatus
from splitlock_probe.host.kernel import FATAL
from splitlock_probe.host.kmsg.messages import BUS_LOCK, SPLIT_LOCK, TrapEvent
from splitlock_probe.host.kmsg.tally import LogTally
from splitlock_probe.host.state import HostState
from splitlock_probe.run.trace.sites import TraceResult

POLL_S = 0.01  # how often the log and the tree are looked at while the command runs


@dataclass(frozen=True)
class RunRequest:
    argv: tuple[str, ...]
    detectors: tuple[str, ...]  # the ones that will be used (available and wanted)
    fail_on: str = "none"  # none | split | hazard
    poll_s: float = POLL_S
    trace: str | None = None  # auto | agent | ptrace: trace alignment traps
    trace_method: str = "auto"  # auto | breakpoint | alignment (run/trace/choose.py)
    site_cache: str | None = None  # where breakpoint mode keeps site tables across runs
    exit_with_command: bool = False  # stop following when the command exits, not its tree


@dataclass
class ThreadRecord:
    """One thread of the command that the kernel named in a trap line."""

    tid: int
    comm: str
    tgid: int | None
    split_lock: int = 0
    bus_lock: int = 0
    sites: dict[int, list[Any]] = field(default_factory=dict)  # ip -> [count, location]

    def add(self, event: TrapEvent, location: str | None) -> None:
        if event.kind == SPLIT_LOCK:
            self.split_lock += 1
        else:
            self.bus_lock += 1
        site = self.sites.setdefault(event.ip, [0, None])
        site[0] += 1
        site[1] = site[1] or location


@dataclass
class Exit:
    code: int | None  # exit status, or None when a signal ended it
    signal: int | None

    @classmethod
    def from_status(cls, status: int) -> Exit:
        if os.WIFSIGNALED(status):
            return cls(None, os.WTERMSIG(status))
        return cls(os.waitstatus_to_exitcode(status), None)

    @property
    def status(self) -> int:
        """As a shell reports it: the code, or 128 + the signal."""
        return self.code if self.code is not None else 128 + (self.signal or 0)

    @property
    def failed(self) -> bool:
        return self.status != 0

    def describe(self) -> str:
        if self.signal is not None:
            return f"killed by {signal.Signals(self.signal).name}"
        return f"exit {self.code}"


@dataclass
class RunResult:
    request: RunRequest
    host: HostState
    detectors: dict[str, Availability]
    started: str
    pid: int | None = None
    exit: Exit | None = None
    elapsed_s: float = 0.0
    threads: dict[int, ThreadRecord] = field(default_factory=dict)
    tally: LogTally = field(default_factory=LogTally)  # every trap line while it ran
    others: int = 0  # trap lines of tasks outside the command's tree
    overwritten: int = 0
    tracking: str = ""  # how the tree's threads were known
    tracking_note: str | None = None  # why the better way could not be used
    tracking_lost: int = 0  # task records the kernel dropped
    tasks_seen: int = 0
    processes_seen: int = 0
    counters: dict[str, int | None] = field(default_factory=dict)
    counter_kinds: dict[str, str] = field(default_factory=dict)  # name -> split_lock | bus_lock
    counters_scaled: bool = False
    counter_error: str | None = None
    rusage: dict[str, float] = field(default_factory=dict)
    forwarded: list[str] = field(default_factory=list)
    interrupted: bool = False  # the terminal (or someone) sent us SIGINT/SIGTERM
    descendants_left: int = 0  # of the command's tree, still alive when we stopped
    traced_tasks_left: int = 0  # ptrace: tasks of the tree still traced
    trace: TraceResult | None = None  # run --trace: the alignment-trap sites
    lock_cost: Any = None  # host.cost.Cost: measured after a traced run that split-locked

    @property
    def trap_lines(self) -> dict[str, int]:
        return {
            SPLIT_LOCK: sum(t.split_lock for t in self.threads.values()),
            BUS_LOCK: sum(t.bus_lock for t in self.threads.values()),
        }

    @property
    def thread_count(self) -> int:
        """Threads seen split-locking: named by the kernel, or traced."""
        traced = self.trace.threads if self.trace is not None else set()
        return len(set(self.threads) | traced)

    @property
    def counted(self) -> int | None:
        """Split or bus locks the hardware counted in the tree (None: not counted)."""
        values = [
            v
            for name, v in self.counters.items()
            if self.counter_kinds.get(name) in (SPLIT_LOCK, BUS_LOCK) and v is not None
        ]
        return sum(values) if values else None

    @property
    def killed_by_agent_trap(self) -> int | None:
        """The signal of the agent's own trap (SIGBUS for the alignment check,
        SIGTRAP for a breakpoint) when the command died of it: a program that
        blocks it or takes its handler with raw system calls (past the C
        library the agent wraps) dies of the agent's trap."""
        if self.trace is None or self.trace.mechanism != "agent" or self.exit is None:
            return None
        ours = signal.SIGBUS if self.trace.method == "alignment" else signal.SIGTRAP
        return int(ours) if self.exit.signal == ours else None

    @property
    def fatal_sigbus(self) -> bool:
        """Fatal mode, and the command died of SIGBUS: the kernel's split-lock trap
        (or a real bus error; the mode cannot tell them apart)."""
        return (
            self.host.kernel.effective_mode == FATAL
            and self.exit is not None
            and self.exit.signal == signal.SIGBUS
        )

    @property
    def split(self) -> bool:
        """Did any detector see a split lock (or a bus lock) in the tree?"""
        traced = bool(self.trace and self.trace.split)
        return bool(sum(self.trap_lines.values()) or self.counted or self.fatal_sigbus or traced)

    @property
    def hazard(self) -> bool:
        """Did the tracer see a locked op misaligned inside a line (splits elsewhere)?"""
        return bool(self.trace and self.trace.hazard)

    @property
    def penalty_ms(self) -> float | None:
        """The least the 10 ms misery sleeps cost the command: one per #AC line
        (each thread is named once, but sleeps on every trapped split lock)."""
        if not self.host.kernel.misery:
            return None
        return 10.0 * self.trap_lines[SPLIT_LOCK]

    def exit_status(self) -> int:
        """`run`'s policy: the command's own status when it failed; else 1 under
        --fail-on split (or hazard) when one was seen; else 4 under --fail-on
        when no detector could see split locks, or --trace missed part of the
        tree; else 0."""
        if self.exit is not None and self.exit.failed:
            return self.exit.status
        fail_on = self.request.fail_on
        if fail_on in ("split", "hazard") and self.split:
            return int(ExitStatus.FINDING)
        if fail_on == "hazard" and self.hazard:
            return int(ExitStatus.FINDING)
        if fail_on != "none" and (self.blind or self.log_gaps() or not self.request.detectors):
            return int(ExitStatus.UNSUPPORTED)  # a gate that did not see the tree fails closed
        return int(ExitStatus.OK)

    def log_gaps(self) -> list[str]:
        """Where the kernel log, the only detector watching, lost lines while the
        command ran: records overwritten before we read them, lines the kernel's
        ratelimit suppressed (each a split or bus lock somewhere on the host).
        The tracer and hardware counters do not depend on the log."""
        if self.request.detectors != ("kmsg",) or self.trace is not None:
            return []
        out = []
        if self.overwritten:
            out.append(f"{self.overwritten:,} kernel log records were overwritten")
        lost = self.tally.suppressed[SPLIT_LOCK] + self.tally.suppressed[BUS_LOCK]
        if lost:
            out.append(f"the kernel suppressed {lost:,} trap lines")
        return out

    @property
    def blind(self) -> bool:
        """The tracer is known to have missed part of the tree, or its records
        cannot vouch for a clean result (TraceResult.gaps). (Unknown, where the
        task records were refused, is said in a note: failing every such gate would
        fail every agent-traced run in a container that forbids perf.)"""
        return self.trace is not None and (bool(self.trace.untraced) or bool(self.trace.gaps()))


@dataclass(frozen=True)
class Site:
    """Where in the code split locks were trapped, over every thread."""

    ip: int
    location: str | None  # 'lib.so+0x..', None when no mapping was known
    count: int
    threads: tuple[tuple[int, str], ...]  # (tid, comm)

    @property
    def name(self) -> str:
        return self.location or f"{self.ip:#x}"


def sites(result: RunResult) -> list[Site]:
    """Trap sites, busiest first; one per code location (the same library
    offset in two processes is one site)."""
    merged: dict[str, list[Any]] = {}
    for t in result.threads.values():
        for ip, (count, location) in t.sites.items():
            key = location or f"{ip:#x}"
            entry = merged.setdefault(key, [ip, location, 0, []])
            entry[2] += count
            entry[3].append((t.tid, t.comm))
    out = [Site(ip, loc, n, tuple(threads)) for ip, loc, n, threads in merged.values()]
    return sorted(out, key=lambda s: (-s.count, s.name))
