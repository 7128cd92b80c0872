"""The `log` pipeline: read every line (or follow new ones), tally the trap
events, and say what the live host's kernel can put in its log."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from splitlock_probe.errors import ExitStatus
from splitlock_probe.host import kernel
from splitlock_probe.host.cpu import cpu, is_x86
from splitlock_probe.host.kmsg.messages import TrapEvent
from splitlock_probe.host.kmsg.source import KernelLog
from splitlock_probe.host.kmsg.tally import LogTally
from splitlock_probe.log.enrich import ProcessView, enrich

STDIN = "-"


@dataclass
class LogRead:
    tally: LogTally
    views: list[ProcessView]
    source: str  # the path read, or "stdin"
    overwritten: int  # records the ring buffer overwrote before we read them
    host_mode: kernel.KernelState | None  # the live log: what its kernel can log
    interrupted: bool

    def exit_status(self) -> ExitStatus:
        """`log`'s policy: 130 when --follow was interrupted, else 0."""
        return ExitStatus.INTERRUPTED if self.interrupted else ExitStatus.OK


def read(
    path: str | None, follow: bool, on_event: Callable[[TrapEvent], None] | None = None
) -> LogRead:
    """path: a saved log, STDIN, or None for the live /dev/kmsg (KernelLogUnreadable
    when it cannot be read). With follow, each new event goes to on_event as it comes."""
    reader = None if path == STDIN else KernelLog(Path(path) if path else None)
    source = "stdin" if reader is None else str(reader.path)
    tally = LogTally(keep_events=not follow)
    interrupted = False
    try:
        lines: Iterable[str]
        if reader is None:
            lines = sys.stdin
        else:
            lines = reader.follow() if follow else reader.read_available()
        for raw in lines:
            event = tally.feed_line(raw)
            if follow and event is not None and on_event is not None:
                on_event(event)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        overwritten = 0 if reader is None else reader.overwritten
        if reader is not None:
            reader.close()
    host_mode = None
    if path is None:  # the live log: say what this host's kernel can put in it
        c = cpu()
        host_mode = kernel.read(c.flags, tally.mode, is_x86(c))
    return LogRead(tally, enrich(tally), source, overwritten, host_mode, interrupted)
