"""`host`: does this host trap split locks, in which mode, and what can each
detector see."""

from __future__ import annotations

from typing import Any

import click

from splitlock_probe.cli.options import CONTEXT, event_option, output_options, targets


@click.command(context_settings=CONTEXT)
@event_option
@output_options()
def host(events: tuple[str, ...], **outputs: Any) -> None:
    """Say whether and how this host traps split locks, and what each detector can see.

    Reads /proc/cpuinfo flags, the boot command line, the boot banner in the
    kernel log, the sysctls that decide the penalty, and the PMUs in sysfs
    with the split-lock or bus-lock event of this CPU (--event checks your
    own). Set
    SPLITLOCK_PROBE_ROOT to a recorded tree to inspect another host.
    Exit 0, or 4 on a host that is not x86.
    """
    from splitlock_probe.detectors.availability import detector_availability
    from splitlock_probe.host import state as host_state
    from splitlock_probe.host.cost import quick_here
    from splitlock_probe.report.outputs import emit
    from splitlock_probe.report.reports import HostReport

    wanted = targets(outputs)
    state = host_state.state(events)
    cost, note = quick_here() if state.x86 else (None, "not measured: not an x86 CPU")
    emit(HostReport(state, detector_availability(state), cost, note), wanted)
    raise SystemExit(int(state.exit_status()))
