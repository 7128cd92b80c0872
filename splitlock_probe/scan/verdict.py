"""Evidence combined into one verdict per measurement, held against the model.

split: the kernel saw it (a log line for the probe's thread, the SIGBUS of
       fatal mode, or the 10 ms penalty sleep), or a hardware counter counted
       it, or timing says split; unless the alignment trap proves the op
       aligned, which contradicts them.
clean: a hardware counter counted none, or timing says clean, or the
       alignment trap proves the op aligned (only misaligned accesses can
       split), or the op raised #GP and never ran, or it ran unharmed under
       fatal mode.
faulted: the CPU refused the op (#GP: a misaligned cmpxchg16b) and it never
       ran, so it took no lock at all.
inconclusive: anything else, every contradiction and every failed measurement.
"""

from __future__ import annotations

from dataclasses import dataclass

from splitlock_probe.detectors import actrap, counters, kernel_log, misery, timing
from splitlock_probe.detectors.base import Evidence
from splitlock_probe.model.access import Prediction
from splitlock_probe.scan.outcome import Outcome

SPLIT = "split"
CLEAN = "clean"
INCONCLUSIVE = "inconclusive"
FAULTED = "faulted"
VERDICTS = (SPLIT, CLEAN, FAULTED, INCONCLUSIVE)


@dataclass(frozen=True)
class Judgement:
    verdict: str
    agrees: bool | None  # None: inconclusive and nothing contradicted the model
    evidence: tuple[Evidence, ...]
    measured: bool  # some detector observed the op


@dataclass(frozen=True)
class Context:
    """What judging a measurement needs beyond its own outcome."""

    tsc_hz: float | None
    detectors: tuple[str, ...] = (timing.NAME, actrap.NAME)
    mode: str = "unsupported"  # the kernel's effective split-lock mode
    log: kernel_log.ScanLog | None = None


def gather(outcome: Outcome, baseline: Outcome | None, ctx: Context) -> list[Evidence]:
    if outcome.failure:
        failure = outcome.failure
        return [
            Evidence("worker", "failed", None, {"failure": failure.kind, "detail": failure.detail})
        ]
    out: list[Evidence] = []
    if outcome.timing is not None:
        base = baseline.timing if baseline is not None else None
        out.append(timing.interpret(outcome.timing, base, ctx.tsc_hz))
    if outcome.actrap is not None:
        out.append(actrap.interpret(outcome.actrap))
    if kernel_log.NAME in ctx.detectors:
        out.append(
            kernel_log.interpret(outcome.timing, outcome.tid, ctx.log, ctx.mode, outcome.comm)
        )
    if misery.NAME in ctx.detectors and outcome.usage is not None:
        out.append(misery.interpret(outcome.usage))
    if counters.NAME in ctx.detectors and outcome.perf is not None:
        out.append(counters.interpret(outcome.perf))
    return out


def combine(evidence: list[Evidence]) -> str:
    says = {e.detector: e.says for e in evidence if e.status in ("ok", "fault")}
    t, a = says.get(timing.NAME), says.get(actrap.NAME)
    if "faulted" in (t, a):
        return FAULTED  # the CPU refused the op: no lock was taken
    # The kernel's and the hardware's word: a trap, a penalty, a count.
    authority = [says.get(n) for n in (kernel_log.NAME, misery.NAME, counters.NAME)]
    if SPLIT in authority and CLEAN in authority:
        return INCONCLUSIVE
    if SPLIT in authority:
        return INCONCLUSIVE if a == "aligned" else SPLIT
    if CLEAN in authority:
        return INCONCLUSIVE if t == SPLIT else CLEAN
    if t == SPLIT:
        return INCONCLUSIVE if a == "aligned" else SPLIT
    if t == CLEAN:
        return CLEAN
    if a == "aligned":
        return CLEAN
    return INCONCLUSIVE


def agreement(verdict: str, evidence: list[Evidence], predicted: Prediction) -> bool | None:
    checks: list[bool] = []
    if verdict == SPLIT:
        checks.append(predicted.split_lock)
    elif verdict == CLEAN:
        checks.append(not predicted.split_lock and not predicted.faults)
    elif verdict == FAULTED:
        checks.append(predicted.faults)
    for e in evidence:
        if e.status not in ("ok", "fault"):
            continue
        if e.says == "faulted":
            checks.append(predicted.faults)
        elif e.detector == actrap.NAME:
            checks.append((e.says == "misaligned") == predicted.misaligned)
    if not all(checks):
        return False
    if verdict == INCONCLUSIVE or not checks:
        return None
    return True


def judge(
    outcome: Outcome, baseline: Outcome | None, predicted: Prediction, ctx: Context
) -> Judgement:
    evidence = gather(outcome, baseline, ctx)
    verdict = combine(evidence)
    measured = any(e.status in ("ok", "fault") for e in evidence)
    return Judgement(verdict, agreement(verdict, evidence, predicted), tuple(evidence), measured)
