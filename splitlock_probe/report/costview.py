"""`cost` for people (quantiles in time, the class and why, the neighbours, a
histogram of per-lock cost) and for programs (cost/v1)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from splitlock_probe.host.cost import Cost, Quantiles, as_dict, format_ns

if TYPE_CHECKING:
    from rich.console import Console

COST_SCHEMA = "splitlock-probe/cost/v1"
BAR_WIDTH = 40


def cost_document(cost: Cost) -> dict[str, Any]:
    from splitlock_probe.report.jsondoc import tool

    return {
        "schema": COST_SCHEMA,
        "tool": tool(),
        **as_dict(cost),
        "histogram": [
            {"from_cycles": lo, "to_cycles": hi, "count": n}
            for lo, hi, n in histogram(cost.split_samples)
        ],
    }


def histogram(samples: tuple[int, ...], bins: int = 12) -> list[tuple[int, int, int]]:
    """Per-lock cost in log-spaced bins: (from, to, count); a uniform cost is one
    tall bar, a per-window cost two humps."""
    positive = [s for s in samples if s > 0]
    if not positive:
        return []
    lo, hi = min(positive), max(positive)
    if hi <= lo:
        return [(lo, hi, len(positive))]
    step = (math.log(hi) - math.log(lo)) / bins
    edges = [round(math.exp(math.log(lo) + step * k)) for k in range(bins + 1)]
    counts = [0] * bins
    for s in positive:
        k = min(bins - 1, int((math.log(s) - math.log(lo)) / step))
        counts[k] += 1
    return [(edges[k], edges[k + 1], counts[k]) for k in range(bins)]


def _row(cost: Cost, name: str, q: Quantiles) -> list[str]:
    return [name, f"{q.count:,}", *(format_ns(cost.ns(v)) for v in (q.min, q.p10, q.p50, q.p90,
                                                                   q.p99))]  # fmt: skip


def draw_cost(cost: Cost, console: Console) -> None:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    klass, reason = cost.classification
    head = Text(f"split lock cost: {klass}", style="bold")
    console.print(head)
    console.print(Text(reason))
    t = Table(box=box.SIMPLE_HEAD, pad_edge=False, title="one lock btsq, timed alone",
              title_justify="left")  # fmt: skip
    for column in ("ops", "count", "min", "p10", "p50", "p90", "p99"):
        t.add_column(column, justify="left" if column == "ops" else "right", no_wrap=True)
    t.add_row(*_row(cost, "split", cost.split))
    for name, q in cost.spaced.items():
        label = "split, >2 ticks apart" if name == "ticks" else "split, >1 s apart"
        t.add_row(*_row(cost, label, q))
    t.add_row(*_row(cost, "aligned*", cost.aligned))
    console.print(t)
    console.print(
        Text(
            f"TSC {cost.tsc_hz / 1e9:.2f} GHz; p50 split {cost.split.p50:,.0f} TSC cycles; "
            f"*a single aligned op is mostly its fences: batched, it costs "
            f"{cost.aligned_op_cycles:,.1f} TSC cycles",
            style="dim",
        )
    )
    bars = histogram(cost.split_samples)
    if bars:
        peak = max(n for *_, n in bars)
        console.print(Text("per-lock cost (split), TSC cycles", style="bold"))
        for lo, hi, n in bars:
            width = round(BAR_WIDTH * n / peak) if peak else 0
            line = Text(f"{lo:>9,}-{hi:<9,} ", style="dim")
            line.append("█" * width, style="red")
            line.append(f" {n:,}")
            console.print(line)
    if cost.neighbours:
        title = "a neighbour on another CPU: alone, beside aligned locks, beside split locks"
        nt = Table(box=box.SIMPLE_HEAD, pad_edge=False, title=title, title_justify="left")
        for column in ("victim", "alone", "+aligned", "+split", "lost", "per split"):
            nt.add_column(column, justify="left" if column == "victim" else "right", no_wrap=True)
        for x in cost.neighbours:
            scale = 1e9 if x.victim == "stream" else 1e6
            stolen = x.stolen_ns_per_split
            nt.add_row(
                "memory, GB/s" if x.victim == "stream" else "atomics, Mops/s",
                f"{x.alone / scale:,.2f}",
                f"{x.beside_aligned / scale:,.2f}",
                f"{x.beside_split / scale:,.2f}",
                f"{x.loss:.0%}",
                "-" if stolen is None else format_ns(stolen),
            )
        console.print(nt)
    elif cost.neighbour_note:
        console.print(Text(f"neighbours: {cost.neighbour_note}", style="dim"))
    if cost.stopped:
        console.print(Text(cost.stopped, style="yellow"))
