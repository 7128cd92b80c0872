"""`run -- COMMAND`: follow a command's whole tree and say which threads split-locked."""

from __future__ import annotations

from typing import Any

import click

from splitlock_probe.cli.options import (
    CONTEXT,
    event_option,
    output_options,
    quiet_option,
    split_values,
    targets,
)
from splitlock_probe.run.names import ANY, RUN_DETECTORS, TRACE
from splitlock_probe.run.trace.choose import CHOICES as TRACE_CHOICES
from splitlock_probe.run.trace.choose import METHODS

RUN_CONTEXT = {**CONTEXT, "ignore_unknown_options": True, "allow_interspersed_args": False}


def _cache_dir(value: str | None) -> str | None:
    """--site-cache DIR, made (with its parents, 0700) when it is not there yet:
    a CI job's first run has an empty cache path."""
    import os

    if value is None:
        return None
    try:
        os.makedirs(value, mode=0o700, exist_ok=True)
    except OSError as exc:
        raise click.BadParameter(f"{value}: {exc.strerror}", param_hint="--site-cache") from None
    if not os.access(value, os.W_OK | os.X_OK):
        raise click.BadParameter(f"{value}: not writable", param_hint="--site-cache")
    from splitlock_probe.run.trace.siteserver import ours_alone

    st = os.stat(value)
    if not ours_alone(st):
        raise click.BadParameter(
            f"{value}: owned by uid {st.st_uid} with mode {st.st_mode & 0o7777:04o}; the site "
            "lists there decide where the agent patches code, so it must be yours and "
            "writable by you alone (chmod go-w, or another directory)",
            param_hint="--site-cache",
        )
    return value


