"""The scan summary table: one row per layout x field x primitive."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text

from splitlock_probe.report.aggregate import Row, rows
from splitlock_probe.scan import ScanResult


def _cycles(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"


def _placements(row: Row) -> str:
    if not row.split_placements:
        return "none"
    offsets = sorted({p % 64 for p in row.split_placements})
    text = ",".join(str(o) for o in offsets)
    if len(row.split_placements) > len(offsets):
        text += f" (mod 64; {len(row.split_placements)} placements)"
    return text


def summary_table(result: ScanResult) -> Table:
    t = Table(title="split-lock scan", title_justify="left")
    for name, justify in (
        ("layout", "left"),
        ("field", "left"),
        ("primitive", "left"),
        ("placements", "right"),
        ("split at (line offset)", "left"),
        ("split bits", "left"),
        ("split cyc", "right"),
        ("clean cyc", "right"),
        ("ratio", "right"),
        ("AC traps", "right"),
        ("model", "left"),
    ):
        t.add_column(name, justify=justify)  # type: ignore[arg-type]
    for row in rows(result):
        split = Row.median(row.split_cycles)
        clean = Row.median(row.clean_cycles)
        ratio = f"{split / clean:,.0f}x" if split and clean else "-"
        total = row.agree + row.disagree
        if row.disagree:
            model = Text(f"DISAGREES {row.disagree}/{total + row.inconclusive}", style="bold red")
        elif total:
            model = Text(f"agrees {row.agree}/{total}", style="green")
        else:
            model = Text("-")
        if row.inconclusive:
            model.append(f" ({row.inconclusive} inconclusive)", style="yellow")
        t.add_row(
            row.layout,
            row.field,
            row.primitive,
            str(len(row.placements)),
            Text(_placements(row), style="bold red" if row.split_placements else "green"),
            row.split_bit_text,
            _cycles(split),
            _cycles(clean),
            ratio,
            f"{row.traps}/{row.trap_checks}" if row.trap_checks else "-",
            model,
        )
    return t
