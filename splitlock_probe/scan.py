"""A scan, end to end: plan -> run -> judge. The CLI renders what this returns."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from splitlock_probe import host, runner
from splitlock_probe.detectors import DETECTORS, Availability
from splitlock_probe.errors import ExitStatus
from splitlock_probe.layouts import Layout, Span
from splitlock_probe.model import Prediction, Primitive
from splitlock_probe.plan import (
    Measurement,
    Plan,
    ProbeGroup,
    baseline_measurement,
    build,
    check_in_arena,
)
from splitlock_probe.verdict import SPLIT, Judgement, judge


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


@dataclass
class ScanResult:
    request: ScanRequest
    cpu: host.Cpu
    detectors: dict[str, Availability]
    plan: Plan
    run: runner.RunResult
    judgements: dict[int, Judgement] = field(default_factory=dict)  # by measurement

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

    def summary(self) -> dict[str, int | bool]:
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
            "complete": not self.run.interrupted,
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


def detector_availability(cpu: host.Cpu) -> dict[str, Availability]:
    return {name: mod.availability(cpu) for name, mod in DETECTORS.items()}


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


def execute(
    request: ScanRequest,
    plan: Plan,
    progress: Callable[[int], None] | None = None,
    env: dict[str, str] | None = None,
) -> ScanResult:
    cpu = host.cpu()
    result = ScanResult(request, cpu, detector_availability(cpu), plan, runner.RunResult())
    result.run = runner.run(plan.measurements, request.settings, progress, env)
    judge_all(result)
    return result


def judge_all(result: ScanResult) -> None:
    plan, run = result.plan, result.run
    predictions = {p.measurement: p.predicted for p in plan.probes}
    for m in plan.measurements:
        outcome = run.outcomes.get(m.index)
        if outcome is None:
            continue
        baseline = run.outcomes.get(plan.baselines[m.primitive.name])
        predicted = predictions.get(m.index) or m.primitive.predict(m.access)
        result.judgements[m.index] = judge(outcome, baseline, predicted, run.tsc_hz)


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
    settings: runner.Settings,
    env: dict[str, str] | None = None,
) -> SingleProbe:
    access = check_in_arena(primitive, offset, bit)
    predicted = primitive.predict(access)
    baseline = baseline_measurement(primitive, 0)
    target = Measurement(1, primitive, offset, primitive.exec_bit(bit), access)
    cpu = host.cpu()
    run = runner.run([baseline, target], settings, None, env)
    base_out = run.outcomes.get(0)
    judged = None
    if 1 in run.outcomes:
        judged = judge(run.outcomes[1], base_out, predicted, run.tsc_hz)
    base_j = (
        None
        if base_out is None
        else judge(base_out, base_out, primitive.predict(baseline.access), run.tsc_hz)
    )
    return SingleProbe(
        primitive,
        offset,
        bit,
        access.offset,
        predicted,
        detector_availability(cpu),
        run,
        judged,
        base_j,
    )
