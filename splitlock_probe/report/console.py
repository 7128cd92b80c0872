"""The two rich Consoles: stdout for reports, stderr for progress and errors."""

from __future__ import annotations

from functools import cache

from rich.console import Console


@cache
def stdout() -> Console:
    return Console(markup=False, highlight=False, soft_wrap=False)


@cache
def stderr() -> Console:
    return Console(stderr=True, markup=False, highlight=False)
