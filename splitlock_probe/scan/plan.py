"""The probe matrix: layouts x fields x primitives x placements x bits.

Probes whose bits touch the same bytes are folded into one ProbeGroup (their
outcome cannot differ), and probe groups that touch the same bytes with the
same primitive share one Measurement: the physical experiment is run once and
reported under each. A page-wide align-1 scan is ~775,000 probes but ~20,000
groups and ~13,000 measurements.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from splitlock_probe.errors import closest_first
from splitlock_probe.model.access import PAGE, Access, Form, Prediction, Primitive
from splitlock_probe.model.layouts import Layout, Span, placements
from splitlock_probe.text import escape

# The arena is four pages; struct placements are offsets into the second, so a
# negative register bit offset (up to -4096 bytes) and accesses past the end
# of the page (up to two pages) still land in our own memory.
ARENA_PAGES = 4
PROBE_PAGE = 1
# What the worker names each probe thread: the kernel prints it in its trap
# lines, and the kmsg detector matches it with the thread id.
PROBE_THREAD_NAME = "splitlock-probe"  # 15 bytes, the most a task name holds
ARENA_LOW = -PROBE_PAGE * PAGE
ARENA_HIGH = (ARENA_PAGES - PROBE_PAGE) * PAGE
# No register bit offset beyond this can stay in the arena: a bound checked
# before any range is expanded, so `--bits 0-1000000000` costs nothing.
MAX_ABS_BIT = 8 * ARENA_PAGES * PAGE


@dataclass(frozen=True)
class BitGroup:
    """Bits of one (field, primitive) that touch the same bytes, relative to the struct."""

    rel: Access
    ranges: tuple[tuple[int, int], ...]  # inclusive bit ranges
    first: int
    count: int


@dataclass(frozen=True)
class Measurement:
    """One physical experiment: a primitive run at one address with one bit."""

    index: int
    primitive: Primitive
    ea: int  # effective address, relative to the start of the probe page
    bit: int
    access: Access
    baseline: bool = False


# Each primitive's aligned baseline: offset 0 of the probe page, bit 0.
BASELINE_EA = 0
BASELINE_BIT = 0


def baseline_measurement(prim: Primitive, index: int) -> Measurement:
    """The aligned run of `prim` that the timing ratio divides by."""
    return Measurement(
        index,
        prim,
        BASELINE_EA,
        prim.exec_bit(BASELINE_BIT),
        prim.access(BASELINE_EA, BASELINE_BIT),
        baseline=True,
    )


@dataclass(frozen=True)
class ProbeGroup:
    layout: Layout
    field: str
    primitive: Primitive
    align: int
    placement: int
    bits: BitGroup
    access: Access
    predicted: Prediction
    measurement: int


@dataclass
class Plan:
    probes: list[ProbeGroup] = field(default_factory=list)
    measurements: list[Measurement] = field(default_factory=list)
    baselines: dict[str, int] = field(default_factory=dict)  # primitive name -> measurement

    @property
    def probe_count(self) -> int:
        return sum(p.bits.count for p in self.probes)


def parse_bit_ranges(text: str, limit: int = MAX_ABS_BIT) -> list[tuple[int, int]]:
    """'0-31,40,-8--1' -> inclusive (lo, hi) ranges, each bound within +-limit
    (checked before anything is expanded). ValueError names the bad part."""
    ranges: list[tuple[int, int]] = []
    if len(text) > 10_000:
        raise ValueError(f"a bit list of {len(text):,} characters is too long")
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        sep = part.find("-", 1)  # a leading '-' is a sign
        try:
            if len(part) > 40:  # no bound that long fits the limit; int() would be slow
                raise ValueError
            if sep < 0:
                lo = hi = int(part)
            else:
                lo, hi = int(part[:sep]), int(part[sep + 1 :])
            if hi < lo:
                raise ValueError
        except ValueError:
            raise ValueError(
                f"bad bit or range {part[:40]!r}: use N or LO-HI, comma separated"
            ) from None
        if not (-limit <= lo and hi <= limit):
            raise ValueError(f"bit {lo if lo < -limit else hi} is beyond +-{limit:,}")
        ranges.append((lo, hi))
    if not ranges:
        raise ValueError("no bits given")
    return ranges


def parse_bits(text: str, limit: int = MAX_ABS_BIT) -> list[int]:
    """'0-31,40,-8--1' -> sorted unique bits. Raises ValueError with the bad part."""
    bits: set[int] = set()
    for lo, hi in parse_bit_ranges(text, limit):
        bits.update(range(lo, hi + 1))
    return sorted(bits)


def fold_ranges(bits: Sequence[int]) -> tuple[tuple[int, int], ...]:
    """Sorted bits -> inclusive runs."""
    ranges: list[tuple[int, int]] = []
    for b in bits:
        if ranges and ranges[-1][1] == b - 1:
            ranges[-1] = (ranges[-1][0], b)
        else:
            ranges.append((b, b))
    return tuple(ranges)


def format_ranges(ranges: Iterable[tuple[int, int]]) -> str:
    return ",".join(str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in ranges)


def bit_groups(primitive: Primitive, field_offset: int, bits: Sequence[int]) -> list[BitGroup]:
    """Group bits by the bytes they make `primitive` touch (relative to the struct).
    An op with no bit operand is one probe, whatever bits were asked for."""
    if not primitive.insn.is_bit_test:
        return [BitGroup(Access(field_offset, primitive.width), (), 0, 1)]
    by_offset: dict[int, list[int]] = {}
    for b in bits:
        by_offset.setdefault(primitive.access(field_offset, b).offset, []).append(b)
    return [
        BitGroup(Access(off, primitive.width), fold_ranges(bs), bs[0], len(bs))
        for off, bs in sorted(by_offset.items())
    ]


class PlanError(ValueError):
    pass


def check_in_arena(prim: Primitive, ea: int, bit: int) -> Access:
    """The op's access, or PlanError when it would leave the probe arena."""
    access = prim.access(ea, bit)
    if access.offset < ARENA_LOW or access.offset + access.size > ARENA_HIGH:
        raise PlanError(
            f"{prim.name} with bit {bit} at offset {ea} touches bytes "
            f"{access.offset}..{access.offset + access.size - 1}, outside the "
            f"probe arena ({ARENA_LOW}..{ARENA_HIGH - 1})"
        )
    return access


