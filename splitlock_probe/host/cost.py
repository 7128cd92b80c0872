"""What a split lock costs on this host, who charges for it, and what it does
to the neighbours (docs/reference.md §6; thresholds in docs/detectors.md).

The measurement: single `lock btsq` ops timed one at a time (fenced TSC
reads around each), split (bytes 60..67 of a line) and aligned, interleaved,
within a time budget; quantiles of each. The aligned lock's own cost comes
from batched timing (a single fenced op is mostly fence). The spacing test
times the same op spaced out beyond two scheduler ticks, and beyond a
second: a cost that stays is charged per lock; one that appears only when
spaced is charged per window (the kernel's #AC warn path turns detection
off for ~2 ticks after a trap); 10 ms or more is the kernel's penalty.

The classification, from the p50 of split single ops (and the spaced runs):

- penalized: 10 ms or more, back to back or spaced: the kernel's misery sleep.
- windowed: back to back at most 10 µs, spaced at least 20 µs: trapped once
  per window.
- trapped: at least 20 µs, and uniform (p10 at least half of that): each
  split lock leaves the CPU to something below (a hypervisor's bus-lock
  exit in a VM, the kernel's #AC on bare metal).
- native: at most 10 µs, and no spaced run at 20 µs or more: a bus lock and
  nothing else (published bare-metal costs run from ~0.8 µs to a few µs).
- unknown: anything between; said rather than guessed.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from splitlock_probe.text import counted

NATIVE, TRAPPED, WINDOWED, PENALIZED, UNKNOWN = (
    "native", "trapped", "windowed", "penalized", "unknown",
)  # fmt: skip
CLASSES = (NATIVE, TRAPPED, WINDOWED, PENALIZED, UNKNOWN)
NATIVE_MAX_NS = 10_000.0  # a bus lock alone: ~0.8 us (Zen) to a few us (recent Intel)
TRAPPED_MIN_NS = 20_000.0  # a VM exit and back, or the kernel's #AC handler
PENALTY_MIN_NS = 10_000_000.0  # the kernel's msleep(10) in warn mode with mitigation
SPLIT_OFFSET = 60  # bytes 60..67 of a line: an 8-byte op split in two
ALIGNED_OFFSET = 2048  # another line, far from the split one
QUICK_PAIRS, QUICK_BUDGET_S = 2_000, 0.2
FULL_PAIRS, FULL_BUDGET_S = 20_000, 1.5
TICK_SPACING_S, TICK_SAMPLES = 0.030, 8  # beyond two jiffies at HZ=100
SECOND_SPACING_S, SECOND_SAMPLES = 1.1, 3
NEIGHBOUR_MS = 400


@dataclass(frozen=True)
class Quantiles:
    """TSC cycles: min, p10, p50, p90, p99 and max of a sample."""

    min: float
    p10: float
    p50: float
    p90: float
    p99: float
    max: float
    count: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Quantiles:
        v = sorted(values)
        if not v:
            raise ValueError("no samples")

        def q(f: float) -> float:
            return float(v[min(len(v) - 1, int(f * len(v)))])

        return cls(float(v[0]), q(0.10), q(0.50), q(0.90), q(0.99), float(v[-1]), len(v))

    def as_dict(self) -> dict[str, float | int]:
        return {"min": self.min, "p10": self.p10, "p50": self.p50, "p90": self.p90,
                "p99": self.p99, "max": self.max, "count": self.count}  # fmt: skip


@dataclass(frozen=True)
class NeighbourImpact:
    """A victim on one CPU beside an aggressor on another (units per second)."""

    victim: str  # "stream" (bytes/s copied beyond L2) | "atomic" (aligned lock xadd/s)
    alone: float
    beside_aligned: float
    beside_split: float
    split_ops: int  # the aggressor's split locks during its run
    seconds: float

    @property
    def loss(self) -> float:
        """The victim's throughput lost beside split locks, against alone (0..1)."""
        return max(0.0, 1.0 - self.beside_split / self.alone) if self.alone else 0.0

    @property
    def stolen_ns_per_split(self) -> float | None:
        """The victim's time each split lock took from it."""
        if not self.split_ops:
            return None
        return self.loss * self.seconds * 1e9 / self.split_ops

    def as_dict(self) -> dict[str, Any]:
        return {
            "victim": self.victim,
            "alone_per_s": round(self.alone, 1),
            "beside_aligned_per_s": round(self.beside_aligned, 1),
            "beside_split_per_s": round(self.beside_split, 1),
            "loss": round(self.loss, 4),
            "split_ops": self.split_ops,
            "stolen_ns_per_split": None
            if self.stolen_ns_per_split is None
            else round(self.stolen_ns_per_split, 1),
        }


