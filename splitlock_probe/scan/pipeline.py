"""A scan, end to end: plan -> run (with the kernel log watched) -> judge.
The CLI renders what this returns."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

from splitlock_probe.detectors import kernel_log, misery
from splitlock_probe.detectors.availability import detector_availability
from splitlock_probe.host.state import HostState
from splitlock_probe.model.access import Primitive
from splitlock_probe.scan import runner
from splitlock_probe.scan.pacing import BURST, INTERVAL_S
from splitlock_probe.scan.plan import (
    Measurement,
    Plan,
    baseline_measurement,
    build,
    check_in_arena,
)
from splitlock_probe.scan.request import Cost, ScanRequest, ScanResult, SingleProbe
from splitlock_probe.scan.verdict import Context, judge

PACE_AUTO_LIMIT_S = 30.0  # auto paces when pacing adds at most this much
TRAPS_PER_SPLIT_MEASUREMENT = 2  # the timing loop and the retry after detection comes back


def reads_log(settings: runner.Settings, state: HostState) -> bool:
    """The scan reads the kernel log: kmsg is used, and the kernel prints trap lines here."""
    return kernel_log.NAME in settings.detectors and kernel_log.logs_lines(
        state.kernel.effective_mode
    )


def for_host(settings: runner.Settings, state: HostState) -> runner.Settings:
    """Fresh threads where the kernel's evidence is per task (log lines, penalty sleeps)."""
    per_task = misery.NAME in settings.detectors or reads_log(settings, state)
    return dataclasses.replace(settings, fresh_threads=per_task)


def cost_of(plan: Plan, state: HostState, settings: runner.Settings, pace: str) -> Cost:
    """The penalty and pacing time a scan will take, and whether to pace."""
    n = sum(1 for m in plan.measurements if runner.predicted_split(m))
    penalty = n * TRAPS_PER_SPLIT_MEASUREMENT * misery.KERNEL_SLEEP_MS / 1000
    if misery.NAME not in settings.detectors:
        penalty = 0.0
    pacing = max(0, n - BURST) / BURST * INTERVAL_S
    if not reads_log(settings, state):
        return Cost(n, penalty, 0.0, False, "no log lines to pace: the kernel prints none here")
    if pace == "never":
        return Cost(n, penalty, pacing, False, "--pace never: suppressed lines are counted")
    if pace == "always":
        return Cost(n, penalty, pacing, True, "--pace always")
    if pacing <= PACE_AUTO_LIMIT_S:
        return Cost(n, penalty, pacing, True, f"{n} lines expected: paced under the ratelimit")
    return Cost(
        n,
        penalty,
        pacing,
        False,
        f"pacing {n} lines would add {pacing:.0f} s (> {PACE_AUTO_LIMIT_S:.0f} s): "
        "not paced, suppressed lines are counted (--pace always to pace)",
    )


def plan_for(request: ScanRequest, imm_max: int = 63) -> Plan:
    return build(
        request.layouts,
        request.fields,
        request.primitives,
        request.align,
        request.span,
        request.bits,
        imm_max,
        request.outside_field,
    )


def prepare(request: ScanRequest, plan: Plan, state: HostState) -> ScanResult:
    """The result to fill: availability and the cost, known before anything runs."""
    settings = for_host(request.settings, state)
    cost = cost_of(plan, state, settings, request.pace)
    request = dataclasses.replace(request, settings=dataclasses.replace(settings, pace=cost.paced))
    return ScanResult(request, state, detector_availability(state), plan, runner.ProbeRun(), cost)


def run_watched(
    measurements: Sequence[Measurement],
    state: HostState,
    settings: runner.Settings,
    cost: Cost,
    progress: Callable[[int], None] | None = None,
    env: dict[str, str] | None = None,
) -> tuple[runner.ProbeRun, kernel_log.ScanLog | None]:
    """Run measurements with the kernel log read from its current end: older
    lines never count, and each new trap line is filed under its probe thread."""
    from splitlock_probe.host.kmsg.source import KernelLog

    if not reads_log(settings, state):
        return runner.run(measurements, settings, progress, env), None
    with KernelLog() as log:
        log.seek_end()
        run = runner.run(measurements, settings, progress, env)
        scan_log = kernel_log.ScanLog(state.kernel.effective_mode, cost.paced, cost.pace_reason)
        scan_log.tally.feed(log.read_available())
        scan_log.overwritten = log.overwritten
    scan_log.attribute({o.tid: o.comm for o in run.outcomes.values() if o.tid})
    return run, scan_log


def context(
    state: HostState,
    settings: runner.Settings,
    run: runner.ProbeRun,
    log: kernel_log.ScanLog | None,
) -> Context:
    return Context(run.tsc_hz, settings.detectors, state.kernel.effective_mode, log)


def execute(
    result: ScanResult,
    progress: Callable[[int], None] | None = None,
    env: dict[str, str] | None = None,
) -> ScanResult:
    settings = result.request.settings
    result.run, result.log = run_watched(
        result.plan.measurements, result.host, settings, result.cost, progress, env
    )
    judge_all(result)
    return result


def judge_all(result: ScanResult) -> None:
    plan, run = result.plan, result.run
    ctx = context(result.host, result.request.settings, run, result.log)
    predictions = {p.measurement: p.predicted for p in plan.probes}
    for m in plan.measurements:
        outcome = run.outcomes.get(m.index)
        if outcome is None:
            continue
        baseline = run.outcomes.get(plan.baselines[m.primitive.name])
        predicted = predictions.get(m.index) or m.primitive.predict(m.access)
        result.judgements[m.index] = judge(outcome, baseline, predicted, ctx)


def probe_once(
    primitive: Primitive,
    offset: int,
    bit: int,
    state: HostState,
    settings: runner.Settings,
    fail_on: str = "none",
    env: dict[str, str] | None = None,
) -> SingleProbe:
    access = check_in_arena(primitive, offset, bit)
    predicted = primitive.predict(access)
    baseline = baseline_measurement(primitive, 0)
    target = Measurement(1, primitive, offset, primitive.exec_bit(bit), access)
    one = Plan(probes=[], measurements=[baseline, target], baselines={primitive.name: 0})
    settings = for_host(settings, state)
    cost = cost_of(one, state, settings, "auto")
    settings = dataclasses.replace(settings, pace=cost.paced)
    run, log = run_watched(one.measurements, state, settings, cost, None, env)
    ctx = context(state, settings, run, log)
    base_out = run.outcomes.get(0)
    judged = None
    if 1 in run.outcomes:
        judged = judge(run.outcomes[1], base_out, predicted, ctx)
    base_j = (
        None
        if base_out is None
        else judge(base_out, base_out, primitive.predict(baseline.access), ctx)
    )
    return SingleProbe(
        primitive,
        offset,
        bit,
        access.offset,
        predicted,
        detector_availability(state),
        run,
        judged,
        base_j,
        fail_on,
    )
