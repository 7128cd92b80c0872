"""Options and helpers the commands share: list parsing, the measurement and
output options, and the checks every probing command makes first."""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import click

from splitlock_probe.detectors import NAMES as DETECTOR_NAMES
from splitlock_probe.errors import UnsupportedHost
from splitlock_probe.text import inert

if TYPE_CHECKING:
    from splitlock_probe.report.outputs import Target

F = TypeVar("F", bound=Callable[..., Any])
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class AnyBaseInt(click.ParamType):  # type: ignore[type-arg,unused-ignore]
    """An integer in any base Python reads: 60, 0x3c, 0o74, 0b111100, -8."""

    name = "integer"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        text = str(value).strip()
        try:
            if len(text) > 40:  # no offset here is that long; int() of a huge one is slow
                raise ValueError
            return int(text, 0)
        except ValueError:
            self.fail(f"{text[:40]!r} is not an integer (60, 0x3c and -8 are)", param, ctx)


ANY_BASE_INT = AnyBaseInt()


def split_values(values: Sequence[str]) -> list[str]:
    """Repeated options and comma lists both work: -p btsq,btsl -p xaddl."""
    return [v.strip() for value in values for v in value.split(",") if v.strip()]


def emit_json(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


class Seconds(click.FloatRange):
    """A finite number of seconds within a range: nan, which every range
    comparison lets through, and inf are refused as usage errors."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        seconds = super().convert(value, param, ctx)
        if not math.isfinite(seconds):
            self.fail(f"{seconds} is not a finite number of seconds", param, ctx)
        return seconds


MAX_ITERATIONS = 1_000_000_000  # a batch of them takes minutes: --timeout ends it first


def say(text: str) -> None:
    """One line for the user on stderr, prefixed with the tool's name. Any
    control character a caller forgot to escape is escaped here."""
    click.echo(f"splitlock-probe: {inert(text)}", err=True)


def require_probing() -> None:
    """UnsupportedHost (exit 4) where the compiled core cannot probe."""
    from splitlock_probe import native

    reason = native.unsupported_reason()
    if reason:
        raise UnsupportedHost(reason)


event_option = click.option(
    "-e",
    "--event",
    "events",
    multiple=True,
    metavar="SPEC",
    help="Hardware counter for the perf detector, instead of the one known for this CPU: "
    "a raw code (r10f4), sysfs terms (cpu/event=0xf4,umask=0x10/) or a name "
    "(sq_misc.split_lock, ls_locks.bus_lock); perf's software events (task-clock) "
    "count anywhere, for checking. Repeatable, or comma separated.",
)


def measure_options(f: Any) -> Any:
    """The options of the commands that measure probes (scan, probe)."""
    for option in reversed(
        [
            click.option(
                "--detect",
                multiple=True,
                metavar="NAME[,NAME]",
                help=f"Detectors to use: {', '.join(DETECTOR_NAMES)}. "
                "[default: every one available]",
            ),
            event_option,
            click.option(
                "--batches",
                type=click.IntRange(1, 256),
                default=15,
                show_default=True,
                help="Timed batches per measurement; the fastest batch is the op's cost.",
            ),
            click.option(
                "--iterations",
                type=click.IntRange(0, MAX_ITERATIONS),
                default=0,
                show_default=True,
                help="Ops per batch; 0 picks enough for a batch to last ~20,000 cycles.",
            ),
            click.option(
                "--timeout",
                type=Seconds(min=0.1, max=86_400),
                default=10.0,
                show_default=True,
                help="Seconds one measurement may take before its worker is killed.",
            ),
            click.option(
                "--fail-on",
                type=click.Choice(["none", "split"]),
                default="none",
                show_default=True,
                help="Exit 1 when a probe splits (the CI gate).",
            ),
            click.option(
                "--require-detector",
                "required",
                multiple=True,
                metavar="NAME[,NAME]",
                help="Exit 4 unless these detectors can run here (e.g. kmsg on a CI runner "
                "that must be bare metal with split-lock detection).",
            ),
        ]
    ):
        f = option(f)
    return f


quiet_option = click.option(
    "-q", "--quiet", is_flag=True,
    help="Leave out the header lines (host, kernel, each detector) before the tables; "
    "the tables and the verdict line stay.",
)  # fmt: skip


def output_options(
    junit: str | None = None,
    stream: str = "stdout",
    json_help: str = "Print one JSON document.",
) -> Callable[[F], F]:
    """--json, --output, --export-svg, --export-html (and --junit, saying what a
    case is) for a command whose report goes to `stream`."""

    def decorate(f: F) -> F:
        options = [
            click.option("--json", "as_json", is_flag=True, help=json_help),
            click.option(
                "--csv",
                "as_csv",
                is_flag=True,
                help="Print the main table as CSV instead: one header line, one row per "
                "item of the JSON list it comes from, numbers raw.",
            ),
            click.option(
                "-o",
                "--output",
                metavar="FILE",
                help=f"Write the report (text, JSON or CSV) to FILE instead of {stream}: "
                "atomically for a regular file, written into for a device or FIFO; - is stdout.",
            ),
            click.option(
                "--export-svg", metavar="FILE", help="Also write the tables as an SVG picture."
            ),
            click.option(
                "--export-html", metavar="FILE", help="Also write the tables as an HTML page."
            ),
        ]
        if junit:
            options.append(
                click.option("--junit", metavar="FILE", help=f"Also write JUnit XML: {junit}.")
            )
        for option in reversed(options):
            f = option(f)
        return f

    return decorate


def targets(kw: dict[str, Any], stderr: bool = False) -> list[Target]:
    """Where the report goes, from the output options (checked before any work;
    stderr: the report's stream is stderr, as for `run`)."""
    from splitlock_probe.report.outputs import targets as output_targets

    return output_targets(
        kw["as_json"], kw["output"], kw.get("junit"), kw["export_svg"], kw["export_html"], stderr,
        kw.get("as_csv", False),
    )  # fmt: skip
