"""Hardware counters: true counts of split locks and bus locks (docs/reference.md
§5), counted per probe thread around the timed op.

The probe arena is ordinary write-back memory, where a bus lock happens only
for a split lock: a split-lock or bus-lock count above zero says split, zero
(with the counter running) says clean. Counters of other kinds (software
events given with --event) are reported, never judged.
"""

from __future__ import annotations

from typing import Any

from splitlock_probe.detectors.base import Availability, Evidence
from splitlock_probe.host.perf.events import BUS_LOCK, SPLIT_LOCK
from splitlock_probe.host.state import HostState

NAME = "perf"


def availability(host: HostState) -> Availability:
    return Availability(host.pmu.available, host.pmu.reason)


def interpret(raw: dict[str, Any]) -> Evidence:
    if raw.get("error"):
        return Evidence(NAME, "failed", None, {"error": raw["error"]})
    counts: dict[str, int | None] = raw["counts"]
    kinds: dict[str, str] = raw["kinds"]
    data = {"counts": counts, "running_ns": raw["running_ns"], "scaled": raw["scaled"]}
    judged = [counts[n] for n, k in kinds.items() if k in (SPLIT_LOCK, BUS_LOCK)]
    if not judged or any(v is None for v in judged):
        return Evidence(NAME, "ok", None, data)
    return Evidence(NAME, "ok", "split" if any(judged) else "clean", data)
