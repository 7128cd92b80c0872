"""The scan summary table: one row per layout x field x primitive."""

from __future__ import annotations

from rich import box
from rich.table import Table
from rich.text import Text

from splitlock_probe.report.aggregate import Row


def _cycles(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def _placements(row: Row) -> str:
    if not row.split_placements:
        return f"none/{len(row.placements)}"
    offsets = ",".join(str(o) for o in sorted({p % 64 for p in row.split_placements}))
    return f"{offsets} ({len(row.split_placements)}/{len(row.placements)})"


def summary_table(all_rows: list[Row]) -> Table:
    fields = sorted({r.field for r in all_rows})
    one_field = len(fields) == 1
    title = "split-lock scan" + (f": field {fields[0]}" if one_field else "")
    t = Table(
        title=title,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    t.add_column("struct" if one_field else "struct.field", no_wrap=True)
    t.add_column("op", no_wrap=True)
    t.add_column("splits at", min_width=9)
    t.add_column("bits", min_width=5)
    t.add_column("cycles", justify="right", no_wrap=True)
    t.add_column("ratio", justify="right", no_wrap=True)
    t.add_column("AC", justify="right", no_wrap=True)
    t.add_column("model", no_wrap=True)
    for row in all_rows:
        split = Row.median(row.split_cycles)
        clean = Row.median(row.clean_cycles)
        ratio = f"{split / clean:,.0f}x" if split and clean else "-"
        if row.disagree:
            model = Text(f"✗ {row.disagree:,}", style="bold red")
        elif row.agree:
            model = Text(f"✓ {row.agree:,}", style="green")
        else:
            model = Text("-")
        if row.inconclusive:
            model.append(f" ?{row.inconclusive:,}", style="yellow")
        t.add_row(
            row.layout if one_field else f"{row.layout}.{row.field}",
            row.primitive,
            Text(_placements(row), style="bold red" if row.split_placements else "green"),
            row.split_bit_text,
            f"{_cycles(split)} / {_cycles(clean)}",
            ratio,
            f"{row.traps}/{row.trap_checks}" if row.trap_checks else "-",
            model,
        )
    t.caption = (
        "splits at: placements mod 64 (split/probed); cycles: fastest batch per op, "
        "split / clean; AC: alignment-check traps; model: probes that agree ✓, disagree ✗, "
        "inconclusive ?"
    )
    t.caption_justify = "left"
    t.caption_style = "dim"
    return t
