"""A locked-op site as a block of lines (audit, run --trace): at 80 columns
a wide table of wrapped cells interleaves their lines; a block reads, and
greps, line by line."""

from __future__ import annotations

from typing import TYPE_CHECKING

from splitlock_probe.text import shown

if TYPE_CHECKING:
    from rich.table import Table

    from splitlock_probe.binary.data import DataPlace


def site_grid() -> Table:
    """Two columns: the verdict, and the site's block."""
    from rich.table import Table

    grid = Table.grid(padding=(0, 2))
    grid.add_column(no_wrap=True)
    grid.add_column(overflow="fold")
    return grid


def site_lines(where: str, instruction: str, data: DataPlace | None) -> list[str]:
    """Where it is, the instruction, what it hit and the seed's bug class."""
    lines = [where, f"  {shown(instruction)}"]
    if data is not None:
        lines.append(f"  {shown(data.what())}")
        bug = data.bug_class()
        if bug:
            lines.append(f"  {bug}")
    return lines
