"""The `log` pipeline: read every line (or follow new ones), tally the trap
events, and say what the live host's kernel can put in its log."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from splitlock_probe.errors import ExitStatus, UsageError
from splitlock_probe.host import kernel
from splitlock_probe.host.boottime import boot_time
from splitlock_probe.host.cpu import cpu, is_x86
from splitlock_probe.host.kmsg.messages import TrapEvent
from splitlock_probe.host.kmsg.source import MAX_PASS_BYTES, KernelLog
from splitlock_probe.host.kmsg.split import LineSplitter
from splitlock_probe.host.kmsg.tally import LogTally
from splitlock_probe.log.enrich import ProcessView, enrich
from splitlock_probe.log.inputs import compressed_lines, compression, stdin_lines
from splitlock_probe.text import counted, escape

STDIN = "-"


@dataclass
class LogRead:
    tally: LogTally
    views: list[ProcessView]
    source: str  # the path read, or "stdin"
    overwritten: int  # records the ring buffer overwrote before we read them
    host_mode: kernel.KernelState | None  # the live log: what its kernel can log
    interrupted: bool
    cut: int = 0  # lines longer than 1 MiB, cut
    notes: list[str] = field(default_factory=list)  # about the input itself
    boot_time: float | None = None  # the live log's boot (epoch seconds), for -T

    def exit_status(self) -> ExitStatus:
        """`log`'s policy: 130 when --follow was interrupted, else 0."""
        return ExitStatus.INTERRUPTED if self.interrupted else ExitStatus.OK


def live_host_mode(banner_mode: str | None = None) -> kernel.KernelState:
    """What the live host's kernel can put in its log."""
    c = cpu()
    return kernel.read(c.flags, banner_mode, is_x86(c))


def never_logs(mode: kernel.KernelState) -> str | None:
    """Why this host's kernel will never log a split-lock trap, or None."""
    if mode.effective_mode in (kernel.UNSUPPORTED, kernel.OFF):
        return (
            f"this host does not trap split locks ({mode.effective_mode}: {mode.mode_source}); "
            "its log will hold no trap lines (run --trace sees misaligned locked ops here)"
        )
    return None


def live_boot_time(path: str | None) -> float | None:
    """The boot time to put on the stamps of what `read(path)` reads: the
    host's for the live log, none for a saved one (its boot is not known)."""
    return boot_time() if path is None else None


def read(
    path: str | None,
    follow: bool,
    on_event: Callable[[TrapEvent], None] | None = None,
    on_start: Callable[[kernel.KernelState], None] | None = None,
) -> LogRead:
    """path: a saved log, STDIN, or None for the live /dev/kmsg (KernelLogUnreadable
    when it cannot be read). With follow, each new event goes to on_event as it
    comes, and on_start hears first what the live host can log."""
    tally = LogTally(keep_events=not follow)
    splitter = LineSplitter()
    reader: KernelLog | None = None
    lines: Iterable[str]
    kind = compression(Path(path)) if path not in (None, STDIN) else None
    if path == STDIN:
        source, lines = "stdin", stdin_lines(splitter)
    elif kind is not None:
        assert path is not None
        if follow:
            raise UsageError(f"--follow: {escape(path)} is {kind}-compressed; it cannot grow")
        source, lines = path, compressed_lines(Path(path), kind, splitter)
    else:
        reader = KernelLog(Path(path) if path else None)
        source = str(reader.path)
        lines = reader.follow() if follow else reader.read_available()
    host_mode = live_host_mode() if path is None else None
    if follow and on_start is not None and host_mode is not None:
        on_start(host_mode)
    interrupted = False
    try:
        for raw in lines:
            event = tally.feed_line(raw)
            if follow and event is not None and on_event is not None:
                on_event(event)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        overwritten = 0 if reader is None else reader.overwritten
        cut = splitter.cut if reader is None else reader.cut
        endless = 0 if reader is None else reader.bounded
        if reader is not None:
            reader.close()
    if path is not None and tally.lines and not tally.recognized and not interrupted:
        raise UsageError(
            f"{escape(source)} does not look like a kernel log: none of its "
            f"{counted(tally.lines, 'line')} has a kernel-log timestamp, a /dev/kmsg record "
            "header, a syslog or journal prefix, or a split-lock message (dmesg -t output has no "
            "timestamps: use dmesg without -t)"
        )
    if path is None:  # the live log: its banner, read now, says more than the flags
        host_mode = live_host_mode(tally.mode)
    were = "was" if cut == 1 else "were"
    notes = [f"{counted(cut, 'line')} longer than 1 MiB {were} cut there"] if cut else []
    if endless:  # /dev/zero, /dev/urandom, a stream that never pauses
        notes.append(f"reading stopped after {MAX_PASS_BYTES >> 20} MiB in one pass: more than a "
                     "kernel ring buffer holds, so this log may never end")  # fmt: skip
    if kind is not None:
        notes.append(f"read through {kind}")
    booted = live_boot_time(path)
    return LogRead(tally, enrich(tally), source, overwritten, host_mode, interrupted, cut, notes,
                   booted)  # fmt: skip
