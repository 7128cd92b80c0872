"""The root group and the one error boundary; each command lives in its own
module (parse, call, render) and this one only adds them. rich and the
compiled core are imported inside the commands, so `--help` stays fast and
`--json` never touches table code."""

from __future__ import annotations

import os
import signal
import sys
import traceback
from typing import Any

import click

from splitlock_probe import __version__
from splitlock_probe.cli.audit import audit
from splitlock_probe.cli.compare import compare
from splitlock_probe.cli.cost import cost
from splitlock_probe.cli.host import host
from splitlock_probe.cli.layout import layout
from splitlock_probe.cli.log import log
from splitlock_probe.cli.options import CONTEXT, say
from splitlock_probe.cli.primitives import primitives
from splitlock_probe.cli.probe import probe
from splitlock_probe.cli.run import run
from splitlock_probe.cli.scan import scan
from splitlock_probe.cli.watch import watch
from splitlock_probe.errors import ExitStatus, Interrupted, ProbeError, exit_for_broken_pipe
from splitlock_probe.text import escape

DEBUG_ENV = "SPLITLOCK_PROBE_DEBUG"  # set to 1: an unexpected error shows its traceback


class _Cli(click.Group):
    """The one error boundary: a failure is one line on stderr and an exit status.
    An unexpected exception is exit 3 (never 1, the status of a finding)."""

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        """click's standalone main, but a Ctrl-C while click still parses the
        command line is ours to report (130), not click's "Aborted!" and 1,
        the status of a finding."""
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)  # type: ignore[call-overload]
        try:
            rv = super().main(*args, standalone_mode=False, **kwargs)  # type: ignore[call-overload]
        except click.exceptions.Abort as exc:
            if isinstance(exc.__cause__, KeyboardInterrupt):
                raise exc.__cause__ from None  # cli.main() says it in one line, 128 + N
            say("aborted")
            sys.exit(int(ExitStatus.RUNTIME))
        except click.ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code)
        sys.exit(rv if isinstance(rv, int) else 0)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ProbeError as exc:
            say(str(exc))
            ctx.exit(int(exc.status))
        except Interrupted as exc:
            say(f"interrupted ({exc.name})" if exc.signum != signal.SIGINT else "interrupted")
            ctx.exit(exc.status)
        except KeyboardInterrupt:
            say("interrupted")
            ctx.exit(int(ExitStatus.INTERRUPTED))
        except BrokenPipeError:  # `... | head`: nobody reads the rest
            exit_for_broken_pipe(sys.stdout.fileno())
        except (click.exceptions.Exit, click.ClickException, click.exceptions.Abort):
            raise
        except Exception as exc:  # anything else is our bug, said in one line
            if os.environ.get(DEBUG_ENV) == "1":
                traceback.print_exc()
            say(
                f"internal error: {type(exc).__name__}: {escape(str(exc))[:300]} "
                f"({DEBUG_ENV}=1 shows the traceback)"
            )
            ctx.exit(int(ExitStatus.RUNTIME))


def _version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    """--version: ours, the core's build and the libraries that shape results."""
    if not value or ctx.resilient_parsing:
        return
    from importlib import metadata

    from splitlock_probe import native

    def version(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "missing"

    names = ("cffi", "capstone", "pyelftools", "click", "rich", "psutil")
    libraries = ", ".join(f"{n} {version(n)}" for n in names)
    click.echo(f"splitlock-probe {__version__}\ncore: {native.build()}\n"
               f"python {sys.version.split()[0]}; {libraries}")  # fmt: skip
    ctx.exit(0)


def _color(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    from splitlock_probe.report.console import choose_color

    choose_color(value)
    return value


@click.group(cls=_Cli, context_settings=CONTEXT)
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_version,
    help="Show the version, the compiled core's build and the libraries', and exit.",
)
@click.option("--color", type=click.Choice(("auto", "always", "never")), default="auto",
              show_default=True, expose_value=False, is_eager=True, callback=_color,
              help="Colour in text output: auto is colour on a terminal (NO_COLOR=1 turns it "
              "off, FORCE_COLOR=1 on, as rich reads them).")  # fmt: skip
def cli() -> None:
    """Find x86 split-lock hazards and prove them on real hardware.

    A locked read-modify-write whose operand crosses a 64-byte cache line
    takes a bus lock: hundreds of times slower, and it stalls every core.

    \b
    Start with:
      splitlock-probe scan                      the Xen vcpu_info scan
      splitlock-probe scan -p patched --fail-on split   the CI gate
      splitlock-probe probe --op btsq --offset 60       one op, one offset
      splitlock-probe layout --from foo.h --struct s    your own struct: which fields can split
      splitlock-probe audit build/prog libfoo.so  every locked op of a binary, judged statically
      splitlock-probe host                      can this host trap split locks?
      splitlock-probe cost                      what a split lock costs here, and who charges
      splitlock-probe log                       who split-locked on this host
      splitlock-probe run --trace -- ./tests    which locked ops of a program are misaligned
      splitlock-probe watch                     the whole host, live (Prometheus export)
      splitlock-probe compare old.json new.json what changed between scans

    \b
    Exit status: 0 done, nothing forbidden found; 1 a finding (--fail-on, a
    regression, a verdict against the model); 2 usage error; 3 runtime
    error (SPLITLOCK_PROBE_DEBUG=1 shows its traceback); 4 unsupported host,
    or nothing could be measured or seen where it had to be; 126/127 run:
    the command could not be run or found; 128+N run: the command died of
    signal N, else ours when signal N (SIGINT 130, SIGHUP 129, SIGTERM 143)
    ended us, after a partial report; 141 stdout's reader went away.

    \b
    Docs: docs/ in the source; an installed copy has them in
    PREFIX/share/doc/splitlock-probe (usage.md: every command; json.md;
    exit-codes.md; detectors.md; ci.md).
    """


for command in (scan, probe, layout, audit, host, cost, log, run, watch, primitives, compare):
    cli.add_command(command)
