"""The command line: parse, call, render. Nothing else lives here.

rich and the compiled core are imported inside the commands, so `--help`
stays fast and `--json` never touches table code.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import click

from splitlock_probe import __version__
from splitlock_probe.detectors import NAMES as DETECTOR_NAMES
from splitlock_probe.errors import (
    ExitStatus,
    ProbeError,
    UnsupportedHost,
    UsageError,
    exit_for_broken_pipe,
)
from splitlock_probe.layouts import ALIGNS, DEFAULT_ALIGN, DEFAULT_FIELD, DEFAULT_LAYOUTS, LAYOUTS
from splitlock_probe.model import ALIASES, PRIMITIVES
from splitlock_probe.pacing import CHOICES as PACE_CHOICES
from splitlock_probe.tracing.choose import CHOICES as TRACE_CHOICES

F = TypeVar("F", bound=Callable[..., Any])
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

if TYPE_CHECKING:
    from splitlock_probe.detectors import Availability
    from splitlock_probe.host import HostState
    from splitlock_probe.report.outputs import Target
    from splitlock_probe.runner import Settings


def _split(values: Sequence[str]) -> list[str]:
    """Repeated options and comma lists both work: -p btsq,btsl -p xaddl."""
    return [v.strip() for value in values for v in value.split(",") if v.strip()]


def _choose(kind: str, values: Sequence[str], choices: Sequence[str]) -> list[str]:
    bad = [v for v in values if v not in choices]
    if bad:
        raise UsageError(f"unknown {kind} {', '.join(bad)}; choose from: {', '.join(choices)}")
    return list(dict.fromkeys(values))


def _emit_json(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def _require_probing() -> None:
    from splitlock_probe import native

    reason = native.unsupported_reason()
    if reason:
        raise UnsupportedHost(reason)


def _settings(
    state: HostState,
    detect: Sequence[str],
    batches: int,
    iterations: int,
    timeout: float,
    budget: float | None = None,
    required: Sequence[str] = (),
) -> Settings:
    from splitlock_probe.runner import Settings
    from splitlock_probe.scan import detector_availability, requested_detectors

    wanted = _choose("detector", _split(detect), DETECTOR_NAMES) if detect else DETECTOR_NAMES
    available = detector_availability(state)
    _require(required, available)
    chosen = requested_detectors(wanted, available)
    if not chosen:
        reasons = "; ".join(f"{n}: {available[n].reason}" for n in wanted)
        raise UnsupportedHost(f"no requested detector can run here ({reasons})")
    counters = tuple(c.as_dict() for c in state.pmu.counters) if "perf" in chosen else ()
    return Settings(
        chosen, batches, iterations, timeout=timeout, budget=budget, perf_counters=counters
    )


_event_option = click.option(
    "--event",
    "events",
    multiple=True,
    metavar="SPEC",
    help="Hardware counter for the perf detector, instead of the one known for this CPU: "
    "a raw code (r10f4), sysfs terms (cpu/event=0xf4,umask=0x10/) or a name "
    "(sq_misc.split_lock, ls_locks.bus_lock); perf's software events (task-clock) "
    "count anywhere, for checking. Repeatable, or comma separated.",
)


def _measure_options(f: Any) -> Any:
    for option in reversed(
        [
            click.option(
                "--detect",
                multiple=True,
                metavar="NAME[,NAME]",
                help=f"Detectors to use: {', '.join(DETECTOR_NAMES)}. "
                "[default: every one available]",
            ),
            _event_option,
            click.option(
                "--batches",
                type=click.IntRange(1, 256),
                default=15,
                show_default=True,
                help="Timed batches per measurement; the fastest batch is the op's cost.",
            ),
            click.option(
                "--iterations",
                type=click.IntRange(0),
                default=0,
                show_default=True,
                help="Ops per batch; 0 picks enough for a batch to last ~20,000 cycles.",
            ),
            click.option(
                "--timeout",
                type=click.FloatRange(min=0.1),
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


def _output_options(junit: str | None = None, stream: str = "stdout") -> Callable[[F], F]:
    """--json, --output, --export-svg, --export-html (and --junit, saying what a
    case is) for a command whose report goes to `stream`."""

    def decorate(f: F) -> F:
        options = [
            click.option("--json", "as_json", is_flag=True, help="Print one JSON document."),
            click.option(
                "-o",
                "--output",
                metavar="FILE",
                help=f"Write the report (text, or JSON with --json) to FILE instead of {stream}, "
                "atomically.",
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


def _targets(kw: dict[str, Any]) -> list[Target]:
    from splitlock_probe.report.outputs import targets

    return targets(
        kw["as_json"], kw["output"], kw.get("junit"), kw["export_svg"], kw["export_html"]
    )


def _require(required: Sequence[str], available: dict[str, Availability]) -> None:
    """--require-detector: exit 4, with the reasons, unless each can run here."""
    names = _choose("detector", _split(required), DETECTOR_NAMES)
    missing = [n for n in names if not available[n].available]
    if missing:
        reasons = "; ".join(f"{n}: {available[n].reason}" for n in missing)
        raise UnsupportedHost(f"a required detector cannot run here ({reasons})")


class _Cli(click.Group):
    """The one error boundary: a failure is one line on stderr and an exit status."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ProbeError as exc:
            click.echo(f"splitlock-probe: {exc}", err=True)
            ctx.exit(int(exc.status))
        except KeyboardInterrupt:
            click.echo("splitlock-probe: interrupted", err=True)
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


