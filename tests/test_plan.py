"""The probe matrix: folding bits, sharing measurements, refusing bad input."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from splitlock_probe.model.access import PRIMITIVES, Form, primitive
from splitlock_probe.model.layouts import LAYOUTS, Span
from splitlock_probe.scan.plan import PlanError, build, fold_ranges, format_ranges, parse_bits

DEFAULT = (LAYOUTS["vcpu_info"], LAYOUTS["compat_vcpu_info"])
PRIMS = (primitive("btsq"), primitive("btsl"))


def test_default_matrix_size() -> None:
    plan = build(DEFAULT, ["evtchn_pending_sel"], PRIMS, 4, Span.LINE)
    # 16 placements x (64 + 64 bits for vcpu_info, 32 + 32 for compat).
    assert plan.probe_count == 16 * (128 + 64)
    # Far fewer physical measurements than probes.
    assert len(plan.measurements) < 50


def test_page_align1_matrix_stays_small() -> None:
    plan = build(DEFAULT, ["evtchn_pending_sel"], PRIMS, 1, Span.PAGE)
    assert plan.probe_count == 4033 * 192
    assert len(plan.probes) == 4033 * 5  # btsq: 1 group, btsl: 2 (vcpu_info) or 1
    assert len(plan.measurements) < 9000


def test_register_bits_group_by_the_bytes_they_touch() -> None:
    plan = build(
        (LAYOUTS["vcpu_info"],), ["evtchn_pending_sel"], (primitive("btsl"),), 8, Span.LINE
    )
    groups = {(p.placement, p.bits.ranges, p.access.offset) for p in plan.probes}
    assert (0, ((0, 31),), 8) in groups
    assert (0, ((32, 63),), 12) in groups


def test_shared_measurement_across_layouts() -> None:
    # vcpu_info at 52 and compat_vcpu_info at 56 put their btsq on the same bytes (60..67).
    plan = build(DEFAULT, ["evtchn_pending_sel"], (primitive("btsq"),), 4, Span.LINE)
    by_place = {(p.layout.name, p.placement): p.measurement for p in plan.probes}
    assert by_place[("vcpu_info", 52)] == by_place[("compat_vcpu_info", 56)]


def test_baseline_is_aligned_and_first() -> None:
    plan = build(DEFAULT, ["evtchn_pending_sel"], PRIMS, 4, Span.LINE)
    for name, index in plan.baselines.items():
        m = plan.measurements[index]
        assert m.baseline and m.primitive.name == name and not m.access.misaligned


def test_missing_field_is_a_clear_error() -> None:
    with pytest.raises(PlanError, match="has no field 'evtchn_pending_sel'; its fields"):
        build((LAYOUTS["shared_info"],), ["evtchn_pending_sel"], PRIMS, 4, Span.LINE)


def test_immediate_bits_are_bounded() -> None:
    with pytest.raises(PlanError, match=r"immediate bit offsets 0\.\.63"):
        build(
            DEFAULT, ["evtchn_pending_sel"], (primitive("btsq-imm"),), 4, Span.LINE, [64],
            outside_field=True,
        )  # fmt: skip


def test_bits_outside_the_field_are_refused_unless_meant() -> None:
    with pytest.raises(PlanError, match=r"outside vcpu_info.evtchn_pending_sel .*bits 0-63"):
        build(DEFAULT, ["evtchn_pending_sel"], PRIMS, 4, Span.LINE, [64])
    plan = build(DEFAULT, ["evtchn_pending_sel"], PRIMS, 4, Span.LINE, [64], outside_field=True)
    assert plan.probe_count > 0


def test_ops_without_a_bit_operand_are_one_probe_per_placement() -> None:
    plan = build(DEFAULT, ["evtchn_pending_sel"], (primitive("xaddq"),), 4, Span.LINE)
    assert plan.probe_count == len(plan.probes) == 2 * 16  # two layouts, 16 placements
    assert all(p.bits.ranges == () for p in plan.probes)


def test_huge_bit_ranges_are_refused_before_they_are_expanded() -> None:
    # The bound is checked on the range's ends: expanding first would build a
    # set of a trillion ints before any error.
    with pytest.raises(ValueError, match="beyond"):
        parse_bits("0-1000000000000")
    with pytest.raises(ValueError, match="bad bit"):
        parse_bits("1" * 5000)


def test_accesses_outside_the_arena_are_refused() -> None:
    with pytest.raises(PlanError, match="outside the probe arena"):
        build(DEFAULT, ["evtchn_pending_sel"], PRIMS, 4, Span.LINE, [1 << 17], outside_field=True)


def test_parse_bits() -> None:
    assert parse_bits("0-3,8, 10-11") == [0, 1, 2, 3, 8, 10, 11]
    assert parse_bits("-8--6,5") == [-8, -7, -6, 5]
    for bad in ("x", "5-3", "", "1-"):
        with pytest.raises(ValueError):
            parse_bits(bad)


def test_fold_and_format_ranges() -> None:
    assert format_ranges(fold_ranges([0, 1, 2, 5, 7, 8])) == "0-2,5,7-8"


@settings(max_examples=60, deadline=None)
@given(
    layout=st.sampled_from(["vcpu_info", "compat_vcpu_info"]),
    field=st.sampled_from(["evtchn_pending_sel", "arch.cr2", "time.tsc_timestamp"]),
    prim=st.sampled_from([p for p in PRIMITIVES.values() if p.form is Form.REG]),
    align=st.sampled_from([1, 2, 4, 8]),
    bits=st.lists(st.integers(min_value=-64, max_value=255), min_size=1, max_size=12),
)
def test_groups_cover_each_bit_once_with_its_own_access(layout, field, prim, align, bits):  # type: ignore[no-untyped-def]
    lay = LAYOUTS[layout]
    plan = build((lay,), [field], (prim,), align, Span.LINE, sorted(set(bits)), outside_field=True)
    seen: dict[int, set[int]] = {}
    for p in plan.probes:
        m = plan.measurements[p.measurement]
        assert m.primitive == prim and m.access == p.access
        for lo, hi in p.bits.ranges:
            for b in range(lo, hi + 1):
                assert prim.access(p.placement + lay.field(field).offset, b) == p.access
                assert b not in seen.setdefault(p.placement, set())
                seen[p.placement].add(b)
    assert all(s == set(bits) for s in seen.values())
    assert plan.probe_count == len(set(bits)) * len(seen)
