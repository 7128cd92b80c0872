"""Layouts against the C compiler's offsetof(), and the placement policies."""

from __future__ import annotations

import pytest

from splitlock_probe.model.layouts import LAYOUTS, Span, placements
from splitlock_probe.native import probe as core


def test_every_field_matches_the_compiler() -> None:
    compiled = core.compiled_layout_fields()
    assert compiled, "the core exported no layout table"
    seen = set()
    for layout_name, field_name, offset, size in compiled:
        layout = LAYOUTS[layout_name]
        if field_name == "":
            assert layout.size == size, layout_name
            continue
        field = layout.field(field_name)
        assert (field.offset, field.size) == (offset, size), f"{layout_name}.{field_name}"
        seen.add((layout_name, field_name))
    # Every field typed into Python was checked (pad fields only exist where C has them).
    for layout in LAYOUTS.values():
        for field in layout.fields:
            assert (layout.name, field.name) in seen, f"{layout.name}.{field.name} unchecked"


def test_reference_offsets() -> None:
    # docs/reference.md §3: the numbers the scan is about.
    assert LAYOUTS["vcpu_info"].field("evtchn_pending_sel").offset == 8
    assert LAYOUTS["compat_vcpu_info"].field("evtchn_pending_sel").offset == 4
    assert LAYOUTS["compat_vcpu_info"].field("evtchn_pending_sel").size == 4
    assert LAYOUTS["shared_info"].field("evtchn_mask").offset == 0xA00
    assert LAYOUTS["compat_shared_info"].field("evtchn_mask").offset == 0x880


@pytest.mark.parametrize("align", [1, 2, 4, 8])
def test_line_span_covers_one_line(align: int) -> None:
    got = placements(LAYOUTS["compat_vcpu_info"], align, Span.LINE)
    assert list(got) == list(range(0, 64, align))


def test_page_span_keeps_the_struct_inside_the_page() -> None:
    got = placements(LAYOUTS["vcpu_info"], 1, Span.PAGE)
    assert got[0] == 0 and got[-1] == 4096 - 64 and len(got) == 4033


def test_shared_info_is_page_aligned() -> None:
    assert list(placements(LAYOUTS["shared_info"], 1, Span.PAGE)) == [0]


def test_bad_align_is_refused() -> None:
    with pytest.raises(ValueError):
        placements(LAYOUTS["vcpu_info"], 3, Span.LINE)