@cli.command(context_settings=CONTEXT)
@click.option(
    "--layout",
    "layouts",
    multiple=True,
    metavar="NAME[,NAME]",
    help=f"Struct layouts: {', '.join(LAYOUTS)}. [default: {', '.join(DEFAULT_LAYOUTS)}]",
)
@click.option(
    "--field",
    "fields",
    multiple=True,
    metavar="NAME[,NAME]",
    help=f"Fields the op targets. [default: {DEFAULT_FIELD}]",
)
@click.option(
    "-p",
    "--primitive",
    "primitives",
    multiple=True,
    metavar="NAME[,NAME]",
    help="Locked ops: btsq (alias legacy), btsl (alias patched), or any of "
    "`splitlock-probe primitives`. [default: btsq, btsl]",
)
@click.option(
    "--bits",
    metavar="LIST",
    help="Bit offsets: N or LO-HI, comma separated. [default: every bit of the field]",
)
@click.option(
    "--align",
    type=click.Choice([str(a) for a in ALIGNS]),
    default=str(DEFAULT_ALIGN),
    show_default=True,
    help="Placement alignment: 1 is what old KVM accepted, 4 what patched KVM and Xen "
    "compat guarantee, 8 what Xen requires of 64-bit guests.",
)
@click.option(
    "--span",
    type=click.Choice(["line", "page"]),
    default="line",
    show_default=True,
    help="line: every aligned placement across one cache line; page: every one in a page.",
)
@_measure_options
@_output_options(junit="a test case per struct x field x op x placement")
@click.option(
    "--pace",
    type=click.Choice(PACE_CHOICES),
    default="auto",
    show_default=True,
    help="Space out probes predicted to split so the kernel's log ratelimit "
    "(10 lines per 5 s) drops none; auto paces when that adds at most 30 s.",
)
@click.option(
    "--budget",
    type=click.FloatRange(min=0, min_open=True),
    metavar="SECONDS",
    help="Stop starting measurements after this long and report what was measured "
    "(for hosts where each split lock costs a 10 ms penalty).",
)
@click.option(
    "--each-bit", is_flag=True, help="JSON: one record per bit instead of bits folded per access."
)
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Progress bar on stderr. [default: when stderr is a terminal]",
)
def scan(
    layouts: tuple[str, ...],
    fields: tuple[str, ...],
    primitives: tuple[str, ...],
    bits: str | None,
    align: str,
    span: str,
    detect: tuple[str, ...],
    events: tuple[str, ...],
    batches: int,
    iterations: int,
    timeout: float,
    fail_on: str,
    required: tuple[str, ...],
    pace: str,
    budget: float | None,
    each_bit: bool,
    progress: bool | None,
    **outputs: Any,
) -> None:
    """Probe struct placements with locked ops and report which split a cache line.

    By default: Xen's vcpu_info and compat_vcpu_info, field evtchn_pending_sel,
    the legacy `lock btsq` and the patched `lock btsl`, every 4-byte-aligned
    placement across a cache line, every bit; each measured by TSC timing and
    by the alignment-check trap, and held against the model's prediction.
    """
    from splitlock_probe import host, native
    from splitlock_probe.layouts import Span
    from splitlock_probe.model import primitive
    from splitlock_probe.plan import PlanError, parse_bits
    from splitlock_probe.scan import ScanRequest, execute, plan_for, prepare

    layout_names = _choose("layout", _split(layouts) or list(DEFAULT_LAYOUTS), list(LAYOUTS))
    field_names = list(dict.fromkeys(_split(fields) or [DEFAULT_FIELD]))
    prim_names = _choose(
        "primitive", _split(primitives) or ["btsq", "btsl"], [*PRIMITIVES, *ALIASES]
    )
    try:
        bit_list = tuple(parse_bits(bits)) if bits is not None else None
    except ValueError as exc:
        raise UsageError(f"--bits: {exc}") from None
    wanted = _targets(outputs)
    _require_probing()
    state = host.state(events)
    settings = _settings(state, detect, batches, iterations, timeout, budget, required)
    request = ScanRequest(
        tuple(LAYOUTS[n] for n in layout_names),
        tuple(field_names),
        tuple(dict.fromkeys(primitive(n) for n in prim_names)),
        int(align),
        Span(span),
        bit_list,
        settings,
        fail_on,
        pace,
    )
    try:
        plan = plan_for(request, native.max_immediate())
    except PlanError as exc:
        raise UsageError(str(exc)) from None
    prepared = prepare(request, plan, state)
    notice = prepared.cost.notice(budget_given=budget is not None)
    if notice:
        click.echo(f"splitlock-probe: {notice}", err=True)

    show_progress = sys.stderr.isatty() if progress is None else progress
    if show_progress:
        from splitlock_probe.report.progress import run_with_progress

        result = run_with_progress(prepared, execute)
    else:
        result = execute(prepared)

    from splitlock_probe.report.outputs import emit
    from splitlock_probe.report.reports import ScanReport

    emit(ScanReport(result, fold=not each_bit), wanted)
    raise SystemExit(int(result.exit_status()))


