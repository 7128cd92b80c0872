"""`scan`: struct placements x locked ops, measured, judged, reported."""

from __future__ import annotations

import sys
from typing import Any

import click

from splitlock_probe.cli.options import (
    CONTEXT,
    measure_options,
    output_options,
    require_probing,
    say,
    split_values,
    targets,
)
from splitlock_probe.errors import UsageError, choose
from splitlock_probe.model.access import ALIASES, PRIMITIVES
from splitlock_probe.model.layouts import (
    ALIGNS,
    DEFAULT_ALIGN,
    DEFAULT_FIELD,
    DEFAULT_LAYOUTS,
    LAYOUTS,
)
from splitlock_probe.scan.pacing import CHOICES as PACE_CHOICES


@click.command(context_settings=CONTEXT)
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
    help=f"Fields the op targets. [default: each layout's own: {DEFAULT_FIELD} of the "
    "vcpu_info layouts, evtchn_pending of shared_info]",
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
    help="Bit offsets of the bit-test ops (bts, btr, btc): N or LO-HI, comma separated. "
    "[default: every bit of the field]",
)
@click.option(
    "--outside-field",
    is_flag=True,
    help="Allow --bits outside the field: a register bit offset that reaches the "
    "neighbouring bytes on purpose.",
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
@measure_options
@output_options(junit="a test case per struct x field x op x placement")
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
    outside_field: bool,
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
    from splitlock_probe.host import state as host
    from splitlock_probe.host.cost import quick_here
    from splitlock_probe.model.access import primitive
    from splitlock_probe.model.layouts import Span
    from splitlock_probe.native.probe import max_immediate
    from splitlock_probe.scan.pipeline import execute, plan_for, prepare
    from splitlock_probe.scan.plan import PlanError, parse_bits
    from splitlock_probe.scan.request import ScanRequest, settings_for

    layout_names = choose("layout", split_values(layouts) or list(DEFAULT_LAYOUTS), list(LAYOUTS))
    field_names = list(dict.fromkeys(split_values(fields)))
    prim_names = choose(
        "primitive", split_values(primitives) or ["btsq", "btsl"], [*PRIMITIVES, *ALIASES]
    )
    prims = tuple(dict.fromkeys(primitive(n) for n in prim_names))
    try:
        bit_list = tuple(parse_bits(bits)) if bits is not None else None
    except ValueError as exc:
        raise UsageError(f"--bits: {exc}") from None
    if bit_list is not None and not any(p.insn.is_bit_test for p in prims):
        raise UsageError(
            f"--bits: {', '.join(p.name for p in prims)} "
            f"take{'s' if len(prims) == 1 else ''} no bit operand; "
            "--bits is for bts, btr and btc"
        )
    wanted = targets(outputs)
    require_probing()
    state = host.state(events)
    settings = settings_for(
        state, split_values(detect), batches, iterations, timeout, budget, split_values(required)
    )
    request = ScanRequest(
        tuple(LAYOUTS[n] for n in layout_names),
        tuple(field_names),
        prims,
        int(align),
        Span(span),
        bit_list,
        settings,
        fail_on,
        pace,
        outside_field,
    )
    try:
        plan = plan_for(request, max_immediate())
    except PlanError as exc:
        raise UsageError(str(exc)) from None
    prepared = prepare(request, plan, state)
    prepared.lock_cost, prepared.lock_cost_note = quick_here()  # before the log is watched
    notice = prepared.cost.notice(budget_given=budget is not None)
    if notice:
        say(notice)

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