@dataclass(frozen=True)
class Cost:
    tsc_hz: float
    split: Quantiles  # single split ops, cycles
    aligned: Quantiles  # single aligned ops, cycles (mostly the fences)
    aligned_op_cycles: float  # the aligned lock's own cost, batched
    spaced: dict[str, Quantiles] = field(default_factory=dict)  # "ticks", "seconds"
    neighbours: tuple[NeighbourImpact, ...] = ()
    neighbour_note: str | None = None  # why there is no neighbour test
    stopped: str | None = None  # why sampling stopped early (a fault), if it did
    elapsed_s: float = 0.0
    split_samples: tuple[int, ...] = ()  # every split op's cycles, for the histogram

    def ns(self, cycles: float) -> float:
        return cycles / self.tsc_hz * 1e9

    @property
    def split_ns_p50(self) -> float:
        return self.ns(self.split.p50)

    @property
    def ratio(self) -> float:
        return self.split.p50 / self.aligned_op_cycles if self.aligned_op_cycles > 0 else 0.0

    @property
    def classification(self) -> tuple[str, str]:
        return classify(self)


def classify(cost: Cost) -> tuple[str, str]:
    """(class, the reason in words)."""
    p50 = cost.split_ns_p50
    p10 = cost.ns(cost.split.p10)
    spaced = {k: cost.ns(q.p50) for k, q in cost.spaced.items()}
    worst_spaced = max(spaced.values(), default=0.0)
    each = (
        f"each split lock here costs ~{format_ns(p50)} ({cost.split.p50:,.0f} TSC cycles, "
        f"{cost.ratio:,.0f}x an aligned lock)"
    )
    if p50 >= PENALTY_MIN_NS or worst_spaced >= PENALTY_MIN_NS:
        return PENALIZED, (
            f"{each}; spaced out, {format_ns(worst_spaced)}: the kernel's split-lock penalty "
            "(a 10 ms sleep per trapped split lock) is charged here"
        )
    if p50 <= NATIVE_MAX_NS and worst_spaced >= TRAPPED_MIN_NS:
        return WINDOWED, (
            f"{each} back to back, but ~{format_ns(worst_spaced)} spaced out: trapped once per "
            "window (the kernel's #AC warn path turns detection off for two ticks)"
        )
    if p50 >= TRAPPED_MIN_NS and p10 >= TRAPPED_MIN_NS / 2:
        return TRAPPED, (
            f"{each}: something below this system traps every split lock (a hypervisor's "
            "bus-lock exit in a VM, the kernel's #AC handler on bare metal)"
        )
    if p50 <= NATIVE_MAX_NS and (not spaced or worst_spaced < TRAPPED_MIN_NS):
        return NATIVE, f"{each}: a bus lock and nothing else"
    return UNKNOWN, (
        f"{each}: between the classes (native at most {format_ns(NATIVE_MAX_NS)}, trapped "
        f"from {format_ns(TRAPPED_MIN_NS)}, uniform); not guessed"
    )


def format_ns(ns: float) -> str:
    """A time in the unit a person reads: 950 ns, 1.2 µs, 55.1 µs, 10.4 ms, 1.10 s."""
    if ns < 1_000:
        return f"{ns:,.0f} ns"
    if ns < 1_000_000:
        return f"{ns / 1_000:,.1f} µs"
    if ns < 1_000_000_000:
        return f"{ns / 1_000_000:,.1f} ms"
    return f"{ns / 1e9:,.2f} s"


def measure(full: bool = False, cpus: Sequence[int] = ()) -> Cost:
    """The quick measurement (within ~0.25 s), or the full one with the spacing
    test and, given two CPUs, the neighbour impact (within ~10 s)."""
    from splitlock_probe.model.access import primitive
    from splitlock_probe.native import probe as core

    began = time.monotonic()
    btsq = primitive("btsq")
    hz = core.tsc_hz(10)
    with core.Arena(1) as arena:  # one page between guard pages: both offsets lie in it
        split = arena.address(SPLIT_OFFSET)
        aligned = arena.address(ALIGNED_OFFSET)
        pairs, budget = (FULL_PAIRS, FULL_BUDGET_S) if full else (QUICK_PAIRS, QUICK_BUDGET_S)
        sample = core.cost_sample(btsq, split, aligned, pairs, int(budget * hz))
        batched = core.time_op(btsq, aligned, 0, 7, 0, 20_000)
        aligned_op = batched.min_cycles if isinstance(batched, core.Timing) else 0.0
        stopped = None if sample.fault is None else f"a fault stopped the sampling: {sample.fault}"
        if not sample.split:
            raise RuntimeError(stopped or "no split lock could be timed")
        spaced: dict[str, Quantiles] = {}
        neighbours: list[NeighbourImpact] = []
        note = None
        if full and sample.fault is None:
            for name, gap, n in (("ticks", TICK_SPACING_S, TICK_SAMPLES),
                                 ("seconds", SECOND_SPACING_S, SECOND_SAMPLES)):  # fmt: skip
                s = core.cost_sample(btsq, split, aligned, n, 0, int(gap * 1e9))
                if s.split:
                    spaced[name] = Quantiles.of(s.split)
            if len(cpus) >= 2:
                for victim in ("stream", "atomic"):
                    neighbours.append(_neighbour(core, btsq, split, aligned, cpus, victim))
            else:
                note = "one CPU only: no neighbour to disturb"
    return Cost(
        hz,
        Quantiles.of(sample.split),
        Quantiles.of(sample.aligned),
        aligned_op,
        spaced,
        tuple(neighbours),
        note,
        stopped,
        time.monotonic() - began,
        sample.split,
    )