@cli.command(context_settings=CONTEXT)
@click.option(
    "--op",
    "op",
    required=True,
    metavar="NAME",
    help="The locked op, e.g. btsq, btsl, btsq-imm, xaddl, cmpxchg16b (`primitives` lists all).",
)
@click.option(
    "--offset",
    type=int,
    required=True,
    help="Effective address as an offset from the start of a page (0..4095).",
)
@click.option("--bit", type=int, default=0, show_default=True, help="Bit offset (bt* ops).")
@_measure_options
@_output_options()
def probe(
    op: str,
    offset: int,
    bit: int,
    detect: tuple[str, ...],
    events: tuple[str, ...],
    batches: int,
    iterations: int,
    timeout: float,
    fail_on: str,
    required: tuple[str, ...],
    **outputs: Any,
) -> None:
    """Run one locked op at one offset and say whether it split a cache line.

    \b
    Example: the seed case, an 8-byte lock btsq 4 bytes before a line end:
      splitlock-probe probe --op btsq --offset 60 --bit 3
    """
    from splitlock_probe import host, native
    from splitlock_probe.model import Form, primitive
    from splitlock_probe.plan import PlanError
    from splitlock_probe.scan import probe_once

    prim_name = _choose("op", [op], [*PRIMITIVES, *ALIASES])[0]
    prim = primitive(prim_name)
    if not 0 <= offset < 4096:
        raise UsageError(f"--offset {offset}: give an offset within a page, 0..4095")
    wanted = _targets(outputs)
    _require_probing()
    if prim.form is Form.IMM and not 0 <= bit <= native.max_immediate():
        raise UsageError(f"{prim.name} takes an immediate bit 0..{native.max_immediate()}")
    state = host.state(events)
    settings = _settings(state, detect, batches, iterations, timeout, None, required)
    try:
        result = probe_once(prim, offset, bit, state, settings)
    except PlanError as exc:
        raise UsageError(str(exc)) from None
    from splitlock_probe.report.outputs import emit
    from splitlock_probe.report.reports import ProbeReport

    emit(ProbeReport(result, fail_on), wanted)
    raise SystemExit(int(result.exit_status(fail_on)))


@cli.command(context_settings=CONTEXT)
@_event_option
@_output_options()
def host(events: tuple[str, ...], **outputs: Any) -> None:
    """Say whether and how this host traps split locks, and what each detector can see.

    Reads /proc/cpuinfo flags, the boot command line, the boot banner in the
    kernel log, the sysctls that decide the penalty, and the PMUs in sysfs
    with the split-lock or bus-lock event of this CPU (--event checks your
    own). Set
    SPLITLOCK_PROBE_ROOT to a recorded tree to inspect another host.
    Exit 0, or 4 on a host that is not x86.
    """
    from splitlock_probe import host as host_state
    from splitlock_probe.report.outputs import emit
    from splitlock_probe.report.reports import HostReport
    from splitlock_probe.scan import detector_availability

    wanted = _targets(outputs)
    state = host_state.state(events)
    emit(HostReport(state, detector_availability(state)), wanted)
    raise SystemExit(int(ExitStatus.OK if state.x86 else ExitStatus.UNSUPPORTED))


