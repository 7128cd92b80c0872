"""The CPUs online on the live host, where a command's tasks may run and where
per-CPU counters and task rings are opened.

Read from the live /sys, not through paths.root(): the CPUs of a recorded
tree do not exist here, and perf_event_open on them would fail.
"""

from __future__ import annotations

import os


def online_cpus(text: str | None = None) -> list[int]:
    """The live host's online CPUs ("0-3,6")."""
    if text is None:
        try:
            with open("/sys/devices/system/cpu/online") as f:
                text = f.read()
        except OSError:
            return list(range(os.cpu_count() or 1))
    out: list[int] = []
    for part in text.strip().split(","):
        lo, _, hi = part.partition("-")
        if lo.strip():
            out.extend(range(int(lo), int(hi or lo) + 1))
    return out
