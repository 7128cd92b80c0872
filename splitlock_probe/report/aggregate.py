"""Per (layout, field, primitive) roll-ups of a scan, shared by the table and the map."""

from __future__ import annotations

import dataclasses
import statistics
from dataclasses import dataclass

from splitlock_probe.scan.plan import fold_ranges, format_ranges
from splitlock_probe.scan.request import ScanResult
from splitlock_probe.scan.verdict import FAULTED, INCONCLUSIVE, SPLIT


@dataclass
class Cell:
    """What happened at one line offset of the struct's placement."""

    bits_split: int = 0
    bits_total: int = 0
    inconclusive: bool = False
    faulted: bool = False  # some probe here raised #GP
    disagrees: bool = False


@dataclass
class Row:
    layout: str
    field: str
    primitive: str
    placements: set[int] = dataclasses.field(default_factory=set)
    split_placements: set[int] = dataclasses.field(default_factory=set)
    split_bits: set[int] = dataclasses.field(default_factory=set)
    split_cycles: list[float] = dataclasses.field(default_factory=list)
    clean_cycles: list[float] = dataclasses.field(default_factory=list)
    traps: int = 0
    trap_checks: int = 0
    agree: int = 0
    disagree: int = 0
    inconclusive: int = 0
    faulted: int = 0
    cells: dict[int, Cell] = dataclasses.field(default_factory=dict)

    @property
    def split_bit_text(self) -> str:
        return format_ranges(fold_ranges(sorted(self.split_bits))) or "-"

    @staticmethod
    def median(values: list[float]) -> float | None:
        return statistics.median(values) if values else None


def rows(result: ScanResult) -> list[Row]:
    table: dict[tuple[str, str, str], Row] = {}
    seen_measure: set[tuple[tuple[str, str, str], int]] = set()
    for probe, j in result.measured_probes():
        key = (probe.layout.label, probe.field, probe.primitive.name)
        row = table.setdefault(key, Row(*key))
        row.placements.add(probe.placement)
        cell = row.cells.setdefault(probe.placement % 64, Cell())
        cell.bits_total += probe.bits.count
        if j.verdict == SPLIT:
            row.split_placements.add(probe.placement)
            for lo, hi in probe.bits.ranges:
                row.split_bits.update(range(lo, hi + 1))
            cell.bits_split += probe.bits.count
        elif j.verdict == INCONCLUSIVE:
            cell.inconclusive = True
            row.inconclusive += probe.bits.count
        elif j.verdict == FAULTED:
            cell.faulted = True
            row.faulted += probe.bits.count
        if j.agrees is True:
            row.agree += probe.bits.count
        elif j.agrees is False:
            row.disagree += probe.bits.count
            cell.disagrees = True
        for e in j.evidence:
            if e.detector == "actrap" and e.status == "ok":
                row.trap_checks += 1
                row.traps += e.says == "misaligned"
        if (key, probe.measurement) in seen_measure:
            continue  # one latency per physical measurement
        seen_measure.add((key, probe.measurement))
        for e in j.evidence:
            if e.detector == "timing" and "min_cycles" in e.data:
                (row.split_cycles if j.verdict == SPLIT else row.clean_cycles).append(
                    e.data["min_cycles"]
                )
    return list(table.values())