@cli.command(context_settings=CONTEXT)
@click.option(
    "--file",
    "path",
    type=click.Path(exists=True, dir_okay=False, allow_dash=True),
    metavar="PATH",
    help="Read a saved log instead of the live /dev/kmsg; - reads stdin.",
)
@click.option(
    "-f",
    "--follow",
    is_flag=True,
    help="Keep reading; print each new event as it comes (--json: one JSON line each).",
)
@_output_options()
def log(path: str | None, follow: bool, **outputs: Any) -> None:
    """Find split-lock (#AC) and bus-lock (#DB) traps in the kernel log, per process.

    Reads the whole live ring buffer (/dev/kmsg) or a saved log in any
    wrapper: kmsg records, dmesg (plain, -H, -T, -x, -r), syslog, ISO-8601
    journal lines, or one inside another. Threads still alive get their
    executable, command line and container, and each trap address is mapped
    to a library and offset.

    \b
    Examples:
      splitlock-probe log                      the live log (root, or CAP_SYSLOG)
      journalctl -k -b -1 | splitlock-probe log --file -     the previous boot
      splitlock-probe log --follow             stream new events; Ctrl-C ends

    Exit 0; 4 when the live log cannot be read (the message says why);
    130 when --follow is interrupted (after printing the summary).
    """
    from pathlib import Path

    from splitlock_probe.kmsg.source import KernelLog
    from splitlock_probe.kmsg.tally import LogTally
    from splitlock_probe.report.logview import EVENT_SCHEMA, enrich, event_line
    from splitlock_probe.report.outputs import emit
    from splitlock_probe.report.reports import LogReport

    as_json = outputs["as_json"]
    wanted = _targets(outputs)
    reader = None if path == "-" else KernelLog(Path(path) if path else None)
    source = "stdin" if reader is None else str(reader.path)
    tally = LogTally(keep_events=not follow)
    interrupted = False
    try:
        if reader is None:
            lines: Any = sys.stdin
        else:
            lines = reader.follow() if follow else reader.read_available()
        for raw in lines:
            event = tally.feed_line(raw)
            if follow and event is not None:
                if as_json:
                    import json

                    _emit_json(json.dumps({"schema": EVENT_SCHEMA, **event.as_dict()}) + "\n")
                else:
                    click.echo(event_line(event))
    except KeyboardInterrupt:
        interrupted = True
    finally:
        overwritten = 0 if reader is None else reader.overwritten
        if reader is not None:
            reader.close()
    views = enrich(tally)
    host_mode = None
    if path is None:  # the live log: say what this host's kernel can put in it
        from splitlock_probe import host, kernel

        cpu = host.cpu()
        host_mode = kernel.read(cpu.flags, tally.mode, host.is_x86(cpu))
    if follow and as_json:  # the events went out as JSON lines; files still get the document
        wanted = [t for t in wanted if t.path is not None]
    report = LogReport(tally, views, source, overwritten, host_mode)
    emit(report, wanted)
    raise SystemExit(int(ExitStatus.INTERRUPTED if interrupted else ExitStatus.OK))


RUN_CONTEXT = {**CONTEXT, "ignore_unknown_options": True, "allow_interspersed_args": False}


