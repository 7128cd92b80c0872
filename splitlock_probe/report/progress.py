"""A progress bar on stderr while measurements run."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from splitlock_probe.plan import Plan
from splitlock_probe.report.console import stderr


def run_with_progress(request: Any, plan: Plan, execute: Callable[..., Any]) -> Any:
    columns = (
        TextColumn("measuring"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(f"({plan.probe_count:,} probes)"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=stderr(), transient=True) as bar:
        task = bar.add_task("measuring", total=len(plan.measurements))
        return execute(request, plan, lambda n: bar.advance(task, n))
