"""A scan, end to end: plan -> run (with the kernel log watched) -> judge.
The CLI renders what this returns."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from splitlock_probe import runner
from splitlock_probe.detectors import Availability, kmsg, misery, registry
from splitlock_probe.errors import ExitStatus
from splitlock_probe.host import Cpu, HostState
from splitlock_probe.layouts import Layout, Span
from splitlock_probe.model import Prediction, Primitive
from splitlock_probe.pacing import BURST, INTERVAL_S
from splitlock_probe.plan import (
    Measurement,
    Plan,
    ProbeGroup,
    baseline_measurement,
    build,
    check_in_arena,
)
from splitlock_probe.verdict import SPLIT, Context, Judgement, judge

PACE_AUTO_LIMIT_S = 30.0  # auto paces when pacing adds at most this much
TRAPS_PER_SPLIT_MEASUREMENT = 2  # the timing loop and the retry after detection comes back


@dataclass(frozen=True)
class ScanRequest:
    layouts: tuple[Layout, ...]
    fields: tuple[str, ...]
    primitives: tuple[Primitive, ...]
    align: int
    span: Span
    bits: tuple[int, ...] | None
    settings: runner.Settings
    fail_on: str = "none"  # "none" | "split"
    pace: str = "auto"  # pacing.CHOICES


@dataclass(frozen=True)
class Cost:
    """What a scan's kernel-side effects will cost, told before it starts."""

    split_measurements: int  # measurements the model expects to split
    penalty_s: float  # the 10 ms sleeps of misery mode
    pacing_s: float  # waiting so the log ratelimit drops nothing
    paced: bool
    pace_reason: str

    @property
    def seconds(self) -> float:
        return self.penalty_s + (self.pacing_s if self.paced else 0.0)

    def notice(self, budget_given: bool) -> str | None:
        """What to tell the user before a scan that will take a second or more."""
        if self.seconds < 1.0:
            return None
        note = f"expected kernel-side cost: ~{self.seconds:.0f} s"
        if self.penalty_s:
            note += (
                f"; {self.split_measurements} measurements predicted to split, each paying "
                "the kernel's 10 ms split-lock penalty"
            )
        if self.paced:
            note += f"; {self.pace_reason}"
        if not budget_given:
            note += " (--budget SECONDS caps the run)"
        return note

    def as_dict(self) -> dict[str, object]:
        return {
            "split_measurements": self.split_measurements,
            "penalty_s": round(self.penalty_s, 2),
            "pacing_s": round(self.pacing_s if self.paced else 0.0, 2),
            "paced": self.paced,
            "pace_reason": self.pace_reason,
        }


@dataclass
class ScanResult:
    request: ScanRequest
    host: HostState
    detectors: dict[str, Availability]
    plan: Plan
    run: runner.RunResult
    cost: Cost
    log: kmsg.ScanLog | None = None  # what the kernel log said during the scan
    judgements: dict[int, Judgement] = field(default_factory=dict)  # by measurement

    @property
    def cpu(self) -> Cpu:
        return self.host.cpu

    def penalty_ms(self) -> float | None:
        """The split-lock sleep the misery detector measured, per trapped split lock."""
        return misery.penalty_ms(e for j in self.judgements.values() for e in j.evidence)

    def measured_probes(self) -> Iterator[tuple[ProbeGroup, Judgement]]:
        for probe in self.plan.probes:
            j = self.judgements.get(probe.measurement)
            if j is not None:
                yield probe, j

    def shared_by(self) -> dict[int, int]:
        """Measurement -> how many probes (bits unfolded) report it."""
        counts: dict[int, int] = {}
        for probe in self.plan.probes:
            counts[probe.measurement] = counts.get(probe.measurement, 0) + probe.bits.count
        return counts

    def summary(self) -> dict[str, int | bool | str | None]:
        counts = {"split": 0, "clean": 0, "inconclusive": 0}
        disagreements = measured = 0
        for probe, j in self.measured_probes():
            counts[j.verdict] += probe.bits.count
            if j.measured:
                measured += probe.bits.count
            if j.agrees is False:
                disagreements += probe.bits.count
        failed = sum(1 for o in self.run.outcomes.values() if o.failure)
        return {
            "complete": self.run.stopped is None,
            "stopped": self.run.stopped,
            "probes": self.plan.probe_count,
            "probes_measured": measured,
            "probes_unmeasured": self.plan.probe_count - sum(counts.values()),
            "split": counts["split"],
            "clean": counts["clean"],
            "inconclusive": counts["inconclusive"],
            "disagreements": disagreements,
            "measurements": len(self.plan.measurements),
            "measurements_done": len(self.run.outcomes),
            "measurements_failed": failed,
            "worker_restarts": self.run.worker_restarts,
        }

    def exit_status(self) -> ExitStatus:
        s = self.summary()
        if self.run.interrupted:
            return ExitStatus.INTERRUPTED
        if not s["probes_measured"]:
            return ExitStatus.UNSUPPORTED
        if s["disagreements"]:
            return ExitStatus.FINDING
        if self.request.fail_on == SPLIT and s["split"]:
            return ExitStatus.FINDING
        return ExitStatus.OK


