"""The command line: the root group, the one error boundary, and main().

Each command lives in its own module (parse, call, render); this one only
adds them. rich and the compiled core are imported inside the commands, so
`--help` stays fast and `--json` never touches table code.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import click

from splitlock_probe import __version__
from splitlock_probe.cli.compare import compare
from splitlock_probe.cli.host import host
from splitlock_probe.cli.log import log
from splitlock_probe.cli.options import CONTEXT, say
from splitlock_probe.cli.primitives import primitives
from splitlock_probe.cli.probe import probe
from splitlock_probe.cli.run import run
from splitlock_probe.cli.scan import scan
from splitlock_probe.cli.watch import watch
from splitlock_probe.errors import ExitStatus, ProbeError, exit_for_broken_pipe


class _Cli(click.Group):
    """The one error boundary: a failure is one line on stderr and an exit status."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ProbeError as exc:
            say(str(exc))
            ctx.exit(int(exc.status))
        except KeyboardInterrupt:
            say("interrupted")
            ctx.exit(int(ExitStatus.INTERRUPTED))
        except BrokenPipeError:  # `... | head`: nobody reads the rest
            exit_for_broken_pipe(sys.stdout.fileno())


@click.group(cls=_Cli, context_settings=CONTEXT)
@click.version_option(__version__, prog_name="splitlock-probe")
def cli() -> None:
    """Find x86 split-lock hazards and prove them on real hardware.

    A locked read-modify-write whose operand crosses a 64-byte cache line
    takes a bus lock: hundreds of times slower, and it stalls every core.

    \b
    Start with:
      splitlock-probe scan                      the Xen vcpu_info scan
      splitlock-probe scan -p patched --fail-on split   the CI gate
      splitlock-probe probe --op btsq --offset 60       one op, one offset
      splitlock-probe host                      can this host trap split locks?
      splitlock-probe log                       who split-locked on this host
      splitlock-probe run --trace -- ./tests    which locked ops of a program are misaligned
      splitlock-probe watch                     the whole host, live (Prometheus export)
      splitlock-probe compare old.json new.json what changed between scans

    Exit status: 0 ok, 1 finding, 2 usage, 3 error, 4 unsupported host or
    nothing measured, 130 interrupted. See docs/ for more.
    """


for command in (scan, probe, host, log, run, watch, primitives, compare):
    cli.add_command(command)


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point."""
    cli.main(args=argv, prog_name="splitlock-probe")
