"""Every output format behind one interface, chosen by an enum.

A command's result is wrapped in a Report (reports.py) that says which
formats it can take. `render` turns a report into the text of one format;
`emit` sends each requested output to stdout or to the path the user named,
as files.py says: a regular file atomically, a device or FIFO written into,
every report whole or not at all.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any, Protocol

from splitlock_probe.errors import ProbeError, UsageError
from splitlock_probe.report import files
from splitlock_probe.report.files import Destination

if TYPE_CHECKING:
    from rich.console import Console

FILE_WIDTH = 100  # columns of the tables in files and pictures


class OutputFormat(str, Enum):
    TEXT = "text"  # rich tables, for people
    JSON = "json"  # one document with a schema
    JUNIT = "junit"  # JUnit XML for CI
    SVG = "svg"  # the tables as a picture
    HTML = "html"  # the tables as a web page
    CSV = "csv"  # the main table, one row per item of its JSON list


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

    def table(self) -> list[dict[str, Any]]:  # the main table's rows, from document()
        ...


@dataclass(frozen=True)
class Target:
    format: OutputFormat
    path: Destination | None  # None: stdout

    @property
    def to_stream(self) -> bool:
        """Written to our own stdout (or stderr), directly or as `-o -`."""
        return self.path is None or self.path.path is None


def _console(record: bool) -> Console:
    from splitlock_probe.report.console import SafeConsole

    return SafeConsole(
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
    if fmt is OutputFormat.CSV:
        from splitlock_probe.report.csvform import csv_text

        return csv_text(report.table())
    console = _console(record=fmt is not OutputFormat.TEXT)
    report.draw(console)
    if fmt is OutputFormat.SVG:
        return console.export_svg(title=report.title)
    if fmt is OutputFormat.HTML:
        return console.export_html(inline_styles=True)
    out = console.file
    assert isinstance(out, io.StringIO)
    return out.getvalue()


def writable(option: str, value: str) -> Destination:
    """An output option's destination, checked before any work is done."""
    return files.check(option, value)


def targets(
    as_json: bool,
    output: str | None = None,
    junit: str | None = None,
    svg: str | None = None,
    html: str | None = None,
    stderr: bool = False,
    as_csv: bool = False,
) -> list[Target]:
    """The outputs a command's options ask for; the first goes to stdout (stderr
    for `run`) unless --output names a file. `-` is stdout for every option."""
    if as_json and as_csv:
        raise UsageError("--json and --csv are two forms of the same report: give one")
    main = OutputFormat.JSON if as_json else OutputFormat.CSV if as_csv else OutputFormat.TEXT
    out = [Target(main, writable("--output", output) if output else None)]
    for fmt, option, value in (
        (OutputFormat.JUNIT, "--junit", junit),
        (OutputFormat.SVG, "--export-svg", svg),
        (OutputFormat.HTML, "--export-html", html),
    ):
        if value:
            out.append(Target(fmt, writable(option, value)))
    for t in out:
        if t.to_stream:
            files.usable_stdout(err=stderr and t.path is None)
    return out


def _terminal_text(report: Report, stderr: bool) -> str:
    """The text as the terminal (or pipe) console would draw it, captured whole."""
    from splitlock_probe.report import console

    target = console.stderr() if stderr else console.stdout()
    with target.capture() as captured:
        report.draw(target)
    return captured.get()


def emit(report: Report, wanted: Sequence[Target], stderr: bool = False) -> None:
    """Render every output first, then write them all with Ctrl-C and SIGTERM
    held: each is written whole or not at all. Files first (complete even if
    stdout's reader has gone), then stdout (stderr with `stderr`: for `run`,
    whose stdout is the command's)."""
    rendered: list[tuple[Target, str]] = []
    for t in wanted:
        if t.path is None and t.format is OutputFormat.TEXT:
            rendered.append((t, _terminal_text(report, stderr)))
        else:
            rendered.append((t, render(report, t.format)))
    with files.whole():
        for t, text in rendered:
            if t.path is not None and not t.path.stream:
                files.write(t.path, text)
        for t, text in rendered:
            if t.path is not None and t.path.stream:
                files.write(t.path, text)
        for t, text in rendered:
            if t.path is None:
                try:
                    files.write_stdout(text.encode("utf-8"), err=stderr)
                except BrokenPipeError:
                    raise
                except OSError as exc:
                    where = "stderr" if stderr else "stdout"
                    raise ProbeError(f"writing {where}: {exc.strerror or exc}") from None
