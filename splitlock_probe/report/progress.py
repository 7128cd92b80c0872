"""A progress bar on stderr while measurements run."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from splitlock_probe.report.console import stderr
from splitlock_probe.scan.request import ScanResult


def run_with_progress(result: ScanResult, execute: Callable[..., Any]) -> Any:
    plan = result.plan
    columns = (
        TextColumn("measuring"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(f"({plan.probe_count:,} probes)"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=stderr(), transient=True) as bar:
        task = bar.add_task("measuring", total=len(plan.measurements))
        return execute(result, lambda n: bar.advance(task, n))
