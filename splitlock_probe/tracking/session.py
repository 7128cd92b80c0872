"""`run -- CMD`: start a command, follow its whole process tree, and say
which of its threads split-locked.

The order matters. The log position is taken first, so only lines written
while the command ran count. The command is started held at a gate, the
counters are attached to it (inherited by every thread and child it will
have), and only then is it let go. While it runs we wait on signals with a
short timeout: SIGCHLD reaps, a signal sent to us is passed on, and between
signals the kernel log is read and the tree looked at. A Ctrl-C from the
terminal reaches the command by itself (it shares our process group); we
keep waiting for the command, so the report is never lost.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from splitlock_probe import native
from splitlock_probe.detectors import Availability
from splitlock_probe.errors import ExitStatus
from splitlock_probe.host import HostState
from splitlock_probe.kernel import FATAL
from splitlock_probe.kmsg.messages import BUS_LOCK, SPLIT_LOCK, TrapEvent
from splitlock_probe.kmsg.source import KernelLog
from splitlock_probe.kmsg.tally import LogTally
from splitlock_probe.perf.counters import CounterGroup, Reading, by_pmu
from splitlock_probe.procinfo import Mapping
from splitlock_probe.tracing.run import Tracing
from splitlock_probe.tracing.sites import TraceResult
from splitlock_probe.tracking import spawn
from splitlock_probe.tracking.tasklog import RingTracker
from splitlock_probe.tracking.tree import ProcessTree

RUN_DETECTORS = ("kmsg", "perf")
# Signals a command should get when someone sends them to us.
FORWARDED = (
    signal.SIGINT,
    signal.SIGTERM,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
    signal.SIGWINCH,
    signal.SIGALRM,
)
SI_KERNEL = 0x80  # si_code of a signal the terminal sent to the whole process group
POLL_S = 0.01  # how often the log and the tree are looked at while the command runs


@dataclass(frozen=True)
class RunRequest:
    argv: tuple[str, ...]
    detectors: tuple[str, ...]  # the ones that will be used (available and wanted)
    fail_on: str = "none"  # none | split | hazard
    poll_s: float = POLL_S
    trace: str | None = None  # auto | agent | ptrace: trace alignment traps


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
    trace: TraceResult | None = None  # run --trace: the alignment-trap sites

    @property
    def trap_lines(self) -> dict[str, int]:
        return {
            SPLIT_LOCK: sum(t.split_lock for t in self.threads.values()),
            BUS_LOCK: sum(t.bus_lock for t in self.threads.values()),
        }

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


def _reap(child: int, result: RunResult) -> None:
    """Collect every child that ended: ours, and orphans we adopted as subreaper."""
    while True:
        try:
            pid, status, usage = os.wait4(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        if pid == child:
            result.exit = Exit.from_status(status)
            result.rusage = {
                "user_s": usage.ru_utime,
                "system_s": usage.ru_stime,
                "max_rss_kb": usage.ru_maxrss,
                "voluntary_switches": usage.ru_nvcsw,
                "involuntary_switches": usage.ru_nivcsw,
            }


def _open_counters(result: RunResult, pid: int) -> list[CounterGroup]:
    groups: list[CounterGroup] = []
    counters = result.host.pmu.counters
    result.counter_kinds = {c.name: c.kind for c in counters}
    try:
        for members in by_pmu(counters):
            groups.append(CounterGroup(members, pid=pid, inherit=True))
    except native.PerfOpenError as exc:
        from splitlock_probe.perf.state import explain

        result.counter_error = explain(exc.errno)
        for g in groups:
            g.close()
        return []
    for g in groups:
        g.enable()
    return groups


def _read_counters(result: RunResult, groups: Sequence[CounterGroup]) -> None:
    for g in groups:
        try:
            reading: Reading = g.read()
        except native.PerfOpenError as exc:
            result.counter_error = f"reading counters: {os.strerror(exc.errno)}"
            continue
        result.counters.update(reading.counts)
        result.counters_scaled |= reading.scaled
        g.close()


class Tracker(Protocol):
    method: str

    def update(self) -> None: ...
    def owns(self, tid: int, comm: str | None = None) -> bool: ...
    def tgid(self, tid: int) -> int | None: ...
    def locate(self, tid: int, address: int) -> str | None: ...
    def mapping(self, tid: int, address: int) -> Mapping | None: ...
    def comm(self, tid: int) -> str | None: ...
    @property
    def counts(self) -> tuple[int, int, int]: ...
    def close(self) -> None: ...


def _tracker(pid: int, result: RunResult) -> Tracker:
    """perf's task records where they can be had; else polling /proc."""
    try:
        return RingTracker(pid)
    except native.PerfOpenError as exc:
        from splitlock_probe.perf.state import explain

        result.tracking_note = f"perf task records: {explain(exc.errno)}"
        return ProcessTree()


