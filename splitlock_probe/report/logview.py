"""`log` for people and for programs: trap events, per process, with what
the live processes are and where in them the traps were."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from splitlock_probe.host.boottime import ctime
from splitlock_probe.host.kmsg.messages import BUS_LOCK, SPLIT_LOCK, TrapEvent
from splitlock_probe.host.kmsg.tally import LogTally
from splitlock_probe.log.read import never_logs
from splitlock_probe.text import counted, shown

if TYPE_CHECKING:
    from rich.console import Console

    from splitlock_probe.log.read import LogRead

LOG_SCHEMA = "splitlock-probe/log/v1"
EVENT_SCHEMA = "splitlock-probe/log-event/v1"
STATUS_SCHEMA = "splitlock-probe/log-status/v1"  # the first line of log --follow --json


def notes(tally: LogTally, read: LogRead | None = None) -> list[str]:
    out = [] if read is None else list(read.notes)
    for kind, label in ((SPLIT_LOCK, "split-lock"), (BUS_LOCK, "bus-lock")):
        if tally.suppressed[kind]:
            out.append(
                f"the kernel suppressed {tally.suppressed[kind]:,} {label} lines "
                "(printk ratelimit): real counts are higher"
            )
    if tally.counts()[SPLIT_LOCK]:
        out.append(
            "#AC lines come once per thread: split-lock counts are threads that "
            "split-locked, not split locks (hardware counters give true counts)"
        )
    if tally.events_dropped:
        out.append(
            f"{tally.events_dropped:,} events beyond the first {len(tally.events):,} are "
            "counted, not listed"
        )
    if tally.processes_aged_out:
        out.append(
            f"{tally.processes_aged_out:,} processes seen longest ago aged out of the table; "
            "their events stay in the counts"
        )
    if tally.malformed:
        lines = "line" if tally.malformed == 1 else "lines"
        out.append(f"skipped {tally.malformed} trap {lines} that could not be parsed")
    return out


def log_document(read: LogRead) -> dict[str, Any]:
    from splitlock_probe.report.jsondoc import tool

    tally, host_mode = read.tally, read.host_mode

    return {
        "schema": LOG_SCHEMA,
        "tool": tool(),
        "source": read.source,
        "boot_time": read.boot_time,
        "mode": tally.mode,
        "host_mode": None
        if host_mode is None
        else {"effective_mode": host_mode.effective_mode, "mode_source": host_mode.mode_source},
        "lines": tally.lines,
        "malformed": tally.malformed,
        "overwritten": read.overwritten,
        "suppressed": dict(tally.suppressed),
        "counts": tally.counts(),
        "notes": notes(tally, read),
        "processes": [v.as_dict() for v in read.views],
        "events": [e.as_dict() for e in tally.events],
    }


LAST_EVENTS = 10  # events the text report lists under its table (JSON has every one)


def event_line(event: TrapEvent, booted: float | None = None) -> str:
    """One event as dmesg shows a line: its stamp in brackets, and with a boot
    time (-T) the stamp as a date."""
    guest = " (guest)" if event.guest else ""
    stamp = ctime(event.time, booted) or event.time
    when = f"[{shown(stamp)}] " if stamp else ""
    return f"{when}{event.kind} {shown(event.comm)}/{event.pid}{guest} at {event.ip:#x}"


def draw_log(read: LogRead, console: Console, wall_clock: bool = False) -> None:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    tally, views, host_mode = read.tally, read.views, read.host_mode
    counts = tally.counts()
    head = Text(f"{read.source}: {counted(tally.lines, 'line')}, ", style="dim")
    head.append(f"{counts[SPLIT_LOCK]:,} split-lock and {counts[BUS_LOCK]:,} bus-lock events")
    head.append(
        f"; mode {tally.mode}" if tally.mode else "; no boot banner in this log", style="dim"
    )
    console.print(head)
    if host_mode is not None and (why := never_logs(host_mode)):
        console.print(Text(why, style="yellow"))
    if views:
        containers = any(v.task and v.task.container for v in views)
        t = Table(box=box.SIMPLE_HEAD, pad_edge=False, title="by process", title_justify="left")
        for column in ("comm", "tid", "#AC", "#DB", "process"):
            t.add_column(column, overflow="fold")
        if containers:
            t.add_column("container")
        t.add_column("trap sites", overflow="fold", ratio=2)
        for v in views:
            c = v.count
            if c.guest:
                vm = v.task.vm or v.task.exe if v.task else None
                where = f"guest vCPU of {shown(vm)}" if vm else "guest vCPU"
            elif v.task is None:
                where = "gone"
            else:
                where = shown(v.task.exe or " ".join(v.task.cmdline) or f"pid {v.task.tgid}")
            sites = ", ".join(f"{shown(loc or f'{ip:#x}')} x{n}" for ip, n, loc in v.sites[:3])
            if len(v.sites) > 3:
                sites += f", +{len(v.sites) - 3} more"
            cells = [shown(c.comm), str(c.pid), str(c.split_lock), str(c.bus_lock), where]
            if containers:
                cells.append(shown((v.task.container if v.task else None) or "-"))
            t.add_row(*cells, sites)
        console.print(t)
    if tally.events:
        booted = read.boot_time if wall_clock else None
        last = tally.events[-LAST_EVENTS:]
        total = len(tally.events) + tally.events_dropped
        more = f" ({len(last):,} of {total:,}, the latest kept; --json has more)"
        more = more if total > len(last) else ""
        console.print(Text(f"events{more}:", style="bold"))
        for event in last:
            console.print(Text(event_line(event, booted)))
        console.print()
    for note in notes(tally, read):
        console.print(Text("note: " + note, style="yellow"))
