"""`compare OLD NEW`: what changed between two `scan --json` documents."""

from __future__ import annotations

from typing import Any

import click

from splitlock_probe.cli.options import CONTEXT, output_options, targets


@click.command(context_settings=CONTEXT)
@click.argument("old", type=click.Path(exists=True, dir_okay=False))
@click.argument("new", type=click.Path(exists=True, dir_okay=False))
@output_options()
def compare(old: str, new: str, **outputs: Any) -> None:
    """Say what changed between two `scan --json` documents.

    Two kernels, two hosts, two builds: placements that newly split (a
    regression: exit 1), placements fixed, latency changes beyond the noise
    both scans show, detectors gained or lost.

    \b
    Example:
      splitlock-probe scan --json -o before.json   # old kernel
      splitlock-probe scan --json -o after.json    # patched kernel
      splitlock-probe compare before.json after.json
    """
    from splitlock_probe.report.outputs import emit
    from splitlock_probe.report.reports import CompareReport
    from splitlock_probe.scan.compare import compare as compare_scans

    wanted = targets(outputs)
    comparison = compare_scans(old, new)
    emit(CompareReport(comparison), wanted)
    raise SystemExit(int(comparison.exit_status()))
