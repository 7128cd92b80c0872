"""How evidence becomes a verdict, and when it contradicts the model."""

from __future__ import annotations

import pytest

from splitlock_probe.detectors import timing
from splitlock_probe.detectors.base import Evidence
from splitlock_probe.model.access import Prediction
from splitlock_probe.scan.outcome import Failure, Outcome
from splitlock_probe.scan.verdict import Context, agreement, combine, judge

SPLITS = Prediction(True, False, True, False)
INSIDE = Prediction(False, False, True, False)
ALIGNED = Prediction(False, False, False, False)


def ev(detector: str, says: str, status: str = "ok") -> Evidence:
    return Evidence(detector, status, says)


@pytest.mark.parametrize(
    ("evidence", "verdict"),
    [
        ([ev("timing", "split"), ev("actrap", "misaligned")], "split"),
        ([ev("timing", "split"), ev("actrap", "aligned")], "inconclusive"),  # detectors disagree
        ([ev("timing", "clean"), ev("actrap", "misaligned")], "clean"),
        ([ev("timing", "inconclusive"), ev("actrap", "aligned")], "clean"),
        ([ev("timing", "inconclusive"), ev("actrap", "misaligned")], "inconclusive"),
        ([ev("actrap", "aligned")], "clean"),
        ([ev("actrap", "misaligned")], "inconclusive"),  # misaligned is not split
        ([ev("timing", "faulted", "fault")], "faulted"),
        ([ev("timing", "split", "fault")], "split"),  # the kernel's SIGBUS
        ([Evidence("worker", "failed", None)], "inconclusive"),
        ([], "inconclusive"),
        # The kernel's own word: a log line, fatal mode's SIGBUS, the 10 ms penalty.
        ([ev("timing", "inconclusive"), ev("kmsg", "split")], "split"),
        ([ev("timing", "clean"), ev("kmsg", "split")], "split"),
        ([ev("kmsg", "split"), ev("actrap", "aligned")], "inconclusive"),  # contradiction
        ([ev("timing", "inconclusive"), ev("misery", "split")], "split"),
        ([ev("timing", "inconclusive"), Evidence("kmsg", "ok", None)], "inconclusive"),
        ([ev("timing", "inconclusive"), ev("kmsg", "clean")], "clean"),  # fatal mode, no SIGBUS
        ([ev("timing", "split"), ev("kmsg", "clean")], "inconclusive"),  # contradiction
    ],
)
def test_combine(evidence: list[Evidence], verdict: str) -> None:
    assert combine(evidence) == verdict


def test_agreement() -> None:
    both = [ev("timing", "split"), ev("actrap", "misaligned")]
    assert agreement("split", both, SPLITS) is True
    assert agreement("split", both, INSIDE) is False
    assert agreement("clean", [ev("timing", "clean"), ev("actrap", "aligned")], ALIGNED) is True
    # A trap where the model says aligned is a contradiction even when timing agrees.
    assert agreement("clean", [ev("timing", "clean"), ev("actrap", "misaligned")], ALIGNED) is False
    assert agreement("inconclusive", [ev("actrap", "misaligned")], SPLITS) is None


def test_timing_thresholds() -> None:
    assert timing.classify(timing.SPLIT_RATIO) == "split"
    assert timing.classify(timing.CLEAN_RATIO) == "clean"
    assert timing.classify((timing.SPLIT_RATIO + timing.CLEAN_RATIO) / 2) == "inconclusive"


def test_judge_from_raw_outcomes() -> None:
    base = Outcome(
        timing={"min_cycles": 6.0, "median_cycles": 6.1, "iterations": 4096, "batches": 15}
    )
    split = Outcome(
        timing={"min_cycles": 2500.0, "median_cycles": 2600.0, "iterations": 8, "batches": 15},
        actrap={"trapped": True, "fault": {"signo": 7, "si_code": 1, "ac_armed": True, "ip": 0}},
    )
    j = judge(split, base, SPLITS, Context(2.6e9))
    assert (j.verdict, j.agrees, j.measured) == ("split", True, True)
    timing_ev = j.evidence[0].as_dict()
    assert timing_ev["ratio"] == pytest.approx(416.67, abs=0.01)
    assert timing_ev["min_ns"] == pytest.approx(961.54, abs=0.01)
    failed = judge(
        Outcome(failure=Failure("crashed", "worker killed by SIGSEGV")), base, SPLITS, Context(None)
    )
    assert (failed.verdict, failed.agrees, failed.measured) == ("inconclusive", None, False)
    assert failed.evidence[0].as_dict() == {
        "detector": "worker",
        "status": "failed",
        "says": None,
        "failure": "crashed",
        "detail": "worker killed by SIGSEGV",
    }


def test_every_detector_name_has_a_module_with_the_same_name() -> None:
    from splitlock_probe.detectors import NAMES, registry

    assert [mod.NAME for mod in registry().values()] == list(NAMES)