class _Loop:
    """Reads the log and the tree while the command runs."""

    def __init__(self, result: RunResult, log: KernelLog | None, tracker: Tracker) -> None:
        self.result = result
        self.log = log
        self.tracker = tracker

    def drain(self, final: bool = False) -> None:
        # The log first, then the tree: a line read now names a thread whose
        # fork record was written before it, so it is known when the line is filed.
        raw = list(self.log.read_available(final=final)) if self.log is not None else []
        self.tracker.update()
        for line in raw:
            event = self.result.tally.feed_line(line)
            if event is not None:
                self._file(event)

    def _file(self, event: TrapEvent) -> None:
        if event.guest or not self.tracker.owns(event.pid, event.comm):
            self.result.others += 1
            return
        record = self.result.threads.get(event.pid)
        if record is None:
            record = ThreadRecord(event.pid, event.comm, self.tracker.tgid(event.pid))
            self.result.threads[event.pid] = record
        record.add(event, self.tracker.locate(event.pid, event.ip))


def _wait_traced(tracer: native.Tracer, timeout_s: float, result: RunResult) -> None:
    info = tracer.poll(timeout_s)
    if info.done:
        result.exit = Exit.from_status(info.status)
        result.rusage = {
            "user_s": info.user_s,
            "system_s": info.system_s,
            "max_rss_kb": info.max_rss_kb,
            "voluntary_switches": info.voluntary_switches,
            "involuntary_switches": info.involuntary_switches,
        }


def _forward(info: Any, child: int, result: RunResult) -> None:
    sig = signal.Signals(info.si_signo)
    if sig in (signal.SIGINT, signal.SIGTERM):
        result.interrupted = True
    if info.si_code == SI_KERNEL and sig in (signal.SIGINT, signal.SIGQUIT, signal.SIGWINCH):
        return  # the terminal sent it to the whole group: the command has it already
    with contextlib.suppress(ProcessLookupError):
        os.kill(child, sig)
        result.forwarded.append(sig.name)


def execute(
    request: RunRequest,
    host: HostState,
    detectors: dict[str, Availability],
) -> RunResult:
    """Run the command to its end and gather what the detectors saw."""
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    result = RunResult(request, host, detectors, started)
    log: KernelLog | None = None
    if "kmsg" in request.detectors and host.log_readable:
        log = KernelLog()
        log.seek_end()
    watched = {signal.SIGCHLD, *FORWARDED}
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, watched)
    native.set_child_subreaper(True)
    t0 = time.monotonic()
    groups: list[CounterGroup] = []
    tracker: Tracker | None = None
    tracing: Tracing | None = None
    try:
        if request.trace:
            tracing = Tracing(request.argv, request.trace)
        child = spawn.start(request.argv, mask=old_mask, env=tracing.env() if tracing else None)
        result.pid = child.pid
        try:
            tracker = _tracker(child.pid, result)
            if "perf" in request.detectors:
                groups = _open_counters(result, child.pid)
            if tracing is not None:
                tracing.attach(child.pid)
            child.release()
        except BaseException:
            child.abandon()
            raise
        result.tracking = tracker.method
        loop = _Loop(result, log, tracker)
        ptrace = tracing.tracer if tracing is not None else None
        while result.exit is None:
            if ptrace is not None:  # the tracer waits for the tree; we only pass signals on
                _wait_traced(ptrace, request.poll_s, result)
                info = signal.sigtimedwait(FORWARDED, 0)
            else:
                info = signal.sigtimedwait(watched, request.poll_s)
            if info is not None:
                if info.si_signo == signal.SIGCHLD:
                    _reap(child.pid, result)
                else:
                    _forward(info, child.pid, result)
            loop.drain()
        result.elapsed_s = time.monotonic() - t0
        if ptrace is not None:
            ptrace.release()
        _read_counters(result, groups)
        loop.drain(final=True)
        result.tasks_seen, result.processes_seen, result.tracking_lost = tracker.counts
        if tracing is not None:
            result.trace = tracing.result(tracker)
    finally:
        for g in groups:
            g.close()
        if tracing is not None:
            tracing.close()
        if tracker is not None:
            tracker.close()
        if log is not None:
            result.overwritten = log.overwritten
            log.close()
        native.set_child_subreaper(False)
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        with contextlib.suppress(ChildProcessError):
            while os.waitpid(-1, os.WNOHANG)[0] > 0:
                pass
    return result


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


def exit_status(result: RunResult) -> int:
    """The command's own status when it failed; else 1 under --fail-on split
    when a split lock was seen; else 0."""
    if result.exit is not None and result.exit.failed:
        return result.exit.status
    fail_on = result.request.fail_on
    if fail_on in ("split", "hazard") and result.split:
        return int(ExitStatus.FINDING)
    if fail_on == "hazard" and result.hazard:
        return int(ExitStatus.FINDING)
    return int(ExitStatus.OK)
