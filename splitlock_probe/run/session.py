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
from typing import Any, Protocol

import psutil

from splitlock_probe.detectors import Availability
from splitlock_probe.host.kmsg.messages import TrapEvent
from splitlock_probe.host.kmsg.source import KernelLog
from splitlock_probe.host.perf.counters import CounterGroup, Reading, open_groups
from splitlock_probe.host.perf.state import explain
from splitlock_probe.host.procinfo import Mapping
from splitlock_probe.host.state import HostState
from splitlock_probe.native import PerfOpenError
from splitlock_probe.native.tasks import set_child_subreaper
from splitlock_probe.native.trace import Tracer
from splitlock_probe.run import spawn
from splitlock_probe.run.result import Exit, RunRequest, RunResult, ThreadRecord
from splitlock_probe.run.tasklog import RingTracker
from splitlock_probe.run.trace.tracing import Tracing
from splitlock_probe.run.tree import ProcessTree

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


def _rusage(
    user_s: float, system_s: float, max_rss_kb: int, voluntary: int, involuntary: int
) -> dict[str, float]:
    """The command's resource use as run/v1 reports it, from wait4 or the tracer."""
    return {
        "user_s": user_s,
        "system_s": system_s,
        "max_rss_kb": max_rss_kb,
        "voluntary_switches": voluntary,
        "involuntary_switches": involuntary,
    }


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
            result.rusage = _rusage(
                usage.ru_utime, usage.ru_stime, usage.ru_maxrss, usage.ru_nvcsw, usage.ru_nivcsw
            )


def _open_counters(result: RunResult, pid: int) -> list[CounterGroup]:
    """The tree's counters, inherited by every thread and child; none when refused."""
    counters = result.host.pmu.counters
    result.counter_kinds = {c.name: c.kind for c in counters}
    try:
        groups = open_groups(counters, pid=pid, inherit=True)
    except PerfOpenError as exc:
        result.counter_error = explain(exc.errno)
        return []
    for g in groups:
        g.enable()
    return groups


def _read_counters(result: RunResult, groups: Sequence[CounterGroup]) -> None:
    for g in groups:
        try:
            reading: Reading = g.read()
        except PerfOpenError as exc:
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
    def mappings(self, tid: int) -> list[Mapping]: ...
    def comm(self, tid: int) -> str | None: ...
    @property
    def counts(self) -> tuple[int, int, int]: ...
    @property
    def execs(self) -> int | None: ...
    def close(self) -> None: ...


def _tracker(pid: int, result: RunResult) -> Tracker:
    """perf's task records where they can be had; else polling /proc."""
    try:
        return RingTracker(pid)
    except PerfOpenError as exc:
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


def _descendants(ptrace: Tracer | None, result: RunResult) -> int:
    """Descendants of the command still alive. As subreaper we adopt every orphan,
    so none is alive exactly when we have no child left."""
    if ptrace is not None:
        return result.traced_tasks_left
    try:
        return len(psutil.Process().children(recursive=True))
    except psutil.Error:
        return 0


def _tree_goes_on(request: RunRequest, result: RunResult, ptrace: Tracer | None) -> bool:
    """After the command's own exit: wait on while its descendants live, unless
    --exit-with-command, or a Ctrl-C/SIGTERM came (their report is owed now).
    A child of ours (adopted orphans included) means the tree goes on, under
    ptrace too: the tracer may not know a just-forked child yet."""
    if request.exit_with_command or result.interrupted:
        return False
    if ptrace is not None and result.traced_tasks_left > 0:
        return True
    try:  # a child of ours, exited or not: the tree is not done
        os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return False
    return True


def _wait_traced(tracer: Tracer, timeout_s: float, result: RunResult) -> None:
    info = tracer.poll(timeout_s)
    result.traced_tasks_left = info.tasks_now
    if info.done:
        result.exit = Exit.from_status(info.status)
        result.rusage = _rusage(
            info.user_s,
            info.system_s,
            info.max_rss_kb,
            info.voluntary_switches,
            info.involuntary_switches,
        )


def _forward(info: Any, child: int, result: RunResult) -> None:
    sig = signal.Signals(info.si_signo)
    if sig in (signal.SIGINT, signal.SIGTERM):
        result.interrupted = True
    if info.si_code == SI_KERNEL and sig in (signal.SIGINT, signal.SIGQUIT, signal.SIGWINCH):
        return  # the terminal sent it to the whole group: the command has it already
    with contextlib.suppress(ProcessLookupError):
        os.kill(child, sig)
        result.forwarded.append(sig.name)


def run_command(
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
    set_child_subreaper(True)
    t0 = time.monotonic()
    groups: list[CounterGroup] = []
    tracker: Tracker | None = None
    tracing: Tracing | None = None
    try:
        if request.trace:
            tracing = Tracing(request.argv, request.trace, request.trace_method, request.site_cache)
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
        while result.exit is None or _tree_goes_on(request, result, ptrace):
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
        result.descendants_left = _descendants(ptrace, result)
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
        set_child_subreaper(False)
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        with contextlib.suppress(ChildProcessError):
            while os.waitpid(-1, os.WNOHANG)[0] > 0:
                pass
    return result
