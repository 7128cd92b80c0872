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

# The name a user gives (--detect, JSON) -> the module that implements it.
MODULES = {
    "timing": "timing",
    "actrap": "actrap",
    "kmsg": "kernel_log",
    "misery": "misery",
    "perf": "counters",
}
NAMES = tuple(MODULES)


def registry() -> dict[str, ModuleType]:
    """Every detector module by name, in NAMES order."""
    return {name: importlib.import_module(f"{__name__}.{mod}") for name, mod in MODULES.items()}


__all__ = ["MODULES", "NAMES", "Availability", "Evidence", "registry"]
