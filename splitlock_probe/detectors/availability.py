"""Which detectors can run on this host, and which of those a command uses."""

from __future__ import annotations

from collections.abc import Sequence

from splitlock_probe.detectors import NAMES, Availability, registry
from splitlock_probe.errors import UnsupportedHost, choose
from splitlock_probe.host.state import HostState


def detector_availability(state: HostState) -> dict[str, Availability]:
    return {name: mod.availability(state) for name, mod in registry().items()}


def requested_detectors(
    names: Sequence[str], available: dict[str, Availability]
) -> tuple[str, ...]:
    """The detectors to run: those asked for that can run here."""
    return tuple(n for n in names if available[n].available)


def require(
    required: Sequence[str], available: dict[str, Availability], names: Sequence[str] = NAMES
) -> None:
    """--require-detector: UnsupportedHost (exit 4), with the reasons, unless each can run."""
    missing = [n for n in choose("detector", required, names) if not available[n].available]
    if missing:
        reasons = "; ".join(f"{n}: {available[n].reason}" for n in missing)
        raise UnsupportedHost(f"a required detector cannot run here ({reasons})")
