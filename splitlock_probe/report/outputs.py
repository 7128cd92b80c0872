"""Every output format behind one interface, chosen by an enum.

A command's result is wrapped in a Report (reports.py) that says which
formats it can take. `render` turns a report into the text of one format;
`emit` sends each requested output to stdout or, written atomically, to the
file the user named: a reader never sees half a file, and an interrupted
run leaves the old file, never a torn one.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from splitlock_probe.errors import ProbeError, UsageError

if TYPE_CHECKING:
    from rich.console import Console

FILE_WIDTH = 100  # columns of the tables in files and pictures


class OutputFormat(str, Enum):
    TEXT = "text"  # rich tables, for people
    JSON = "json"  # one document with a schema
    JUNIT = "junit"  # JUnit XML for CI
    SVG = "svg"  # the tables as a picture
    HTML = "html"  # the tables as a web page


class Report(Protocol):
    """A command's result, as every format it claims sees it."""

    @property
    def title(self) -> str: ...

    @property
    def formats(self) -> frozenset[OutputFormat]: ...

    @property
    def list_key(self) -> str | None:  # the JSON list written one item per line
        ...

    def draw(self, console: Console) -> None: ...

    def document(self) -> dict[str, Any]: ...

    def junit(self) -> str: ...


@dataclass(frozen=True)
class Target:
    format: OutputFormat
    path: Path | None  # None: stdout


def _console(record: bool) -> Console:
    from rich.console import Console

    return Console(
        file=io.StringIO(),
        width=FILE_WIDTH,
        record=record,
        force_terminal=record,  # pictures keep their colours; text files stay plain
        color_system="truecolor" if record else None,
        markup=False,
        highlight=False,
        soft_wrap=False,
    )


def render(report: Report, fmt: OutputFormat) -> str:
    """The text of `report` in `fmt`."""
    if fmt not in report.formats:
        raise UsageError(f"{report.title} has no {fmt.value} output")
    if fmt is OutputFormat.JSON:
        from splitlock_probe.report.jsondoc import dumps

        return dumps(report.document(), report.list_key or "")
    if fmt is OutputFormat.JUNIT:
        return report.junit()
    console = _console(record=fmt is not OutputFormat.TEXT)
    report.draw(console)
    if fmt is OutputFormat.SVG:
        return console.export_svg(title=report.title)
    if fmt is OutputFormat.HTML:
        return console.export_html(inline_styles=True)
    out = console.file
    assert isinstance(out, io.StringIO)
    return out.getvalue()


def write_atomic(path: Path, text: str) -> None:
    """Write beside the target, flush to disk, then rename over it."""
    directory = path.parent
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def writable(option: str, value: str) -> Path:
    """The path of an output file, checked before any work is done."""
    path = Path(value)
    if path.is_dir():
        raise UsageError(f"{option} {value}: is a directory")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise UsageError(f"{option} {value}: no directory {parent}")
    if not os.access(parent, os.W_OK):
        raise UsageError(f"{option} {value}: cannot write in {parent}")
    return path


def targets(
    as_json: bool,
    output: str | None = None,
    junit: str | None = None,
    svg: str | None = None,
    html: str | None = None,
) -> list[Target]:
    """The outputs a command's options ask for; the first goes to stdout unless --output."""
    main = OutputFormat.JSON if as_json else OutputFormat.TEXT
    out = [Target(main, writable("--output", output) if output else None)]
    for fmt, option, value in (
        (OutputFormat.JUNIT, "--junit", junit),
        (OutputFormat.SVG, "--export-svg", svg),
        (OutputFormat.HTML, "--export-html", html),
    ):
        if value:
            out.append(Target(fmt, writable(option, value)))
    return out


def emit(report: Report, wanted: Sequence[Target], stderr: bool = False) -> None:
    """Files first (complete even if stdout's reader has gone), then stdout
    (stderr with `stderr`: for `run`, whose stdout is the command's)."""
    for t in wanted:
        if t.path is not None:
            try:
                write_atomic(t.path, render(report, t.format))
            except OSError as exc:
                raise ProbeError(f"writing {t.path}: {exc.strerror}") from None
    for t in wanted:
        if t.path is None:
            if t.format is OutputFormat.TEXT:
                from splitlock_probe.report import console

                report.draw(console.stderr() if stderr else console.stdout())
            else:
                stream = sys.stderr if stderr else sys.stdout
                stream.write(render(report, t.format))
                stream.flush()
