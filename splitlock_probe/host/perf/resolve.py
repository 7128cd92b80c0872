"""From a CPU, or from a user's --event, to counters ready to open.

--event accepts what perf accepts for these events:
  r10f4                          a raw code on every core PMU (both types on hybrid parts)
  cpu/event=0xf4,umask=0x10/     sysfs terms, placed with that PMU's format/ files
  sq_misc.split_lock             a name from our table, encoded for this CPU
  task-clock, context-switches   perf's software events (counted anywhere)
A raw or sysfs event is taken to count bus locks (that is what one passes it
for); a software event counts something else and never decides a verdict.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from splitlock_probe.errors import UsageError
from splitlock_probe.host.cpu import Cpu
from splitlock_probe.host.perf.events import (
    BUS_LOCK,
    OTHER,
    PERF_TYPE_SOFTWARE,
    SOFTWARE,
    EventDef,
    known_names,
    table_for,
)
from splitlock_probe.host.perf.sysfs import Pmu, core_pmus
from splitlock_probe.text import escape

_RAW = re.compile(r"r([0-9a-f]+)")
_SYSFS = re.compile(r"([A-Za-z0-9_.-]+)/([^/]*)/")
_HYBRID_PMU = {"core": "cpu_core", "atom": "cpu_atom"}


@dataclass(frozen=True)
class Counter:
    """One event on one PMU: what perf_event_open needs, and what it counts."""

    name: str
    kind: str  # SPLIT_LOCK | BUS_LOCK | OTHER
    pmu: str
    type: int
    config: int
    config1: int = 0
    config2: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "pmu": self.pmu,
            "type": self.type,
            "config": self.config,
            "config1": self.config1,
            "config2": self.config2,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Counter:
        return cls(
            d["name"], d["kind"], d["pmu"], d["type"], d["config"], d["config1"], d["config2"]
        )


@dataclass(frozen=True)
class Resolution:
    counters: tuple[Counter, ...]
    notes: tuple[str, ...] = ()


def _targets(d: EventDef, pmus: dict[str, Pmu]) -> list[Pmu]:
    hybrid = any(n in pmus for n in _HYBRID_PMU.values())
    if hybrid:
        if d.core_type is None:
            return [p for p in core_pmus(pmus) if p.name != "cpu"]
        name = _HYBRID_PMU[d.core_type]
        return [pmus[name]] if name in pmus else []
    if "cpu" in pmus and d.core_type in (None, "core"):
        return [pmus["cpu"]]
    return []


def _counters(defs: list[EventDef], pmus: dict[str, Pmu]) -> list[Counter]:
    return [
        Counter(d.name, d.kind, pmu.name, pmu.type, d.config)
        for d in defs
        for pmu in _targets(d, pmus)
    ]


def for_cpu(cpu: Cpu, pmus: dict[str, Pmu]) -> Resolution:
    """The table's events for this CPU, on the PMUs this host has."""
    counters = _counters(table_for(cpu.vendor, cpu.family, cpu.model), pmus)
    notes = []
    if counters and any(n in pmus for n in _HYBRID_PMU.values()):
        counted = {c.pmu for c in counters}
        for pmu in core_pmus(pmus):
            if pmu.name not in counted:
                notes.append(
                    f"{pmu.name}: no known split-lock or bus-lock event for this core type, so "
                    "threads running there are not counted (add one with "
                    f"--event {pmu.name}/event=0x..,umask=0x../)"
                )
    return Resolution(tuple(counters), tuple(notes))


def _sysfs(pmu_name: str, terms: str, spec: str, pmus: dict[str, Pmu]) -> Counter:
    pmu = pmus.get(pmu_name)
    if pmu is None:
        have = ", ".join(pmus) or "none"
        raise UsageError(f"--event {spec}: no PMU named {pmu_name} here (PMUs: {have})")
    words = {"config": 0, "config1": 0, "config2": 0}
    label = spec
    for term in filter(None, terms.split(",")):
        key, sep, value = term.partition("=")
        if key == "name":
            label = value
            continue
        fmt = pmu.formats.get(key)
        if fmt is None:
            offered = ", ".join(sorted(pmu.formats)) or "none"
            raise UsageError(f"--event {spec}: {pmu_name} has no term {key!r} (it has: {offered})")
        try:
            words[fmt.word] |= fmt.place(int(value, 0) if sep else 1)
        except ValueError as exc:
            raise UsageError(f"--event {spec}: {key}={value}: {exc}") from None
    return Counter(
        label, BUS_LOCK, pmu.name, pmu.type, words["config"], words["config1"], words["config2"]
    )


def split_specs(values: Sequence[str]) -> list[str]:
    """`-e a,b` as perf reads it: commas separate events, except inside `pmu/.../`."""
    out: list[str] = []
    for value in values:
        depth, start = 0, 0
        for i, ch in enumerate(value):
            if ch == "/":
                depth ^= 1
            elif ch == "," and depth == 0:
                out.append(value[start:i])
                start = i + 1
        out.append(value[start:])
    return [v.strip() for v in out if v.strip()]


def parse_spec(spec: str, cpu: Cpu, pmus: dict[str, Pmu]) -> list[Counter]:
    """The counters one --event names; UsageError with the choices when it names none."""
    text = spec.strip()
    low = text.lower()
    if low in SOFTWARE:
        return [Counter(low, OTHER, "software", PERF_TYPE_SOFTWARE, SOFTWARE[low])]
    if m := _RAW.fullmatch(low):
        if len(m[1].lstrip("0")) > 16:
            raise UsageError(
                f"--event {escape(text)}: a raw code is at most 64 bits (16 hex digits)"
            )
        cores = [p for p in core_pmus(pmus) if not (p.name == "cpu" and len(core_pmus(pmus)) > 1)]
        if not cores:
            raise UsageError(
                f"--event {text}: a raw event needs a core PMU, and this host has none"
            )
        return [Counter(text, BUS_LOCK, p.name, p.type, int(m[1], 16)) for p in cores]
    if m := _SYSFS.fullmatch(text):
        return [_sysfs(m[1], m[2], text, pmus)]
    known = known_names()
    if low in known:
        mine = [d for d in table_for(cpu.vendor, cpu.family, cpu.model) if d.name == low]
        counters = _counters(mine, pmus)
        if not counters:
            where = cpu.identity or "?"
            raise UsageError(
                f"--event {text}: not an event of this CPU ({cpu.vendor} {where}) as far as we "
                "know; pass its raw code (rUUEE) or cpu/event=0x..,umask=0x../"
            )
        return counters
    names = ", ".join(sorted({*known, *SOFTWARE}))
    raise UsageError(
        f"--event {text}: give a raw code (r10f4), a sysfs event (cpu/event=0xf4,umask=0x10/) "
        f"or a name ({names})"
    )
