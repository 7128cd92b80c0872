"""What every detector reports."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Availability:
    available: bool
    reason: str  # a sentence a person can act on

    def as_dict(self) -> dict[str, Any]:
        return {"available": self.available, "reason": self.reason}


@dataclass(frozen=True)
class Evidence:
    """One detector's observation of one measurement.

    status: "ok" (it observed), "fault" (the op raised a signal it explains),
    "failed" (the worker crashed or timed out), "unavailable".
    says: "split" | "clean" | "inconclusive" (timing, kernel), "misaligned" |
    "aligned" (alignment trap), "faulted" (#GP), or None.
    """

    detector: str
    status: str
    says: str | None
    data: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"detector": self.detector, "status": self.status, "says": self.says, **self.data}
