"""Worker isolation for real: a crash or a hang costs one measurement, never the scan."""

from __future__ import annotations

import os

from splitlock_probe.model.access import primitive
from splitlock_probe.model.layouts import LAYOUTS, Span
from splitlock_probe.scan.plan import build
from splitlock_probe.scan.runner import Settings, run
from splitlock_probe.scan.worker import INJECT_ENV


def _plan():  # type: ignore[no-untyped-def]
    return build(
        (LAYOUTS["compat_vcpu_info"],), ["evtchn_pending_sel"], (primitive("btsq"),), 4, Span.LINE
    )


def test_a_crashing_probe_costs_one_measurement() -> None:
    plan = _plan()
    victim = next(m for m in plan.measurements if m.ea == 60)  # placement 56
    env = {**os.environ, INJECT_ENV: f"crash:{victim.ea}"}
    result = run(plan.measurements, Settings(), env=env)
    failed = {i: o for i, o in result.outcomes.items() if o.failure}
    assert list(failed) == [victim.index]
    failure = failed[victim.index].failure
    assert failure is not None and failure.kind == "crashed" and "SIGSEGV" in failure.detail
    assert result.worker_restarts == 1
    assert len(result.outcomes) == len(plan.measurements)
    assert all(o.timing for i, o in result.outcomes.items() if i != victim.index)


def test_a_hanging_probe_times_out_and_the_scan_goes_on() -> None:
    plan = _plan()
    victim = next(m for m in plan.measurements if m.ea == 8)
    env = {**os.environ, INJECT_ENV: f"hang:{victim.ea}"}
    result = run(plan.measurements, Settings(timeout=1.0), env=env)
    failure = result.outcomes[victim.index].failure
    assert failure is not None and failure.kind == "timeout"
    assert sum(1 for o in result.outcomes.values() if o.failure) == 1
    assert len(result.outcomes) == len(plan.measurements)


def test_progress_is_reported_per_measurement() -> None:
    plan = _plan()
    ticks: list[int] = []
    run(plan.measurements, Settings(batches=3), progress=ticks.append)
    assert sum(ticks) == len(plan.measurements)
