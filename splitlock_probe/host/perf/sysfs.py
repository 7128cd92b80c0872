"""The PMUs the kernel exposes under /sys/bus/event_source/devices.

Each PMU directory has a `type` (the perf_event_attr.type to use) and, for
PMUs that take raw events, a `format/` directory: one file per event term,
saying which bits of which config word the term fills, e.g. `config:0-7`,
`config:0-7,32-35` (AMD's 12-bit event select), `config:18` (edge),
`config1:0-63`. A value is spread over the ranges low bits first, as perf
does. Hybrid Intel parts have one core PMU per core type: `cpu_core`,
`cpu_atom`; other parts have `cpu`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from splitlock_probe.host.paths import host_path, read_text

DEVICES = "/sys/bus/event_source/devices"
CORE_PMUS = ("cpu", "cpu_core", "cpu_atom")
_FORMAT = re.compile(r"(config[12]?):(\d+(?:-\d+)?(?:,\d+(?:-\d+)?)*)")


@dataclass(frozen=True)
class Format:
    word: str  # "config" | "config1" | "config2"
    ranges: tuple[tuple[int, int], ...]  # (low bit, high bit), inclusive, in order

    @property
    def width(self) -> int:
        return sum(hi - lo + 1 for lo, hi in self.ranges)

    def place(self, value: int) -> int:
        """`value` spread over this format's bits (low bits into the first range)."""
        if value < 0 or value >= 1 << self.width:
            raise ValueError(f"{value:#x} does not fit in {self.width} bits")
        out = 0
        for lo, hi in self.ranges:
            n = hi - lo + 1
            out |= (value & ((1 << n) - 1)) << lo
            value >>= n
        return out


def parse_format(text: str) -> Format:
    m = _FORMAT.fullmatch(text.strip())
    if m is None:
        raise ValueError(f"unknown format {text.strip()!r}")
    ranges = []
    for part in m[2].split(","):
        lo_text, _, hi_text = part.partition("-")
        if len(lo_text) > 2 or len(hi_text) > 2:  # a config word has 64 bits
            raise ValueError(f"format bits past 63 in {text.strip()!r}")
        lo, hi = int(lo_text), int(hi_text or lo_text)
        if not lo <= hi <= 63:
            raise ValueError(f"format bits past 63 in {text.strip()!r}")
        ranges.append((lo, hi))
    return Format(m[1], tuple(ranges))


@dataclass(frozen=True)
class Pmu:
    name: str
    type: int
    formats: dict[str, Format] = field(default_factory=dict)

    @property
    def is_core(self) -> bool:
        return self.name in CORE_PMUS


def _pmu(name: str) -> Pmu | None:
    type_text = read_text(f"{DEVICES}/{name}/type")
    try:
        pmu_type = int((type_text or "").strip())
    except ValueError:
        return None
    formats: dict[str, Format] = {}
    fdir = host_path(f"{DEVICES}/{name}/format")
    try:
        terms = sorted(os.listdir(fdir))
    except OSError:
        terms = []
    for term in terms:
        text = read_text(f"{DEVICES}/{name}/format/{term}")
        try:
            formats[term] = parse_format(text or "")
        except ValueError:
            continue  # a format we do not understand is a term we do not offer
    return Pmu(name, pmu_type, formats)


def discover() -> dict[str, Pmu]:
    """Every PMU with a readable type, by name."""
    try:
        names = sorted(os.listdir(host_path(DEVICES)))
    except OSError:
        return {}
    found = {}
    for name in names:
        pmu = _pmu(name)
        if pmu is not None:
            found[name] = pmu
    return found


def core_pmus(pmus: dict[str, Pmu]) -> list[Pmu]:
    return [pmus[n] for n in CORE_PMUS if n in pmus]