@cli.command(context_settings=RUN_CONTEXT)
@click.option(
    "--detect",
    multiple=True,
    metavar="NAME[,NAME]",
    help="Detectors to use: kmsg (#AC/#DB lines), perf (counters inherited by the whole "
    "tree). [default: every one available]",
)
@_event_option
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
    type=click.Choice(TRACE_CHOICES),
    is_flag=False,
    flag_value="auto",
    default=None,
    help="Trace alignment traps (EFLAGS.AC) in every thread, to find each locked op with "
    "a misaligned operand: works on any x86 host, VMs and AMD included. auto: the "
    "preloaded agent for dynamically linked programs, ptrace for static or set-user-ID ones.",
)
@click.option(
    "--require-detector",
    "required",
    multiple=True,
    metavar="NAME[,NAME]",
    help="Exit 4 without running the command unless these detectors can run here "
    "(kmsg, perf, trace, or any).",
)
@_output_options(
    junit="a case for the command, and one per trap site (kernel log or --trace)", stream="stderr"
)
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def run(
    detect: tuple[str, ...],
    events: tuple[str, ...],
    fail_on: str,
    trace: str | None,
    required: tuple[str, ...],
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

    With --trace, every thread runs with the x86 alignment check on, and each
    locked op with a misaligned operand is found: a split lock, or a hazard
    that splits at another placement of its data. That works on any x86 host,
    VMs and AMD included, where the kernel sees nothing.

    \b
    Examples:
      splitlock-probe run -- ./my-test-suite
      splitlock-probe run --fail-on split --junit sl.xml -- make check
      splitlock-probe run --trace --fail-on hazard -- ./my-test-suite

    Exit status: the command's own when it failed (128+N when signal N killed
    it; 126/127 when it could not be run); else 1 with --fail-on split (or
    hazard) when one was seen; 4 with --require-detector when no detector can
    see split locks here (the command is not run); else 0.
    """
    from splitlock_probe import host as host_state
    from splitlock_probe.report.outputs import emit
    from splitlock_probe.report.reports import RunReport
    from splitlock_probe.scan import detector_availability
    from splitlock_probe.tracing.choose import availability as trace_availability
    from splitlock_probe.tracking.result import RunRequest, exit_status
    from splitlock_probe.tracking.session import RUN_DETECTORS, execute

    wanted_detectors = (
        _choose("detector", _split(detect), RUN_DETECTORS) if detect else list(RUN_DETECTORS)
    )
    wanted = _targets(outputs)
    state = host_state.state(events)
    everything = detector_availability(state)
    available = {n: everything[n] for n in RUN_DETECTORS}
    if trace is not None:
        available["trace"] = trace_availability(trace)
        wanted_detectors.append("trace")
    if fail_on == "hazard" and trace is None:
        raise UsageError("--fail-on hazard needs --trace: only the tracer sees hazards")
    names = _split(required)
    if "any" in names:
        if not any(available[n].available for n in wanted_detectors):
            reasons = "; ".join(f"{n}: {available[n].reason}" for n in wanted_detectors)
            raise UnsupportedHost(f"no detector can see split locks here ({reasons})")
        names = [n for n in names if n != "any"]
    _require(_choose("detector", names, [*RUN_DETECTORS, "trace"]), available)
    request = RunRequest(
        tuple(command),
        tuple(n for n in wanted_detectors if available[n].available),
        fail_on,
        trace=trace if trace is not None and available["trace"].available else None,
    )
    result = execute(request, state, {n: available[n] for n in wanted_detectors})
    emit(RunReport(result), wanted, stderr=True)
    raise SystemExit(exit_status(result))


def _listen_address(value: str) -> tuple[str, int]:
    """ADDR:PORT, [IPv6]:PORT or :PORT (all addresses)."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise UsageError(f"--listen {value}: give ADDR:PORT, e.g. 127.0.0.1:9977 or [::1]:9977")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port)


