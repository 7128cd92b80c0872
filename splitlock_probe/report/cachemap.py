"""The cache-line map: where in a line the struct sits, against each primitive.

Columns are the struct's placement modulo 64 (0..63); a cell says what the
probes at that placement did, all bits folded.
"""

from __future__ import annotations

from rich.console import Group
from rich.text import Text

from splitlock_probe.report.aggregate import Cell, Row

LEGEND = (
    ("█", "bold red", "split (every bit)"),
    ("▄", "red", "split (some bits)"),
    ("·", "green", "clean"),
    ("?", "yellow", "inconclusive"),
    ("!", "bold magenta", "disagrees with the model"),
    ("#", "cyan", "faulted (#GP: never ran)"),
)


def _glyph(cell: Cell | None) -> tuple[str, str]:
    if cell is None:
        return " ", ""
    if cell.disagrees:
        return LEGEND[4][0], LEGEND[4][1]
    if cell.bits_split and cell.bits_split == cell.bits_total:
        return LEGEND[0][0], LEGEND[0][1]
    if cell.bits_split:
        return LEGEND[1][0], LEGEND[1][1]
    if cell.inconclusive:
        return LEGEND[3][0], LEGEND[3][1]
    if cell.faulted:
        return LEGEND[5][0], LEGEND[5][1]
    return LEGEND[2][0], LEGEND[2][1]


def _ruler(pad: int) -> Text:
    marks = [" "] * 64
    for pos in range(0, 64, 8):
        for k, ch in enumerate(str(pos)):
            marks[pos + k] = ch
    return Text(" " * pad + "".join(marks), style="dim", no_wrap=True)


def cache_map(table: list[Row], width: int = 80) -> Group:
    """The map; labels go on their own lines when label and 64 cells do not fit `width`."""
    one_field = len({r.field for r in table}) == 1
    labels = [
        f"{r.layout} {r.primitive}" if one_field else f"{r.layout}.{r.field} {r.primitive}"
        for r in table
    ]
    pad = max((len(label) for label in labels), default=0) + 2
    inline = pad + 64 <= width
    if not inline:
        pad = 2
    lines = [Text("cache-line map: struct placement mod 64 (columns) per op", style="bold")]
    lines.append(_ruler(pad))
    for label, row in zip(labels, table, strict=True):
        line = Text(label.ljust(pad) if inline else " " * pad, no_wrap=True)
        if not inline:
            lines.append(Text(label, style="dim"))
        for col in range(64):
            ch, style = _glyph(row.cells.get(col))
            line.append(ch, style=style)
        lines.append(line)
    lines.extend(_legend(width))
    return Group(*lines)


def _legend(width: int) -> list[Text]:
    """The key, wrapped between its entries, never inside one."""
    out = [Text("  ", no_wrap=True)]
    for ch, style, meaning in LEGEND:
        entry = 1 + 1 + len(meaning)
        if len(out[-1]) > 2 and len(out[-1]) + entry > width:
            out.append(Text("  ", no_wrap=True))
        out[-1].append(ch, style=style)
        out[-1].append(f" {meaning}  ")
    return out