def build(
    layouts: Sequence[Layout],
    fields: Sequence[str],
    primitives: Sequence[Primitive],
    align: int | None,
    span: Span,
    bits: Sequence[int] | None = None,
    imm_max: int = 63,
    outside_field: bool = False,
) -> Plan:
    """The probe matrix; no fields: each layout's default fields; align=None:
    each layout's own placement policy; bits=None takes every bit of each field. Bits outside a
    field are refused unless outside_field (a register bit offset that reaches
    the neighbouring bytes on purpose)."""
    plan = Plan()
    keyed: dict[tuple[str, int], int] = {}

    def measurement(prim: Primitive, ea: int, bit: int, baseline: bool = False) -> int:
        access = prim.access(ea, bit)
        key = (prim.name, access.offset)
        if key not in keyed:
            check_in_arena(prim, ea, bit)
            keyed[key] = len(plan.measurements)
            plan.measurements.append(
                Measurement(len(plan.measurements), prim, ea, prim.exec_bit(bit), access, baseline)
            )
        return keyed[key]

    for prim in primitives:
        plan.baselines[prim.name] = measurement(prim, BASELINE_EA, BASELINE_BIT, baseline=True)

    for layout in layouts:
        layout_align = layout.placement_align if align is None else align
        if not (fields or layout.defaults):
            raise PlanError(
                f"{layout.label} has no member a locked op fits (2, 4, 8 or 16 bytes, "
                "not a bitfield): name one with --field"
            )
        for field_name in fields or layout.defaults:
            try:
                fld = layout.field(field_name)
            except KeyError:
                raise PlanError(_no_field(layout, field_name)) from None
            field_bits = list(fld.bits) if bits is None else list(bits)
            if bits is not None and not outside_field:
                outside = [b for b in field_bits if b not in fld.bits]
                if outside and any(p.insn.is_bit_test for p in primitives):
                    raise PlanError(
                        f"bit {outside[0]} is outside {layout.label}.{field_name} "
                        f"({fld.size} bytes: bits 0-{fld.bits.stop - 1}); "
                        "--outside-field probes such bits anyway"
                    )
            for prim in primitives:
                if prim.form is Form.IMM and not all(0 <= b <= imm_max for b in field_bits):
                    raise PlanError(
                        f"{prim.name} takes immediate bit offsets 0..{imm_max}; "
                        "choose bits with --bits"
                    )
                groups = bit_groups(prim, fld.offset, field_bits)
                for placement in placements(layout, layout_align, span):
                    for group in groups:
                        access = group.rel.shifted(placement)
                        ea = placement + fld.offset
                        index = measurement(prim, ea, group.first)
                        plan.probes.append(
                            ProbeGroup(
                                layout,
                                field_name,
                                prim,
                                layout_align,
                                placement,
                                group,
                                access,
                                prim.predict(access),
                                index,
                            )
                        )
    if not plan.probes:
        raise PlanError("no placement fits: a struct larger than a page has none with --span page")
    return plan


def _no_field(layout: Layout, name: str) -> str:
    close, rest = closest_first(name, layout.field_names)
    shown = [*close, *rest]
    more = f" and {len(shown) - 24:,} more" if len(shown) > 24 else ""
    return (
        f"{layout.label} has no field {escape(name)!r}; its fields"
        f"{' (closest first)' if close else ''}: {', '.join(shown[:24])}{more}"
    )
