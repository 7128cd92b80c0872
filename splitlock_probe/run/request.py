"""What `run` will use to watch its command: the detectors asked for that can
run here, the tracer, and the --require-detector and --fail-on checks, all
decided before the command starts."""

from __future__ import annotations

from collections.abc import Sequence

from splitlock_probe.detectors import Availability
from splitlock_probe.detectors.availability import detector_availability, require
from splitlock_probe.errors import UnsupportedHost, UsageError, choose
from splitlock_probe.host.state import HostState
from splitlock_probe.run.names import ANY, RUN_DETECTORS, TRACE
from splitlock_probe.run.result import RunRequest
from splitlock_probe.run.trace.choose import availability as trace_availability

__all__ = ["ANY", "RUN_DETECTORS", "TRACE"]


def prepare(
    argv: Sequence[str],
    detect: Sequence[str],
    fail_on: str,
    trace: str | None,
    required: Sequence[str],
    state: HostState,
) -> tuple[RunRequest, dict[str, Availability]]:
    """The request to execute and the availability of every detector it considered."""
    wanted = choose("detector", detect, RUN_DETECTORS) if detect else list(RUN_DETECTORS)
    everything = detector_availability(state)
    available = {n: everything[n] for n in RUN_DETECTORS}
    if trace is not None:
        available[TRACE] = trace_availability(trace)
        wanted.append(TRACE)
    if fail_on == "hazard" and trace is None:
        raise UsageError("--fail-on hazard needs --trace: only the tracer sees hazards")
    names = list(required)
    if ANY in names:
        if not any(available[n].available for n in wanted):
            reasons = "; ".join(f"{n}: {available[n].reason}" for n in wanted)
            raise UnsupportedHost(f"no detector can see split locks here ({reasons})")
        names = [n for n in names if n != ANY]
    if TRACE in names and trace is None:
        raise UsageError("--require-detector trace needs --trace")
    require(choose("detector", names, [*RUN_DETECTORS, TRACE]), available, list(available))
    request = RunRequest(
        tuple(argv),
        tuple(n for n in wanted if available[n].available),
        fail_on,
        trace=trace if trace is not None and available[TRACE].available else None,
    )
    return request, {n: available[n] for n in wanted}