@cli.command(context_settings=CONTEXT)
@click.option(
    "--interval",
    type=click.FloatRange(min=0.05),
    default=2.0,
    show_default=True,
    metavar="SECONDS",
    help="How often the table, the JSON lines and the metrics file are renewed.",
)
@click.option("--once", is_flag=True, help="Print one snapshot after one interval, then exit.")
@click.option(
    "--since-boot",
    is_flag=True,
    help="Count the trap lines already in the kernel's ring buffer too, not only new ones "
    "(with --once: the host's story so far, for cron).",
)
@click.option(
    "--top",
    type=click.IntRange(1),
    default=20,
    show_default=True,
    help="Processes shown in the table and in each JSON snapshot.",
)
@click.option(
    "--limit",
    type=click.IntRange(1),
    default=200,
    show_default=True,
    help="Processes (and per-comm metric series) kept; the quietest age out beyond it.",
)
@click.option(
    "--prometheus-file",
    metavar="PATH",
    help="Write Prometheus metrics to PATH (atomically) every interval, for node_exporter's "
    "textfile collector (name it *.prom).",
)
@click.option(
    "--listen",
    metavar="ADDR:PORT",
    help="Serve Prometheus metrics on http://ADDR:PORT/metrics (port 0 picks a free one).",
)
@_event_option
@_output_options()
def watch(
    interval: float,
    once: bool,
    since_boot: bool,
    top: int,
    limit: int,
    prometheus_file: str | None,
    listen: str | None,
    events: tuple[str, ...],
    **outputs: Any,
) -> None:
    """Watch the whole host: new split-lock (#AC) and bus-lock (#DB) traps per
    process, per-CPU PMU counts, the mode and the penalty; live.

    The table is redrawn every --interval seconds on a terminal (a snapshot
    per interval when stdout is not one; with --json, one JSON document per
    line). Memory stays bounded however long it runs (--limit). Reading the
    live log needs root (or CAP_SYSLOG) where kernel.dmesg_restrict=1; per-CPU
    counts need root or perf_event_paranoid <= 0.

    \b
    Examples:
      splitlock-probe watch
      splitlock-probe watch --prometheus-file /var/lib/node_exporter/splitlock.prom
      splitlock-probe watch --listen 127.0.0.1:9977
      splitlock-probe watch --once --since-boot --json      (cron, scripts)

    Exit status: 0 after --once; 130 when interrupted (after the last
    snapshot is written); 4 when the kernel log cannot be read.
    """
    from splitlock_probe import host as host_state
    from splitlock_probe.kmsg.source import KernelLog
    from splitlock_probe.report.outputs import emit, writable
    from splitlock_probe.report.reports import WatchReport
    from splitlock_probe.report.watchview import WatchScreen
    from splitlock_probe.scan import detector_availability
    from splitlock_probe.tracking.tasklog import online_cpus
    from splitlock_probe.watching.cpus import CpuCounters
    from splitlock_probe.watching.follow import follow
    from splitlock_probe.watching.session import Watch, WatchRequest

    wanted = _targets(outputs)
    textfile = writable("--prometheus-file", prometheus_file) if prometheus_file else None
    address = _listen_address(listen) if listen else None
    state = host_state.state(events)
    everything = detector_availability(state)
    available = {n: everything[n] for n in ("kmsg", "perf")}
    log = KernelLog()  # KernelLogUnreadable: exit 4, with the reason
    if state.pmu.available:
        cpus = CpuCounters.open(state.pmu.counters, online_cpus())
    else:
        cpus = CpuCounters(error=state.pmu.reason)
    session = Watch(WatchRequest(interval, since_boot, limit, top), state, available, log, cpus)
    screen = WatchScreen(outputs["as_json"], outputs["output"] is None and not once)
    try:
        snap, interrupted = follow(
            session, screen, textfile, address, once,
            lambda text: click.echo(f"splitlock-probe: {text}", err=True),
        )  # fmt: skip
    finally:
        session.close()
    if once or outputs["output"] is not None:
        emit(WatchReport(snap), wanted)
    else:  # the screen showed every snapshot; files still get the last one
        emit(WatchReport(snap), [t for t in wanted if t.path is not None])
    raise SystemExit(int(ExitStatus.INTERRUPTED if interrupted else ExitStatus.OK))


@cli.command(context_settings=CONTEXT)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.option("-o", "--output", metavar="FILE", help="Write to FILE instead of stdout, atomically.")
def primitives(as_json: bool, output: str | None) -> None:
    """List the locked ops the core has, with their widths and forms."""
    from splitlock_probe.report.outputs import emit, targets
    from splitlock_probe.report.reports import PrimitivesReport

    emit(PrimitivesReport(), targets(as_json, output))


@cli.command(context_settings=CONTEXT)
@click.argument("old", type=click.Path(exists=True, dir_okay=False))
@click.argument("new", type=click.Path(exists=True, dir_okay=False))
@_output_options()
def compare(old: str, new: str, **outputs: Any) -> None:
    """Say what changed between two `scan --json` documents.

    Two kernels, two hosts, two builds: placements that newly split (a
    regression: exit 1), placements fixed, latency changes beyond the noise
    both scans show, detectors gained or lost.

    \b
    Example:
      splitlock-probe scan --json -o before.json   # old kernel
      splitlock-probe scan --json -o after.json    # patched kernel
      splitlock-probe compare before.json after.json
    """
    from splitlock_probe.compare import compare as compare_scans
    from splitlock_probe.report.compareview import exit_status
    from splitlock_probe.report.outputs import emit
    from splitlock_probe.report.reports import CompareReport

    wanted = _targets(outputs)
    comparison = compare_scans(old, new)
    emit(CompareReport(comparison), wanted)
    raise SystemExit(int(exit_status(comparison)))


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point."""
    cli.main(args=argv, prog_name="splitlock-probe")
