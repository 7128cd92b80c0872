"""What a scan or a single probe is asked to do, what it will cost, and what
it found; and each one's exit policy. The pipeline (pipeline.py) fills these."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from splitlock_probe.detectors import NAMES, Availability, misery
from splitlock_probe.detectors.availability import (
    detector_availability,
    requested_detectors,
    require,
)
from splitlock_probe.detectors.kernel_log import ScanLog
from splitlock_probe.errors import ExitStatus, UnsupportedHost, choose
from splitlock_probe.host.cost import Cost as LockCost
from splitlock_probe.host.cpu import Cpu
from splitlock_probe.host.state import HostState
from splitlock_probe.model.access import Prediction, Primitive
from splitlock_probe.model.layouts import Layout, Span
from splitlock_probe.scan.plan import Plan, ProbeGroup
from splitlock_probe.scan.runner import ProbeRun, Settings
from splitlock_probe.scan.verdict import SPLIT, VERDICTS, Judgement


def settings_for(
    state: HostState,
    detect: Sequence[str],
    batches: int,
    iterations: int,
    timeout: float,
    budget: float | None = None,
    required: Sequence[str] = (),
) -> Settings:
    """The worker's settings: the detectors asked for (all by default) that can run
    here; UnsupportedHost when a required one, or every one asked for, cannot."""
    wanted = choose("detector", detect, NAMES) if detect else list(NAMES)
    available = detector_availability(state)
    require(required, available)
    chosen = requested_detectors(wanted, available)
    if not chosen:
        reasons = "; ".join(f"{n}: {available[n].reason}" for n in wanted)
        raise UnsupportedHost(f"no requested detector can run here ({reasons})")
    counters = tuple(c.as_dict() for c in state.pmu.counters) if "perf" in chosen else ()
    return Settings(
        chosen, batches, iterations, timeout=timeout, budget=budget, perf_counters=counters
    )


@dataclass(frozen=True)
class ScanRequest:
    layouts: tuple[Layout, ...]
    fields: tuple[str, ...]
    primitives: tuple[Primitive, ...]
    align: int | None  # --align; None: each layout's own policy
    span: Span
    bits: tuple[int, ...] | None
    settings: Settings
    fail_on: str = "none"  # "none" | "split"
    pace: str = "auto"  # pacing.CHOICES
    outside_field: bool = False  # --outside-field: bits beyond a field are meant

    @property
    def field_names(self) -> list[str]:
        """The fields probed: those asked for, else each layout's default."""
        return list(self.fields) or list(dict.fromkeys(f for x in self.layouts for f in x.defaults))

    @property
    def align_setting(self) -> int | None:
        """The placement alignment of every layout, or None when they differ."""
        if self.align is not None:
            return self.align
        aligns = {x.placement_align for x in self.layouts}
        return aligns.pop() if len(aligns) == 1 else None


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
    run: ProbeRun
    cost: Cost
    log: ScanLog | None = None  # what the kernel log said during the scan
    judgements: dict[int, Judgement] = field(default_factory=dict)  # by measurement
    lock_cost: LockCost | None = None  # the quick split-lock cost measurement, if made
    lock_cost_note: str | None = None  # why it was not

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
        counts = dict.fromkeys(VERDICTS, 0)
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
            "faulted": counts["faulted"],
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
        if not (s["split"] or s["clean"] or s["faulted"]):
            return ExitStatus.UNSUPPORTED  # measured, but nothing could be decided
        if self.request.fail_on == SPLIT and s["split"]:
            return ExitStatus.FINDING
        return ExitStatus.OK


@dataclass
class SingleProbe:
    """`probe`: one primitive at one offset with one bit."""

    primitive: Primitive
    offset: int
    bit: int
    access_offset: int
    predicted: Prediction
    detectors: dict[str, Availability]
    run: ProbeRun
    judgement: Judgement | None
    baseline: Judgement | None
    fail_on: str = "none"  # "none" | "split"
    lock_cost: LockCost | None = None
    lock_cost_note: str | None = None

    def exit_status(self) -> ExitStatus:
        if self.run.interrupted:
            return ExitStatus.INTERRUPTED
        if self.judgement is None or not self.judgement.measured:
            return ExitStatus.UNSUPPORTED
        if self.judgement.agrees is False:
            return ExitStatus.FINDING
        if self.fail_on == SPLIT and self.judgement.verdict == SPLIT:
            return ExitStatus.FINDING
        return ExitStatus.OK
