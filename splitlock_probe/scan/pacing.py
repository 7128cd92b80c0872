"""Pacing measurements under the kernel's log ratelimit.

split_lock_warn() and handle_bus_lock() print through printk_ratelimited: at
most 10 lines per 5 s per call site, the rest summarised as "N callbacks
suppressed". And after a trap the kernel leaves detection off on that core
for ~2 jiffies (8 ms at HZ=250). The worker's Pacer keeps measurements that
should trap below both; the scan uses the same numbers to price pacing.
"""

from __future__ import annotations

import time
from collections import deque

CHOICES = ("auto", "always", "never")  # --pace
BURST = 10  # lines per window
INTERVAL_S = 5.5  # the kernel's 5 s window, with margin for jiffies
GAP_S = 0.025  # > 2 jiffies at HZ=100
WAIT_S = INTERVAL_S + 0.5  # the longest a paced measurement may wait to start


class Pacer:
    """At most `burst` paced measurements in any `interval` seconds, and `gap`
    apart: the kernel ratelimits split-lock lines to 10 per 5 s, and after a
    trap it leaves detection off on that core for ~2 jiffies (8 ms at HZ=250)."""

    def __init__(
        self, burst: int = BURST, interval: float = INTERVAL_S, gap: float = GAP_S
    ) -> None:
        self.burst, self.interval, self.gap = burst, interval, gap
        self._starts: deque[float] = deque(maxlen=burst)

    def wait(self) -> float:
        """Sleep until the next paced measurement may start; returns the seconds slept."""
        now = time.monotonic()
        start = now
        if len(self._starts) == self.burst:
            start = max(start, self._starts[0] + self.interval)
        if self._starts:
            start = max(start, self._starts[-1] + self.gap)
        if start > now:
            time.sleep(start - now)
        self._starts.append(start)
        return start - now
