"""The two rich Consoles: stdout for reports, stderr for progress and errors."""

from __future__ import annotations

from functools import cache

from rich.console import Console

from splitlock_probe.errors import exit_for_broken_pipe


class _Console(Console):
    def on_broken_pipe(self) -> None:
        # rich's default exits 1, which our contract reserves for findings.
        exit_for_broken_pipe(self.file.fileno())


@cache
def stdout() -> Console:
    return _Console(markup=False, highlight=False, soft_wrap=False)


@cache
def stderr() -> Console:
    return _Console(stderr=True, markup=False, highlight=False)
