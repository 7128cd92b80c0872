"""`watch` for people (a table, redrawn live) and programs (watch/v1, a
document per snapshot)."""

from __future__ import annotations

import datetime
import sys
from typing import TYPE_CHECKING, Any

from splitlock_probe.host.kmsg.messages import BUS_LOCK, SPLIT_LOCK
from splitlock_probe.log.read import never_logs
from splitlock_probe.text import shown
from splitlock_probe.watch.session import Snapshot

if TYPE_CHECKING:
    from rich.console import Console, RenderableType

WATCH_SCHEMA = "splitlock-probe/watch/v2"  # v2: "interval" is "snapshot" (a number, not seconds)


def notes(snap: Snapshot) -> list[str]:
    out = []
    if why := never_logs(snap.kernel):
        out.append(why)
    if snap.pmu is None and snap.pmu_error:
        out.append(f"no per-CPU counts: {snap.pmu_error}")
    for kind, label in ((SPLIT_LOCK, "split-lock"), (BUS_LOCK, "bus-lock")):
        if snap.suppressed[kind]:
            out.append(f"the kernel suppressed {snap.suppressed[kind]:,} {label} lines")
    if snap.aged_out:
        out.append(
            f"{snap.aged_out:,} quiet processes aged out of the table (kept: {snap.limit}); "
            "their counts stay in the totals"
        )
    if snap.malformed:
        lines = "line" if snap.malformed == 1 else "lines"
        out.append(f"{snap.malformed:,} trap {lines} could not be parsed")
    if snap.overwritten:
        out.append(f"{snap.overwritten:,} log records were overwritten before being read")
    return out


def watch_document(snap: Snapshot) -> dict[str, Any]:
    from splitlock_probe.report.jsondoc import tool

    k = snap.kernel
    return {
        "schema": WATCH_SCHEMA,
        "tool": tool(),
        "taken": datetime.datetime.fromtimestamp(snap.taken, datetime.timezone.utc).isoformat(
            timespec="seconds"
        ),
        "watching_s": round(snap.watching_s, 3),
        "snapshot": snap.intervals,
        "source": snap.source,
        "since_boot": snap.since_boot,
        "kernel": {
            "effective_mode": k.effective_mode,
            "mode_source": k.mode_source,
            "banner_mode": snap.banner_mode,
            "split_lock_mitigate": k.split_lock_mitigate,
            "penalty": k.misery,
        },
        "detectors": {n: a.as_dict() for n, a in snap.detectors.items()},
        "totals": snap.totals,
        "new": snap.new,
        "suppressed": snap.suppressed,
        "log": {
            "lines": snap.lines,
            "malformed": snap.malformed,
            "overwritten": snap.overwritten,
        },
        "table": {"processes": snap.processes, "limit": snap.limit, "aged_out": snap.aged_out},
        "processes": [
            {
                "comm": r.comm,
                "pid": r.pid,
                "guest": r.guest,
                SPLIT_LOCK: r.split_lock,
                BUS_LOCK: r.bus_lock,
                "new": r.new,
                "last_ip": f"{r.last_ip:#x}",
                "vm": r.vm,
            }
            for r in snap.rows
        ],
        "pmu": None
        if snap.pmu is None
        else {
            "kinds": snap.pmu_kinds,
            "cpus": {str(cpu): events for cpu, events in sorted(snap.pmu.items())},
        },
        "pmu_error": snap.pmu_error,
        "notes": notes(snap),
        "split_lock_cost": snap.lock_cost,
    }


def renderable(snap: Snapshot) -> RenderableType:
    from rich import box
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    k = snap.kernel
    head = Text(f"split-lock mode {k.effective_mode} ({k.mode_source})", style="dim")
    if k.misery:
        head.append("; penalty on: 10 ms sleep per trapped split lock", style="yellow")
    head.append(
        f"\nwatching {snap.source} for {snap.watching_s:,.1f} s"
        + (" (history since boot included)" if snap.since_boot else ""),
        style="dim",
    )
    head.append(
        f"\n#AC {snap.totals[SPLIT_LOCK]:,} (+{snap.new[SPLIT_LOCK]:,})   "
        f"#DB {snap.totals[BUS_LOCK]:,} (+{snap.new[BUS_LOCK]:,})",
        style="bold red" if any(snap.new.values()) else "",
    )
    parts: list[Any] = [head]
    if snap.rows:
        t = Table(box=box.SIMPLE_HEAD, pad_edge=False, title="by process", title_justify="left")
        for column in ("comm", "tid", "#AC", "#DB", "new", "last trap at"):
            t.add_column(column, overflow="fold")
        for r in snap.rows:
            name = shown(r.comm) + (
                f" (guest: {shown(r.vm)})" if r.vm else " (guest)" if r.guest else ""
            )
            new = f"+{r.new}" if r.new else ""
            t.add_row(name, str(r.pid), str(r.split_lock), str(r.bus_lock), new,
                      f"{r.last_ip:#x}")  # fmt: skip
        parts.append(t)
    if snap.pmu is not None:
        t = Table(box=box.SIMPLE_HEAD, pad_edge=False, title="PMU, per CPU", title_justify="left")
        names = sorted({n for events in snap.pmu.values() for n in events})
        t.add_column("cpu")
        for n in names:
            t.add_column(n, justify="right")
        for cpu, events in sorted(snap.pmu.items()):
            cells = [events.get(n) for n in names]
            t.add_row(str(cpu), *("-" if v is None else f"{v:,}" for v in cells))
        parts.append(t)
    for note in notes(snap):
        parts.append(Text("note: " + note, style="yellow"))
    return Group(*parts)


def draw_watch(snap: Snapshot, console: Console) -> None:
    console.print(renderable(snap))


class WatchScreen:
    """Where each snapshot goes while watching: a live table on a terminal,
    a table per snapshot on a pipe, or a JSON document per line."""

    def __init__(self, as_json: bool, to_stdout: bool) -> None:
        self.as_json = as_json
        self.to_stdout = to_stdout
        self._live: Any = None

    def __enter__(self) -> WatchScreen:
        if self.to_stdout and not self.as_json:
            from splitlock_probe.report.console import stdout

            if stdout().is_terminal:
                from rich.live import Live

                self._live = Live(console=stdout(), auto_refresh=False, transient=False)
                self._live.start()
        return self

    def show(self, snap: Snapshot) -> None:
        if not self.to_stdout:
            return
        if self.as_json:
            import json

            sys.stdout.write(json.dumps(watch_document(snap)) + "\n")
            sys.stdout.flush()
            return
        if self._live is not None:
            self._live.update(renderable(snap), refresh=True)
        else:
            from splitlock_probe.report.console import stdout

            stdout().print(renderable(snap))
            stdout().rule()

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.stop()
