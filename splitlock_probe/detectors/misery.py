"""The split-lock penalty: in warn mode with kernel.split_lock_mitigate=1
(Linux 5.19+), each trapped split lock makes the task sleep 10 ms
("misery"). The worker measures each probe thread's wall time against its CPU
time and counts its voluntary context switches: off-CPU time of ~10 ms per
voluntary switch in a thread that only computes is that sleep.

Absence proves nothing: after a trap the kernel leaves detection off on that
core for ~2 jiffies, so a split lock in that window costs no sleep.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from typing import Any

from splitlock_probe.detectors.base import Availability, Evidence
from splitlock_probe.host.state import HostState

NAME = "misery"
KERNEL_SLEEP_MS = 10.0  # msleep_interruptible(10) in split_lock_warn()
MIN_SLEEP_MS = 8.0  # off-CPU time per voluntary switch that counts as that sleep


def availability(host: HostState) -> Availability:
    k = host.kernel
    if not k.split_lock_detect:
        return Availability(False, "no #AC split-lock detection here, so no penalty to measure")
    if k.misery:
        return Availability(
            True, "warn mode with split_lock_mitigate=1: each trapped split lock sleeps 10 ms"
        )
    if k.effective_mode != "warn":
        return Availability(False, f"mode {k.effective_mode}: the kernel imposes no 10 ms sleep")
    if k.split_lock_mitigate == 0:
        return Availability(False, "split_lock_mitigate=0: the kernel only warns")
    return Availability(False, f"kernel {k.release}: no split-lock penalty before Linux 5.19")


def interpret(usage: dict[str, Any]) -> Evidence:
    off_cpu_ms = max(0.0, (usage["wall_s"] - usage["cpu_s"]) * 1000)
    switches = int(usage["nvcsw"])
    data: dict[str, Any] = {
        "off_cpu_ms": round(off_cpu_ms, 2),
        "voluntary_switches": switches,
        "wall_ms": round(usage["wall_s"] * 1000, 2),
    }
    if switches and off_cpu_ms / switches >= MIN_SLEEP_MS:
        data["sleep_ms_each"] = round(off_cpu_ms / switches, 2)
        return Evidence(NAME, "ok", "split", data)
    return Evidence(NAME, "ok", None, {**data, "note": "no penalty seen: not proof of a clean op"})


def penalty_ms(evidence: Iterable[Evidence]) -> float | None:
    """The typical sleep per trapped split lock, from the probes that paid it."""
    each = [e.data["sleep_ms_each"] for e in evidence if e.detector == NAME and e.says == "split"]
    return round(statistics.median(each), 1) if each else None