def _neighbour(
    core: Any, btsq: Any, split: Any, aligned: Any, cpus: Sequence[int], victim: str
) -> NeighbourImpact:
    rates: dict[str, float] = {}
    split_ops = 0
    seconds = NEIGHBOUR_MS / 1000
    for aggressor in ("idle", "aligned", "split"):
        run = core.neighbour(btsq, split, aligned, cpus[0], cpus[1], victim, aggressor,
                             NEIGHBOUR_MS)  # fmt: skip
        rates[aggressor] = run.victim_units / (run.elapsed_ns / 1e9)
        if aggressor == "split":
            split_ops, seconds = run.aggressor_ops, run.elapsed_ns / 1e9
    return NeighbourImpact(victim, rates["idle"], rates["aligned"], rates["split"], split_ops,
                           seconds)  # fmt: skip


def as_dict(cost: Cost) -> dict[str, Any]:
    klass, reason = cost.classification
    return {
        "split_cycles": cost.split.as_dict(),
        "aligned_cycles": cost.aligned.as_dict(),
        "aligned_op_cycles": round(cost.aligned_op_cycles, 2),
        "tsc_hz": cost.tsc_hz,
        "split_ns_p50": round(cost.split_ns_p50, 1),
        "ratio": round(cost.ratio, 1),
        "class": klass,
        "reason": reason,
        "spaced": {k: q.as_dict() for k, q in cost.spaced.items()},
        "neighbours": [n.as_dict() for n in cost.neighbours],
        "neighbour_note": cost.neighbour_note,
        "stopped": cost.stopped,
        "elapsed_s": round(cost.elapsed_s, 3),
    }


def quick_here() -> tuple[Cost | None, str | None]:
    """The quick measurement on this host, or why there is none."""
    import os

    from splitlock_probe import native
    from splitlock_probe.errors import ProbeError
    from splitlock_probe.host.paths import ROOT_ENV

    if os.environ.get(ROOT_ENV):
        return None, (
            f"not measured: {ROOT_ENV} stands for a recorded host, and this CPU is not its CPU"
        )
    reason = native.unsupported_reason()
    if reason:
        return None, f"not measured: {reason}"
    try:
        return measure(), None
    except (ProbeError, RuntimeError) as exc:
        return None, f"not measured: {exc}"


# What one split lock costs on a host of each class, for "on another host"
# estimates: the published bare-metal figure, and this project's measured VMs
# (docs/reference.md §6).
TYPICAL_NS = {NATIVE: 1_000.0, TRAPPED: 55_000.0, PENALIZED: PENALTY_MIN_NS}


def estimate(split_locks: int, here: Cost | None) -> dict[str, Any]:
    """What `split_locks` split locks cost here (from the measurement) and on a
    host of each other class."""
    out: dict[str, Any] = {"split_locks": split_locks}
    if here is not None:
        klass, _ = here.classification
        out.update(here_s=split_locks * here.split_ns_p50 / 1e9, here_class=klass,
                   per_lock_ns=round(here.split_ns_p50, 1))  # fmt: skip
    out["elsewhere_s"] = {k: split_locks * ns / 1e9 for k, ns in TYPICAL_NS.items()}
    return out


def estimate_words(e: dict[str, Any]) -> str:
    n = e["split_locks"]
    said = f"the {counted(n, 'traced split lock')}"
    if "here_s" in e:
        said += f" cost ~{format_ns(e['here_s'] * 1e9)} here ({e['here_class']})"
    others = e["elsewhere_s"]
    return (
        f"{said}; on a host that traps each one (~{format_ns(TYPICAL_NS[TRAPPED])} each, as in "
        f"some VMs) ~{format_ns(others[TRAPPED] * 1e9)}, and under the kernel's split-lock "
        f"penalty (10 ms each) ~{format_ns(others[PENALIZED] * 1e9)}"
    )
