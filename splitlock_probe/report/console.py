"""The rich Consoles: stdout for reports, stderr for progress and errors, and
the recording ones for files and pictures. Every one of them is a
SafeConsole: whatever text reaches it, a control character in it is shown
escaped, never sent to the terminal (the views escape outside text
themselves, so tables keep their width; this is the backstop)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from functools import cache
from typing import Any

from rich.console import Console
from rich.segment import Segment

from splitlock_probe.errors import exit_for_broken_pipe

# Every C0 control but newline and tab, DEL, and C1: what a terminal obeys.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _escape_controls(text: str) -> str:
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


class SafeConsole(Console):
    """A Console that escapes control characters in every segment it renders."""

    _depth = 0

    def render(self, renderable: Any, options: Any = None) -> Iterable[Segment]:
        self._depth += 1
        try:  # children render through here too: escape once, at the top
            segments = list(super().render(renderable, options))
        finally:
            self._depth -= 1
        return segments if self._depth else _safe(segments)

    def on_broken_pipe(self) -> None:
        # rich's default exits 1, which our contract reserves for findings.
        exit_for_broken_pipe(self.file.fileno())


def _safe(segments: list[Segment]) -> Iterator[Segment]:
    for seg in segments:
        if seg.control or not _CONTROL.search(seg.text):
            yield seg
        else:
            yield Segment(_escape_controls(seg.text), seg.style, seg.control)


COLOR_CHOICES = ("auto", "always", "never")
_color = "auto"  # --color; rich's own NO_COLOR and FORCE_COLOR decide under auto


def choose_color(when: str) -> None:
    """--color: set before the first console is made."""
    global _color
    _color = when


def _color_options() -> dict[str, Any]:
    if _color == "always":
        return {"force_terminal": True}
    if _color == "never":
        return {"no_color": True, "color_system": None}
    return {}


@cache
def stdout() -> Console:
    return SafeConsole(markup=False, highlight=False, soft_wrap=False, **_color_options())


@cache
def stderr() -> Console:
    return SafeConsole(stderr=True, markup=False, highlight=False, **_color_options())
