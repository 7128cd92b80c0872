"""Timing detector: a split lock costs hundreds of aligned ones.

Measured on the development machines (AMD Zen 3 VM): aligned lock btsq
5.6 TSC cycles, misaligned inside a line 5.6, split ~2,500 (ratio ~450).
On Intel bare metal the split costs ~1,000+ cycles against ~20. A ratio of
10 is far from both sides of that gap; between CLEAN_RATIO and SPLIT_RATIO
the detector does not guess.

A SIGBUS with BUS_ADRALN while AC is clear comes from the kernel's split-lock
detection in fatal mode: the strongest evidence of a split there is.
"""

from __future__ import annotations

from typing import Any

from splitlock_probe import native
from splitlock_probe.detectors.base import Availability, Evidence
from splitlock_probe.detectors.signals import describe, is_alignment_trap, is_general_protection
from splitlock_probe.host.state import HostState

NAME = "timing"
SPLIT_RATIO = 10.0
CLEAN_RATIO = 3.0
# Fastest and median batch further apart than this: the fastest is not the
# typical cost here (seen on a VM whose split locks cost 78,000..146,000 cycles).
UNSTEADY_SPREAD = 2.0


def availability(host: HostState) -> Availability:
    reason = native.unsupported_reason() or ("" if host.x86 else "not an x86 CPU")
    if reason:
        return Availability(False, reason)
    if host.cpu.flags and "constant_tsc" not in host.cpu.flags:
        return Availability(True, "TSC is not constant-rate: latencies in cycles may drift")
    return Availability(True, "TSC latency against an aligned baseline, measured in the same run")


def classify(ratio: float) -> str:
    if ratio >= SPLIT_RATIO:
        return "split"
    if ratio <= CLEAN_RATIO:
        return "clean"
    return "inconclusive"


def interpret(
    raw: dict[str, Any], baseline: dict[str, Any] | None, tsc_hz: float | None
) -> Evidence:
    if "fault" in raw:
        fault = raw["fault"]
        info = describe(fault)
        if is_alignment_trap(fault) and not fault["ac_armed"]:
            return Evidence(
                NAME,
                "fault",
                "split",
                {**info, "cause": "kernel split-lock detection (split_lock_detect=fatal)"},
            )
        if is_general_protection(fault):
            return Evidence(NAME, "fault", "faulted", {**info, "cause": "general protection (#GP)"})
        return Evidence(NAME, "fault", "inconclusive", {**info, "cause": "unexpected signal"})
    data: dict[str, Any] = {
        "min_cycles": round(raw["min_cycles"], 2),
        "median_cycles": round(raw["median_cycles"], 2),
        "iterations": raw["iterations"],
        "batches": raw["batches"],
    }
    if tsc_hz:
        data["min_ns"] = round(raw["min_cycles"] / tsc_hz * 1e9, 2)
        data["median_ns"] = round(raw["median_cycles"] / tsc_hz * 1e9, 2)
    spread = raw["median_cycles"] / raw["min_cycles"] if raw["min_cycles"] > 0 else 1.0
    data["spread"] = round(spread, 2)
    data["unsteady"] = spread > UNSTEADY_SPREAD
    if baseline is None or "min_cycles" not in baseline or baseline["min_cycles"] <= 0:
        return Evidence(NAME, "ok", "inconclusive", {**data, "note": "no aligned baseline"})
    ratio = raw["min_cycles"] / baseline["min_cycles"]
    data["baseline_cycles"] = round(baseline["min_cycles"], 2)
    data["ratio"] = round(ratio, 2)
    says = classify(ratio)
    if baseline.get("median_cycles", 0) > 0:
        median_ratio = raw["median_cycles"] / baseline["median_cycles"]
        data["median_ratio"] = round(median_ratio, 2)
        if classify(median_ratio) != says:  # fastest and typical batches tell apart
            data["note"] = (
                f"the fastest batch says {says}, the median says {classify(median_ratio)}: "
                "the cost is too unsteady here to judge"
            )
            says = "inconclusive"
    if data["unsteady"] and "note" not in data:
        data["note"] = (
            f"fastest and median batch differ {spread:,.1f}x: the fastest is not the "
            "typical cost on this host"
        )
    return Evidence(NAME, "ok", says, data)
