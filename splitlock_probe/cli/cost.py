"""`cost`: what a split lock costs on this host, who charges for it, and what
it does to a neighbour on another CPU."""

from __future__ import annotations

from typing import Any

import click

from splitlock_probe.cli.options import CONTEXT, output_options, require_probing, targets


@click.command(context_settings=CONTEXT)
@click.option("--quick", is_flag=True, help="Only the quick measurement (as in `host`): ~0.1 s.")
@output_options()
def cost(quick: bool, **outputs: Any) -> None:
    """Measure what one split lock costs here, say who charges for it, and what
    it does to the neighbours.

    Times 20,000 single `lock btsq` ops one by one, split and aligned, then
    the same op spaced beyond two scheduler ticks and beyond a second (a cost
    charged per lock stays; one charged per window shows only spaced out; 10
    ms is the kernel's penalty), and runs a memory stream and aligned atomics
    on one CPU beside split locks on another. Classes: native (a bus lock and
    nothing else), trapped (something below traps every split lock), windowed
    (once per window), penalized (the kernel's 10 ms sleep), unknown.

    \b
    Examples:
      splitlock-probe cost
      splitlock-probe cost --json -o cost.json --export-svg cost.svg

    Exit 0; 4 on a host that cannot probe.
    """
    from splitlock_probe.host.cost import measure
    from splitlock_probe.host.cpus import online_cpus
    from splitlock_probe.report.outputs import emit
    from splitlock_probe.report.reports import CostReport

    wanted = targets(outputs)
    require_probing()
    result = measure(full=not quick, cpus=online_cpus())
    emit(CostReport(result), wanted)
    raise SystemExit(0)
