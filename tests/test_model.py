"""Access arithmetic, property-tested against a brute-force byte-set computation."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from splitlock_probe.model.access import LINE, PAGE, PRIMITIVES, Access, Form, Insn, primitive

BIT_TEST = [p for p in PRIMITIVES.values() if p.insn.is_bit_test]


def brute_bytes(ea: int, width: int, form: Form, bit: int, bit_test: bool) -> set[int]:
    """Bytes touched, found by search rather than by formula."""
    if not bit_test or form is Form.IMM:
        return set(range(ea, ea + width))
    # Register form: the operand is the width-sized chunk (counted from ea)
    # whose bits include `bit`; look for it among chunks on both sides.
    for k in range(-600, 600):
        lo = k * width * 8
        if lo <= bit < lo + width * 8:
            return set(range(ea + k * width, ea + (k + 1) * width))
    raise AssertionError("bit out of searched range")


@given(
    prim=st.sampled_from(list(PRIMITIVES.values())),
    ea=st.integers(min_value=0, max_value=3 * PAGE),
    bit=st.integers(min_value=-4096, max_value=4095),
)
def test_access_matches_brute_force(prim, ea, bit):  # type: ignore[no-untyped-def]
    touched = brute_bytes(ea, prim.width, prim.form, bit, prim.insn.is_bit_test)
    access = prim.access(ea, bit)
    assert set(range(access.offset, access.offset + access.size)) == touched
    lines = {b // LINE for b in touched}
    pages = {b // PAGE for b in touched}
    assert access.crosses_line == (len(lines) > 1)
    assert access.crosses_page == (len(pages) > 1)
    assert access.misaligned == (min(touched) % prim.width != 0)


@given(offset=st.integers(min_value=0, max_value=2 * PAGE), size=st.sampled_from([1, 2, 4, 8]))
def test_naturally_aligned_never_splits(offset, size):  # type: ignore[no-untyped-def]
    access = Access(offset - offset % size, size)
    assert not access.misaligned
    assert not access.crosses_line
    assert not access.crosses_page


def test_seed_case_prediction() -> None:
    # compat_vcpu_info at line offset 56: evtchn_pending_sel at 60, 8-byte btsq.
    legacy, patched = primitive("legacy"), primitive("patched")
    assert legacy.name == "btsq" and patched.name == "btsl"
    assert legacy.predict(legacy.access(56 + 4, 3)).splits_line
    assert not patched.predict(patched.access(56 + 4, 3)).splits_line


def test_immediate_offset_is_modulo_width() -> None:
    imm, reg = primitive("btsl-imm"), primitive("btsl")
    assert imm.access(100, 35) == Access(100, 4)  # bit 3 of the dword at EA
    assert reg.access(100, 35) == Access(104, 4)  # the dword at EA + 4
    assert reg.access(100, -1) == Access(96, 4)  # signed: one dword down


def test_cmpxchg16b_misaligned_faults_instead_of_splitting() -> None:
    cx = primitive("cmpxchg16b")
    p = cx.predict(Access(56, 16))
    # The line arithmetic is the same for every width: bytes 56..71 cross the
    # line at 64. But the op raises #GP and never runs: no split lock.
    assert p.faults and p.splits_line and not p.split_lock
    assert not cx.predict(Access(48, 16)).faults
    assert not cx.predict(Access(48, 16)).splits_line  # aligned 16 bytes: one line


def test_catalogue_covers_the_locked_family() -> None:
    widths: dict[Insn, set[int]] = {}
    for p in PRIMITIVES.values():
        widths.setdefault(p.insn, set()).add(p.width)
    for insn in (Insn.BTS, Insn.BTR, Insn.BTC):
        assert widths[insn] == {2, 4, 8}
    for insn in (Insn.XADD, Insn.CMPXCHG, Insn.XCHG, Insn.ADD):
        assert widths[insn] == {1, 2, 4, 8}
    assert widths[Insn.CMPXCHG16B] == {16}
    assert {p.form for p in BIT_TEST} == {Form.REG, Form.IMM}
