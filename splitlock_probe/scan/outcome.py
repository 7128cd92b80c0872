"""What one measurement produced in the worker, or why it produced nothing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Failure:
    """Why a measurement has no result: the worker crashed or timed out."""

    kind: str  # "crashed" | "timeout"
    detail: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.detail}"


@dataclass
class Outcome:
    """The raw result of one measurement, or why there is none."""

    timing: dict[str, Any] | None = None
    actrap: dict[str, Any] | None = None
    failure: Failure | None = None
    tid: int | None = None  # the thread the measurement ran in
    comm: str | None = None  # that thread's name, as the kernel prints it
    usage: dict[str, Any] | None = None  # the thread's wall/CPU time, voluntary switches
    perf: dict[str, Any] | None = None  # counter readings around the timed op

    @classmethod
    def from_reply(cls, reply: dict[str, Any]) -> Outcome:
        return cls(
            reply.get("timing"),
            reply.get("actrap"),
            None,
            reply.get("tid"),
            reply.get("comm"),
            reply.get("usage"),
            reply.get("perf"),
        )
