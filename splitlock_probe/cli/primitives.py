"""`primitives`: the locked ops the core has."""

from __future__ import annotations

import click

from splitlock_probe.cli.options import CONTEXT


@click.command(context_settings=CONTEXT)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.option("--csv", "as_csv", is_flag=True, help="Print the table as CSV instead.")
@click.option("-o", "--output", metavar="FILE", help="Write to FILE instead of stdout, atomically.")
def primitives(as_json: bool, as_csv: bool, output: str | None) -> None:
    """List the locked ops the core has, with their widths and forms."""
    from splitlock_probe.report.outputs import emit, targets
    from splitlock_probe.report.reports import PrimitivesReport

    emit(PrimitivesReport(), targets(as_json, output, as_csv=as_csv))