class RunCommand(click.Command):
    """`--trace=MODE` is `--trace --tracer MODE`: a bare --trace never takes the
    command's first word as its value (`run --trace make check` runs make)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        takes_value = {
            name
            for p in self.params
            if isinstance(p, click.Option) and not p.is_flag and not p.count
            for name in p.opts
        }
        out: list[str] = []
        k = 0
        while k < len(args):
            arg = args[k]
            if arg == "--" or not arg.startswith("-"):  # the command starts here
                out.extend(args[k:])
                break
            if arg.startswith("--trace="):
                out.extend(["--trace", "--tracer", arg[len("--trace=") :]])
            elif arg in takes_value and k + 1 < len(args):  # `-o FILE`: FILE is no command
                out.extend(args[k : k + 2])
                k += 1
            else:
                out.append(arg)
            k += 1
        return super().parse_args(ctx, out)


@click.command(cls=RunCommand, context_settings=RUN_CONTEXT)
@click.option(
    "--detect",
    multiple=True,
    metavar="NAME[,NAME]",
    help=f"Detectors to use: {', '.join(RUN_DETECTORS)} (kmsg: #AC/#DB lines; perf: "
    "counters inherited by the whole tree; --trace adds trace). [default: every one available]",
)
@event_option
@click.option(
    "--fail-on",
    type=click.Choice(["none", "split", "hazard"]),
    default="none",
    show_default=True,
    help="Exit 1 when the command split-locked (hazard: also when --trace saw a locked op "
    "misaligned inside a line, which splits at another placement), and did not fail on "
    "its own.",
)
@click.option(
    "--trace",
    "trace",
    is_flag=True,
    help="Find each locked op with a misaligned operand, by breakpoints at the locked "
    "instructions or alignment traps (EFLAGS.AC): works on any x86 host, VMs and AMD included.",
)
@click.option(
    "--tracer",
    type=click.Choice(TRACE_CHOICES),
    default=None,
    help="How to trace (implies --trace): auto (the default) takes the preloaded agent for "
    "dynamically linked programs, ptrace for static or set-user-ID ones and env -i; "
    "--trace=MODE says the same.",
)
@click.option(
    "--method",
    type=click.Choice(METHODS),
    default="auto",
    show_default=True,
    help="What --trace traps. breakpoint (the agent's default): only the locked "
    "instructions of each loaded image, at about the cost of the program's own atomics; "
    "not code outside ELF images (JIT) nor the C library's internals. alignment (ptrace's "
    "only one): every misaligned access, so all code, at up to thousands of times the "
    "program's run time.",
)
@click.option(
    "--site-cache",
    metavar="DIR",
    type=click.Path(file_okay=False, dir_okay=True),
    default=None,
    envvar="SPLITLOCK_PROBE_SITE_CACHE",
    callback=lambda ctx, param, value: _cache_dir(value),
    help="Keep breakpoint mode's site lists here, per version of each file, so later runs "
    "skip the sweep of each image (about 0.5 s for the C library, 10 s for gcc's cc1). "
    "Made if missing. Also from SPLITLOCK_PROBE_SITE_CACHE. [default: none; each run "
    "sweeps the images it loads once]",
)
@click.option(
    "--require-detector",
    "required",
    multiple=True,
    metavar="NAME[,NAME]",
    help="Exit 4 without running the command unless these detectors can run here "
    f"({', '.join([*RUN_DETECTORS, TRACE])}, or {ANY}: at least one).",
)
@click.option(
    "--exit-with-command",
    is_flag=True,
    help="Stop following when COMMAND itself exits, and say how many of its descendants "
    "were still alive. [default: wait for the whole tree it started, as its subreaper]",
)
@output_options(
    junit="a case for the command, and one per trap site (kernel log or --trace)", stream="stderr"
)
@quiet_option
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def run(
    detect: tuple[str, ...],
    events: tuple[str, ...],
    fail_on: str,
    trace: bool,
    tracer: str | None,
    method: str,
    site_cache: str | None,
    required: tuple[str, ...],
    exit_with_command: bool,
    quiet: bool,
    command: tuple[str, ...],
    **outputs: Any,
) -> None:
    """Run COMMAND, follow its whole process tree, and say which threads split-locked.

    Every thread and child the command starts is followed (perf task
    records; /proc polling where perf is refused). While it runs, the kernel
    log's #AC/#DB lines that name one of its threads are collected, with the
    trap address mapped to library + offset, and the PMU's split-lock or
    bus-lock counter counts the whole tree where there is one.

    COMMAND keeps its stdin, stdout and stderr; signals sent to us are passed
    on; the report goes to stderr (or to -o FILE), since stdout is the
    command's.

    With --trace, each locked op with a misaligned operand is found: a split
    lock, or a hazard that splits at another placement of its data. The agent
    puts a breakpoint at every locked instruction of the images the program
    loads; ptrace (and --method alignment) runs every thread with the x86
    alignment check on. That works on any x86 host, VMs and AMD included,
    where the kernel sees nothing.

    \b
    Examples:
      splitlock-probe run -- ./my-test-suite
      splitlock-probe run --fail-on split --junit sl.xml -- make check
      splitlock-probe run --trace --fail-on hazard -- ./my-test-suite

    Exit status: the command's own when it failed (128+N when signal N killed
    it; 126/127 when it could not be run); else 1 with --fail-on split (or
    hazard) when one was seen; 4 with --require-detector when no detector can
    see split locks here (the command is not run), and 4 with --fail-on when
    no detector could see them or --trace missed programs of the tree (a gate
    that saw nothing does not pass); else 0.
    """
    import dataclasses

    from splitlock_probe.host import state as host_state
    from splitlock_probe.host.cost import quick_here
    from splitlock_probe.report.outputs import emit
    from splitlock_probe.report.reports import RunReport
    from splitlock_probe.run.request import prepare
    from splitlock_probe.run.session import run_command

    wanted = targets(outputs, stderr=True)
    state = host_state.state(events)
    mode = tracer or ("auto" if trace or method != "auto" or site_cache else None)
    request, detectors = prepare(
        command, split_values(detect), fail_on, mode, split_values(required), state
    )
    request = dataclasses.replace(
        request, exit_with_command=exit_with_command, trace_method=method, site_cache=site_cache
    )
    result = run_command(request, state, detectors)
    if result.trace is not None and result.trace.split:
        result.lock_cost, _ = quick_here()  # what those split locks cost here
    emit(RunReport(result, quiet), wanted, stderr=True)
    raise SystemExit(result.exit_status())
