"""`scan`: struct placements x locked ops, measured, judged, reported."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click

from splitlock_probe.cli.options import (
    CONTEXT,
    Seconds,
    measure_options,
    output_options,
    quiet_option,
    require_probing,
    say,
    split_values,
    targets,
)
from splitlock_probe.errors import UsageError, choose
from splitlock_probe.model.access import ALIASES, PRIMITIVES
from splitlock_probe.model.layouts import (
    DEFAULT_ALIGN,
    DEFAULT_FIELD,
    DEFAULT_LAYOUTS,
    LAYOUTS,
    MAX_ALIGN,
)
from splitlock_probe.scan.pacing import CHOICES as PACE_CHOICES
from splitlock_probe.structs.types import ABI_CHOICES

if TYPE_CHECKING:
    from splitlock_probe.model.layouts import Layout


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
@click.option("--from", "sources", multiple=True, metavar="FILE",
              help="Your own structs instead of the Xen layouts: an ELF with DWARF, BTF "
              "(/sys/kernel/btf/vmlinux) or a C source or header, as for `layout`. "
              "Repeatable; give --struct.")  # fmt: skip
@click.option("--struct", "struct_names", multiple=True, metavar="NAME[,NAME]",
              help="The structs of --from to place and probe, at every placement their own "
              "alignment allows (--align overrides).")  # fmt: skip
@click.option(
    "--abi",
    type=click.Choice(ABI_CHOICES),
    default=None,
    help="For --from: x86-64, i386 or both [default: both for C, the ELF's own].",
)
@click.option(
    "--cflags", default="", metavar="FLAGS", help="For a C source in --from: -I, -D and the like."
)
@click.option(
    "--align",
    type=click.IntRange(1, MAX_ALIGN),
    default=None,
    metavar="N",
    help=f"Placement alignment, a power of two: 1 is what old KVM accepted, 4 what "
    f"patched KVM and Xen compat guarantee, 8 what Xen requires of 64-bit guests, 8 or "
    f"64 what an allocator such as kmalloc or a cache-aligned slab gives. [default: "
    f"{DEFAULT_ALIGN} for the Xen layouts; a --from struct's own alignment]",
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
@quiet_option
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
    type=Seconds(min=0, min_open=True, max=7 * 86_400),
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
    sources: tuple[str, ...],
    struct_names: tuple[str, ...],
    abi: str | None,
    cflags: str,
    align: int | None,
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
    quiet: bool,
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
    from splitlock_probe.model.layouts import Span, check_align
    from splitlock_probe.native.probe import max_immediate
    from splitlock_probe.scan.pipeline import execute, plan_for, prepare
    from splitlock_probe.scan.plan import PlanError, parse_bits
    from splitlock_probe.scan.request import ScanRequest, settings_for

    chosen = _layouts(split_values(layouts), sources, split_values(struct_names), abi, cflags)
    if align is not None:
        try:
            check_align(align)
        except ValueError as exc:
            raise UsageError(f"--align: {exc}") from None
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
        chosen,
        tuple(field_names),
        prims,
        align,
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

    emit(ScanReport(result, fold=not each_bit, quiet=quiet), wanted)
    raise SystemExit(int(result.exit_status()))


def _layouts(
    names: list[str], sources: tuple[str, ...], structs: list[str], abi: str | None, cflags: str
) -> tuple[Layout, ...]:
    """The Xen layouts named (both vcpu_info ones by default, unless --from
    brings structs of your own), then the --from structs, in each ABI read."""
    if bool(sources) != bool(structs):
        raise UsageError("--from FILE and --struct NAME go together")
    if abi is not None and not sources:
        raise UsageError("--abi is for the structs of --from")
    builtin = names or ([] if sources else list(DEFAULT_LAYOUTS))
    out = [LAYOUTS[n] for n in choose("layout", builtin, list(LAYOUTS))]
    if sources:
        from splitlock_probe.structs.placing import as_layout
        from splitlock_probe.structs.source import load, select

        out.extend(as_layout(s) for s in select(load(sources, abi, cflags), structs))
    return tuple(out)
