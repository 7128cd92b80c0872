"""`layout`: pahole's view of a struct plus the hazard of each locked op on
each field, for people (a table per struct) and programs (layout/v1)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from splitlock_probe.model.access import LINE
from splitlock_probe.scan.plan import fold_ranges, format_ranges
from splitlock_probe.structs.hazards import FieldHazard, worst_placement
from splitlock_probe.structs.types import Struct
from splitlock_probe.text import counted, shown

if TYPE_CHECKING:
    from rich.console import Console

LAYOUT_SCHEMA = "splitlock-probe/layout/v1"


def layout_document(rows: list[tuple[Struct, list[FieldHazard]]], op: str | None) -> dict[str, Any]:
    from splitlock_probe.report.jsondoc import tool

    return {
        "schema": LAYOUT_SCHEMA,
        "tool": tool(),
        "op": op,
        "structs": [
            {
                "name": s.name,
                "kind": s.kind,
                "abi": s.abi,
                "size": s.size,
                "align": s.align,
                "align_source": s.align_source,
                "fields": [
                    {
                        **h.member.as_dict(),
                        "op_width": h.width,
                        "hazard": h.hazard,
                        "split_placements": list(h.split_at),
                    }
                    for h in hazards
                ],
            }
            for s, hazards in rows
        ],
        "hazards": sum(1 for _, hs in rows for h in hs if h.hazard),
    }


def draw_layout(rows: list[tuple[Struct, list[FieldHazard]]], console: Console) -> None:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    for s, hazards in rows:
        worst = worst_placement(s, hazards)
        title = f"{s.kind} {shown(s.name)} ({s.abi}): {s.size:,} bytes, aligned {s.align}"
        t = Table(box=box.SIMPLE_HEAD, pad_edge=False, title=title, title_justify="left")
        for column in ("offset", "size", "field", "type", "splits at"):
            t.add_column(column, justify="right" if column in ("offset", "size") else "left",
                         overflow="fold")  # fmt: skip
        boundary = LINE - worst  # where a line ends, at the worst placement
        for h in hazards:
            m = h.member
            while boundary <= m.offset:
                t.add_row("", "", Text(f"-- line ends (placement {worst}) --",
                                       style="dim"), "", "")  # fmt: skip
                boundary += LINE
            where = f"{m.offset}" + (f":{(m.bit_offset or 0) % 8}" if m.bitfield else "")
            split = (
                Text(format_ranges(fold_ranges(list(h.split_at))), style="bold red")
                if h.hazard
                else Text("bitfield" if m.bitfield else "-" if h.width else "no locked op",
                          style="dim")
            )  # fmt: skip
            t.add_row(where, str(m.size), shown(m.name), shown(m.type), split)
        console.print(t)
        console.print(Text(f"alignment: {s.align_source}", style="dim"))
    n = sum(1 for _, hs in rows for h in hs if h.hazard)
    console.print(
        Text(f"{counted(n, 'field')} can split a line", style="bold red")
        if n
        else Text("no field can split a line at any placement its struct allows", style="green")
    )
