"""`compare OLD NEW`: what changed between two `scan --json` documents."""

from __future__ import annotations

from typing import Any

import click

from splitlock_probe.cli.options import CONTEXT, output_options, targets


@click.command(context_settings=CONTEXT)
@click.argument("old", type=click.Path(exists=True, dir_okay=False))
@click.argument("new", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--by",
    type=click.Choice(["case", "placement"]),
    default="case",
    show_default=True,
    help="case: layout x field x op x placement; placement: the op left out, to hold a "
    "scan of one op against a scan of another (-p legacy against -p patched).",
)
@click.option(
    "--only-common",
    is_flag=True,
    help="Do not count a case that splits in NEW and is absent from OLD as a regression.",
)
@output_options()
def compare(old: str, new: str, by: str, only_common: bool, **outputs: Any) -> None:
    """Say what changed between two `scan --json` documents.

    Two kernels, two hosts, two builds: placements that newly split (a
    regression: exit 1), including those that split in NEW and were not in
    OLD at all (unless --only-common); placements fixed; settings that
    differ; latency changes beyond the noise both scans show; detectors
    gained or lost. Two scans with no case in common are a usage error.

    \b
    Example:
      splitlock-probe scan --json -o before.json   # old kernel
      splitlock-probe scan --json -o after.json    # patched kernel
      splitlock-probe compare before.json after.json
      splitlock-probe compare --by placement legacy.json patched.json
    """
    from splitlock_probe.report.outputs import emit
    from splitlock_probe.report.reports import CompareReport
    from splitlock_probe.scan.compare import compare as compare_scans

    wanted = targets(outputs)
    comparison = compare_scans(old, new, by, only_common)
    emit(CompareReport(comparison), wanted)
    raise SystemExit(int(comparison.exit_status()))
