"""`probe`: one locked op at one offset, measured and judged."""

from __future__ import annotations

from typing import Any

import click

from splitlock_probe.cli.options import (
    ANY_BASE_INT,
    CONTEXT,
    measure_options,
    output_options,
    require_probing,
    split_values,
    targets,
)
from splitlock_probe.errors import UsageError, choose
from splitlock_probe.model.access import ALIASES, PRIMITIVES


@click.command(context_settings=CONTEXT)
@click.option(
    "--op",
    "op",
    required=True,
    metavar="NAME",
    help="The locked op, e.g. btsq, btsl, btsq-imm, xaddl, cmpxchg16b (`primitives` lists all).",
)
@click.option(
    "--offset",
    type=ANY_BASE_INT,
    required=True,
    help="Effective address as an offset from the start of a page (0..4095; 0x3c works too).",
)
@click.option(
    "--bit",
    type=ANY_BASE_INT,
    default=None,
    help="Bit offset, for the bit-test ops (bts, btr, btc). [default: 0]",
)
@measure_options
@output_options()
def probe(
    op: str,
    offset: int,
    bit: int | None,
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
    from splitlock_probe.host import state as host
    from splitlock_probe.host.cost import quick_here
    from splitlock_probe.model.access import Form, primitive
    from splitlock_probe.native.probe import max_immediate
    from splitlock_probe.scan.pipeline import probe_once
    from splitlock_probe.scan.plan import PlanError
    from splitlock_probe.scan.request import settings_for

    prim_name = choose("op", [op], [*PRIMITIVES, *ALIASES])[0]
    prim = primitive(prim_name)
    if bit is not None and not prim.insn.is_bit_test:
        raise UsageError(f"--bit: {prim.name} takes no bit operand; --bit is for bts, btr, btc")
    bit = 0 if bit is None else bit
    if not 0 <= offset < 4096:
        raise UsageError(f"--offset {offset}: give an offset within a page, 0..4095")
    wanted = targets(outputs)
    require_probing()
    if prim.form is Form.IMM and not 0 <= bit <= max_immediate():
        raise UsageError(f"{prim.name} takes an immediate bit 0..{max_immediate()}")
    state = host.state(events)
    settings = settings_for(
        state, split_values(detect), batches, iterations, timeout, None, split_values(required)
    )
    lock_cost, lock_cost_note = quick_here()
    try:
        result = probe_once(prim, offset, bit, state, settings, fail_on)
    except PlanError as exc:
        raise UsageError(str(exc)) from None
    result.lock_cost, result.lock_cost_note = lock_cost, lock_cost_note
    from splitlock_probe.report.outputs import emit
    from splitlock_probe.report.reports import ProbeReport

    emit(ProbeReport(result), wanted)
    raise SystemExit(int(result.exit_status()))
