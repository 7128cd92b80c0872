"""The scan summary table: one row per layout x field x primitive."""

from __future__ import annotations

from rich import box
from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

from splitlock_probe.report.aggregate import Row
from splitlock_probe.scan.plan import fold_ranges, format_ranges


def _cycles(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def _cost_cell(split: float | None, clean: float | None, tsc_hz: float | None) -> Text:
    cell = Text(f"{_cycles(split)} / {_cycles(clean)}")
    time = _split_time(split, tsc_hz)
    if time is not None:
        cell.append("\n").append_text(time)
    return cell


def _placements(row: Row) -> str:
    if not row.split_placements:
        return f"none/{len(row.placements):,}"
    # As ranges (49-55), never a list cut short: a placement is a number too.
    offsets = format_ranges(fold_ranges(sorted({p % 64 for p in row.split_placements})))
    return f"{offsets} ({len(row.split_placements):,}/{len(row.placements):,})"


def _split_time(split: float | None, tsc_hz: float | None) -> Text | None:
    """The split op's time, the unit a person reads, under its TSC cycles."""
    from splitlock_probe.host.cost import format_ns

    if split is None or not tsc_hz:
        return None
    return Text(format_ns(split / tsc_hz * 1e9), style="dim")


def summary_tables(
    all_rows: list[Row], console: Console, tsc_hz: float | None = None
) -> list[Table]:
    """One table; or, when its names make it wider than the console (long
    struct names of your own at 80 columns), one table per struct, or per
    struct and field, with the names in its title: no name is folded and
    no column is cut."""
    table = _table(all_rows, all_rows, None, tsc_hz)
    if _fits(table, console.width):
        return [table]
    by_layout: dict[str, list[Row]] = {}
    for row in all_rows:
        by_layout.setdefault(row.layout, []).append(row)
    tables = [_table(rows, all_rows, name, tsc_hz) for name, rows in by_layout.items()]
    if not all(_fits(t, console.width) for t in tables):
        # Still too wide with a field column: a table per struct and field,
        # both named in its title.
        by_field: dict[tuple[str, str], list[Row]] = {}
        for row in all_rows:
            by_field.setdefault((row.layout, row.field), []).append(row)
        tables = [_table(rows, rows, layout, tsc_hz) for (layout, _), rows in by_field.items()]
    for t in tables[:-1]:
        t.caption = None  # the key once, under the last
    return tables


def _fits(table: Table, width: int) -> bool:
    """Whether the table fits without cutting a cell of a no-wrap column (rich
    would put an ellipsis there): those need their longest cell, the others
    their longest word."""

    def need(cell: object, no_wrap: bool) -> int:
        text = cell.plain if isinstance(cell, Text) else str(cell)
        if no_wrap:
            return max((cell_len(line) for line in text.splitlines()), default=0)
        return max((cell_len(w) for w in text.split()), default=0)

    total = 0
    for column in table.columns:
        cells = [column.header, *column.cells]
        total += max(column.min_width or 0, *(need(c, column.no_wrap) for c in cells))
    return total + 2 * len(table.columns) <= width  # a gap of two between columns, edges


def _table(
    rows: list[Row], all_rows: list[Row], layout: str | None, tsc_hz: float | None = None
) -> Table:
    fields = sorted({r.field for r in all_rows})
    one_field = len(fields) == 1
    title = "split-lock scan" + (f": {layout}" if layout else "")
    title += f", field {fields[0]}" if layout and one_field else ""
    title += f": field {fields[0]}" if not layout and one_field else ""
    t = Table(
        title=title,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    if layout is None:
        t.add_column("struct" if one_field else "struct.field", no_wrap=True)
    elif not one_field:
        t.add_column("field", no_wrap=True)
    t.add_column("op", no_wrap=True)
    t.add_column("splits at", min_width=9, no_wrap=True)
    t.add_column("bits", min_width=5)
    t.add_column("TSC cycles", justify="right", no_wrap=True)
    t.add_column("ratio", justify="right", no_wrap=True)
    t.add_column("AC", justify="right", no_wrap=True)
    t.add_column("model", no_wrap=True)
    for row in rows:
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
        name: list[str | Text] = []
        if layout is None:
            name = [row.layout if one_field else f"{row.layout}.{row.field}"]
        elif not one_field:
            name = [row.field]
        t.add_row(
            *name,
            row.primitive,
            Text(_placements(row), style="bold red" if row.split_placements else "green"),
            row.split_bit_text,
            _cost_cell(split, clean, tsc_hz),
            ratio,
            f"{row.traps:,}/{row.trap_checks:,}" if row.trap_checks else "-",
            model,
        )
    t.caption = (
        "splits at: placements mod 64 (split/probed); TSC cycles: fastest batch per op, "
        "split / clean, and a split op's time under them; AC: alignment-check traps; "
        "model: probes that agree ✓, disagree ✗, inconclusive ?"
    )
    t.caption_justify = "left"
    t.caption_style = "dim"
    return t
