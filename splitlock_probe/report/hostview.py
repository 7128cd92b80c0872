"""`host` for people and for programs: what this host can show of split locks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from splitlock_probe.detectors import Availability
from splitlock_probe.host.kernel import AC_FLAG, DB_FLAG
from splitlock_probe.host.paths import root
from splitlock_probe.host.state import HostState
from splitlock_probe.text import shown

if TYPE_CHECKING:
    from rich.console import Console

    from splitlock_probe.host.cost import Cost

HOST_SCHEMA = "splitlock-probe/host/v1"


def host_document(
    state: HostState,
    detectors: dict[str, Availability],
    cost: Cost | None = None,
    cost_note: str | None = None,
) -> dict[str, Any]:
    from splitlock_probe.host.cost import as_dict
    from splitlock_probe.report.jsondoc import tool

    return {
        "schema": HOST_SCHEMA,
        "tool": tool(),
        "root": str(root()),
        "x86": state.x86,
        "cpu": state.cpu.as_dict(),
        "flags": {AC_FLAG: AC_FLAG in state.cpu.flags, DB_FLAG: DB_FLAG in state.cpu.flags},
        "kernel": {**state.kernel.as_dict(), "penalty": state.kernel.misery},
        "log": {"readable": state.log_readable, "reason": state.log_reason},
        "pmu": state.pmu.as_dict(),
        "detectors": {name: a.as_dict() for name, a in detectors.items()},
        "cost": None if cost is None else as_dict(cost),
        "cost_note": cost_note,
    }


def _yes(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def draw_host(
    state: HostState,
    detectors: dict[str, Availability],
    console: Console,
    cost: Cost | None = None,
    cost_note: str | None = None,
) -> None:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    doc = host_document(state, detectors)
    k = state.kernel
    cpu = state.cpu
    t = Table(
        box=box.SIMPLE_HEAD, show_header=False, pad_edge=False, title="host", title_justify="left"
    )
    t.add_column(style="bold")
    t.add_column(overflow="fold")
    identity = shown(cpu.model_name or cpu.vendor or "unknown CPU")
    if cpu.identity:
        identity += f" ({cpu.identity})"
    t.add_row("cpu", identity + (", virtual machine" if cpu.hypervisor else ""))
    t.add_row("flags", ", ".join(f"{n}: {_yes(v)}" for n, v in doc["flags"].items()))
    t.add_row("kernel", k.release or "-")
    mode = Text(k.effective_mode, style="bold")
    mode.append(f"  ({k.mode_source})", style="dim")
    t.add_row("mode", mode)
    t.add_row(
        "boot parameter",
        _yes(k.cmdline_mode) + (f"; clearcpuid={','.join(k.cleared)}" if k.cleared else ""),
    )
    t.add_row("boot banner", _yes(k.banner_mode))
    t.add_row(
        "split_lock_mitigate",
        "missing (kernel before 6.2)"
        if k.split_lock_mitigate is None
        else str(k.split_lock_mitigate),
    )
    t.add_row("penalty", "10 ms per trapped split lock" if k.misery else "none")
    t.add_row("perf_event_paranoid", _yes(k.perf_event_paranoid))
    t.add_row("kernel log", state.log_reason)
    pmu = state.pmu
    events = ", ".join(f"{c.name} on {c.pmu} ({c.config:#x})" for c in pmu.counters) or "none"
    t.add_row("counters", f"{events}; {'usable' if pmu.available else 'unusable'}: {pmu.reason}")
    for note in pmu.notes:
        t.add_row("", Text(note, style="yellow"))
    if cost is not None:
        klass, reason = cost.classification
        t.add_row("split lock cost", Text(f"{klass}: {reason}", style="bold"))
    else:
        t.add_row("split lock cost", Text(cost_note or "not measured", style="dim"))
    console.print(t)
    d = Table(box=box.SIMPLE_HEAD, pad_edge=False, title="detectors", title_justify="left")
    d.add_column("detector", style="bold")
    d.add_column("available")
    d.add_column("why", overflow="fold")
    for name, a in detectors.items():
        d.add_row(
            name, Text(_yes(a.available), style="green" if a.available else "yellow"), a.reason
        )
    console.print(d)
