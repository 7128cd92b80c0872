"""`log` for people and for programs: trap events, per process, with what
the live processes are and where in them the traps were."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from splitlock_probe import procinfo
from splitlock_probe.kernel import UNSUPPORTED, KernelState
from splitlock_probe.kmsg.messages import BUS_LOCK, SPLIT_LOCK, TrapEvent
from splitlock_probe.kmsg.tally import LogTally, ProcessCount

if TYPE_CHECKING:
    from rich.console import Console

LOG_SCHEMA = "splitlock-probe/log/v1"
EVENT_SCHEMA = "splitlock-probe/log-event/v1"


@dataclass
class ProcessView:
    count: ProcessCount
    task: procinfo.TaskInfo | None  # None: the thread is gone (or its id was reused)
    sites: list[tuple[int, int, str | None]] = field(default_factory=list)  # ip, count, where

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.count.as_dict(),
            "alive": self.task is not None,
            "task": None if self.task is None else self.task.as_dict(),
            "sites": [
                {"ip": f"{ip:#x}", "count": n, "location": where} for ip, n, where in self.sites
            ],
        }


def enrich(tally: LogTally) -> list[ProcessView]:
    """Per-process rows, busiest first; live tasks get psutil and /proc/PID/maps detail."""
    views = []
    for count in tally.ranked():
        task = None if count.guest else procinfo.lookup(count.pid, count.comm)
        mappings = procinfo.maps(count.pid) if task is not None else []
        sites = [
            (ip, n, procinfo.locate(ip, mappings) if mappings else None)
            for ip, n in sorted(count.ips.items(), key=lambda kv: -kv[1])
        ]
        views.append(ProcessView(count, task, sites))
    return views


def notes(tally: LogTally) -> list[str]:
    out = []
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
    if tally.malformed:
        lines = "line" if tally.malformed == 1 else "lines"
        out.append(f"skipped {tally.malformed} trap {lines} that could not be parsed")
    return out


def log_document(
    tally: LogTally,
    views: list[ProcessView],
    source: str,
    overwritten: int = 0,
    host_mode: KernelState | None = None,
) -> dict[str, Any]:
    from splitlock_probe.report.jsondoc import tool

    return {
        "schema": LOG_SCHEMA,
        "tool": tool(),
        "source": source,
        "mode": tally.mode,
        "host_mode": None
        if host_mode is None
        else {"effective_mode": host_mode.effective_mode, "mode_source": host_mode.mode_source},
        "lines": tally.lines,
        "malformed": tally.malformed,
        "overwritten": overwritten,
        "suppressed": dict(tally.suppressed),
        "counts": tally.counts(),
        "notes": notes(tally),
        "processes": [v.as_dict() for v in views],
        "events": [e.as_dict() for e in tally.events],
    }


def event_line(event: TrapEvent) -> str:
    """One streamed event, for --follow."""
    guest = " (guest)" if event.guest else ""
    when = f"[{event.time}] " if event.time else ""
    return f"{when}{event.kind} {event.comm}/{event.pid}{guest} at {event.ip:#x}"


def draw_log(
    tally: LogTally,
    views: list[ProcessView],
    source: str,
    host_mode: KernelState | None,
    console: Console,
) -> None:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    counts = tally.counts()
    head = Text(f"{source}: {tally.lines:,} lines, ", style="dim")
    head.append(f"{counts[SPLIT_LOCK]:,} split-lock and {counts[BUS_LOCK]:,} bus-lock events")
    head.append(
        f"; mode {tally.mode}" if tally.mode else "; no boot banner in this log", style="dim"
    )
    console.print(head)
    if host_mode is not None and host_mode.effective_mode in (UNSUPPORTED, "off"):
        console.print(
            Text(
                f"this host does not trap split locks ({host_mode.effective_mode}: "
                f"{host_mode.mode_source}); its log will hold no trap lines",
                style="yellow",
            )
        )
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
                where = "guest vCPU"
            elif v.task is None:
                where = "gone"
            else:
                where = v.task.exe or " ".join(v.task.cmdline) or f"pid {v.task.tgid}"
            sites = ", ".join(f"{loc or f'{ip:#x}'} x{n}" for ip, n, loc in v.sites[:3])
            if len(v.sites) > 3:
                sites += f", +{len(v.sites) - 3} more"
            cells = [c.comm, str(c.pid), str(c.split_lock), str(c.bus_lock), where]
            if containers:
                cells.append((v.task.container if v.task else None) or "-")
            t.add_row(*cells, sites)
        console.print(t)
    for note in notes(tally):
        console.print(Text("note: " + note, style="yellow"))