def detector_availability(state: HostState) -> dict[str, Availability]:
    return {name: mod.availability(state) for name, mod in registry().items()}


def reads_log(settings: runner.Settings, state: HostState) -> bool:
    """The scan reads the kernel log: kmsg is used, and the kernel prints trap lines here."""
    return kmsg.NAME in settings.detectors and kmsg.logs_lines(state.kernel.effective_mode)


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
    )


def prepare(request: ScanRequest, plan: Plan, state: HostState) -> ScanResult:
    """The result to fill: availability and the cost, known before anything runs."""
    settings = for_host(request.settings, state)
    cost = cost_of(plan, state, settings, request.pace)
    request = dataclasses.replace(request, settings=dataclasses.replace(settings, pace=cost.paced))
    return ScanResult(request, state, detector_availability(state), plan, runner.RunResult(), cost)


def run_watched(
    measurements: Sequence[Measurement],
    state: HostState,
    settings: runner.Settings,
    cost: Cost,
    progress: Callable[[int], None] | None = None,
    env: dict[str, str] | None = None,
) -> tuple[runner.RunResult, kmsg.ScanLog | None]:
    """Run measurements with the kernel log read from its current end: older
    lines never count, and each new trap line is filed under its probe thread."""
    from splitlock_probe.kmsg.source import KernelLog

    if not reads_log(settings, state):
        return runner.run(measurements, settings, progress, env), None
    with KernelLog() as log:
        log.seek_end()
        run = runner.run(measurements, settings, progress, env)
        scan_log = kmsg.ScanLog(state.kernel.effective_mode, cost.paced, cost.pace_reason)
        scan_log.tally.feed(log.read_available())
        scan_log.overwritten = log.overwritten
    scan_log.attribute({o.tid: o.comm for o in run.outcomes.values() if o.tid})
    return run, scan_log


def context(
    state: HostState,
    settings: runner.Settings,
    run: runner.RunResult,
    log: kmsg.ScanLog | None,
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


def requested_detectors(
    names: Sequence[str], available: dict[str, Availability]
) -> tuple[str, ...]:
    """The detectors to run: those asked for that can run here."""
    return tuple(n for n in names if available[n].available)


@dataclass
class SingleProbe:
    """`probe`: one primitive at one offset with one bit."""

    primitive: Primitive
    offset: int
    bit: int
    access_offset: int
    predicted: Prediction
    detectors: dict[str, Availability]
    run: runner.RunResult
    judgement: Judgement | None
    baseline: Judgement | None

    def exit_status(self, fail_on: str) -> ExitStatus:
        if self.run.interrupted:
            return ExitStatus.INTERRUPTED
        if self.judgement is None or not self.judgement.measured:
            return ExitStatus.UNSUPPORTED
        if self.judgement.agrees is False:
            return ExitStatus.FINDING
        if fail_on == SPLIT and self.judgement.verdict == SPLIT:
            return ExitStatus.FINDING
        return ExitStatus.OK


def probe_once(
    primitive: Primitive,
    offset: int,
    bit: int,
    state: HostState,
    settings: runner.Settings,
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
    )
