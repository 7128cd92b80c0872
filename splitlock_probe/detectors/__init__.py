"""Detectors: each one observes probes and says what it saw, or why it cannot.

The probe-time detectors run inside the worker (the compiled core does the
work); these modules decide whether a detector can run here and turn its raw
observations into Evidence. NAMES is all the CLI needs at start-up; the
modules themselves load when a command uses them (`--help` stays fast).
"""

from __future__ import annotations

import importlib
from types import ModuleType

from splitlock_probe.detectors.base import Availability, Evidence

NAMES = ("timing", "actrap", "kmsg", "misery", "perf")


def registry() -> dict[str, ModuleType]:
    """Every detector module by name, in NAMES order."""
    return {name: importlib.import_module(f"{__name__}.{name}") for name in NAMES}


__all__ = ["NAMES", "Availability", "Evidence", "registry"]
