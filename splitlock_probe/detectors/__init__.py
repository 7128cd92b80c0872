"""Detectors: each one observes probes and says what it saw, or why it cannot.

The probe-time detectors run inside the worker (the compiled core does the
work); these modules decide whether a detector can run here and turn its raw
observations into Evidence.
"""

from __future__ import annotations

from splitlock_probe.detectors import actrap, kmsg, misery, timing
from splitlock_probe.detectors.base import Availability, Evidence

DETECTORS = {
    timing.NAME: timing,
    actrap.NAME: actrap,
    kmsg.NAME: kmsg,
    misery.NAME: misery,
}

__all__ = ["DETECTORS", "Availability", "Evidence", "actrap", "kmsg", "misery", "timing"]
