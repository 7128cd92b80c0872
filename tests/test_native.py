"""The compiled core on real buffers, on this machine's real CPU."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from splitlock_probe import native
from splitlock_probe.detectors import timing
from splitlock_probe.detectors.signals import BUS_ADRALN, SI_KERNEL
from splitlock_probe.model.access import PRIMITIVES, Form, primitive
from splitlock_probe.native import probe as native_probe

BASE = 4096  # struct placements live in the arena's second page


@pytest.fixture(scope="module")
def arena() -> Iterator[native_probe.Arena]:
    a = native_probe.Arena(4)
    yield a
    a.close()


def cycles(arena: native_probe.Arena, name: str, offset: int, bit: int = 0) -> float:
    t = native_probe.time_op(primitive(name), arena.address(BASE + offset), bit, 15, 0, 20_000)
    assert isinstance(t, native_probe.Timing), t
    return t.min_cycles


def test_split_btsq_is_slow_and_traps(arena: native_probe.Arena) -> None:
    aligned = cycles(arena, "btsq", 0)
    split = cycles(arena, "btsq", 60, 3)
    assert timing.classify(split / aligned) == "split", (split, aligned)
    fault = native_probe.trap(primitive("btsq"), arena.address(BASE + 60), 3)
    assert fault is not None and fault.ac_armed
    assert fault.signo == signal.SIGBUS and fault.si_code == BUS_ADRALN


@pytest.mark.parametrize("offset", range(0, 64, 4))
def test_btsl_at_every_4_aligned_offset_is_clean(arena: native_probe.Arena, offset: int) -> None:
    aligned = cycles(arena, "btsl", 0)
    assert timing.classify(cycles(arena, "btsl", offset, 31) / aligned) == "clean"
    assert native_probe.trap(primitive("btsl"), arena.address(BASE + offset), 31) is None


def test_misaligned_inside_a_line_traps_but_does_not_split(arena: native_probe.Arena) -> None:
    aligned = cycles(arena, "btsq", 0)
    assert timing.classify(cycles(arena, "btsq", 4) / aligned) == "clean"
    assert native_probe.trap(primitive("btsq"), arena.address(BASE + 4), 0) is not None


def test_every_primitive_runs_aligned(arena: native_probe.Arena) -> None:
    for prim in PRIMITIVES.values():
        bit = 5 if prim.form is not Form.NONE else 0
        assert native_probe.supported(prim, bit), prim.name
        assert native_probe.run(prim, arena.address(BASE), bit, 100) is None, prim.name


def test_misaligned_cmpxchg16b_is_caught_as_gp(arena: native_probe.Arena) -> None:
    fault = native_probe.run(primitive("cmpxchg16b"), arena.address(BASE + 8), 0)
    assert fault is not None
    assert fault.signo == signal.SIGSEGV and fault.si_code == SI_KERNEL and not fault.ac_armed


def test_ac_is_never_left_set(arena: native_probe.Arena) -> None:
    for _ in range(3):
        assert native_probe.trap(primitive("xaddl"), arena.address(BASE + 1), 0) is not None
        # With AC left set this plain misaligned run would trap.
        assert native_probe.run(primitive("xaddl"), arena.address(BASE + 1), 0, 10) is None


def test_traps_work_in_fresh_threads(arena: native_probe.Arena) -> None:
    results: list[object] = []

    def probe(offset: int) -> None:
        results.append(native_probe.trap(primitive("btsq"), arena.address(BASE + offset), 0))

    threads = [threading.Thread(target=probe, args=(off,)) for off in (60, 0, 61, 8)]
    for t in threads:
        t.start()
        t.join()
    assert [r is not None for r in results] == [True, False, True, False]


@settings(max_examples=200, deadline=None)
@given(
    prim=st.sampled_from([p for p in PRIMITIVES.values() if p.insn.value in ("bts", "btc")]),
    ea=st.integers(min_value=512, max_value=1024),
    bit=st.integers(min_value=-256, max_value=511),
)
def test_hardware_touches_the_bytes_the_model_says(prim, ea, bit):  # type: ignore[no-untyped-def]
    """Set one bit on zeroed memory; the byte the CPU changed lies in model.access()."""
    a = native_probe.Arena(4)
    try:
        if prim.form is Form.IMM:
            bit %= 64
        a.fill(0, bytes(4 * 4096))
        assert native_probe.run(prim, a.address(4096 + ea), bit, 1) is None
        changed = [i - 4096 for i, b in enumerate(a.read(0, 4 * 4096)) if b]
        access = prim.access(ea, bit)
        assert len(changed) == 1
        assert access.offset <= changed[0] < access.offset + access.size
        # Register form: a bit string from ea. Immediate: bit mod width, at ea.
        eff = bit % prim.bit_width if prim.form is Form.IMM else bit
        assert changed[0] == ea + eff // 8
    finally:
        a.close()


def test_the_arena_has_guard_pages(arena: native_probe.Arena) -> None:
    ffi, _ = native.load()
    below = ffi.cast("void *", arena.base - 1)
    above = ffi.cast("void *", arena.base + arena.pages * 4096)
    for address in (below, above):
        fault = native_probe.run(primitive("xaddb"), address, 0)
        assert fault is not None and fault.signo == signal.SIGSEGV
        assert fault.si_code == 2  # SEGV_ACCERR: mapped, PROT_NONE
    assert native_probe.run(primitive("xaddb"), arena.address(arena.pages * 4096 - 1), 0) is None


def test_tsc_frequency_is_plausible() -> None:
    hz = native_probe.tsc_hz(10)
    assert 1e8 < hz < 1e10


KERNEL_SIGBUS = r"""
import importlib, json, sys, tempfile
import cffi
from splitlock_probe import native
from splitlock_probe.native import probe as native_probe
from splitlock_probe.detectors import timing
from splitlock_probe.model.access import primitive
HELPER = (
    "#include <stdint.h>\n"
    "typedef int (*time_fn)(void *, void *, uint32_t, uint64_t, uint64_t, void *, void *);\n"
    "int time_with_ac(uintptr_t fn, uintptr_t op, uintptr_t a, uintptr_t t, uintptr_t f) {\n"
    "  __asm__ __volatile__(\"pushfq; orl $0x40000, (%%rsp); popfq\" ::: \"cc\", \"memory\");\n"
    "  return ((time_fn)fn)((void *)op, (void *)a, 3, 4, 0, (void *)t, (void *)f);\n"
    "}\n"
)
tmp = tempfile.mkdtemp()
ffi = cffi.FFI()
ffi.cdef("int time_with_ac(uintptr_t, uintptr_t, uintptr_t, uintptr_t, uintptr_t);")
ffi.set_source("_actest", HELPER)
ffi.compile(tmpdir=tmp)
sys.path.insert(0, tmp)
helper = importlib.import_module("_actest").lib
core_ffi, core = native.load()
a = native_probe.Arena(4)
# Install the handlers and touch the thread's guard before AC goes on.
assert native_probe.run(primitive("btsq"), a.address(4096), 0, 1) is None
op = native_probe._op(primitive("btsq"), 0)
t = core_ffi.new("struct slp_timing *")
f = core_ffi.new("struct slp_fault *")
addr = lambda p: int(core_ffi.cast("uintptr_t", p))
# The kernel's fatal-mode split-lock SIGBUS, as a user task gets it: #AC with
# BUS_ADRALN while the probe had not armed its own alignment check. AC is set
# in C right before slp_time: Python itself must never run with AC set.
status = helper.time_with_ac(
    addr(core_ffi.addressof(core, "slp_time")), addr(op), addr(a.address(4096 + 60)),
    addr(t), addr(f))
assert status == core.SLP_EFAULT, status
ok_after = native_probe.run(primitive("xaddl"), a.address(4096 + 1), 0, 1) is None
e = timing.interpret({"fault": {"signo": f.signo, "si_code": f.si_code,
                      "ac_armed": bool(f.ac_armed), "ip": f.ip}}, None, None)
print(json.dumps({"evidence": e.as_dict(), "ac_clear_after": ok_after}))
"""


def test_unarmed_bus_adraln_is_reported_as_the_kernels(tmp_path: object) -> None:
    out = subprocess.run(
        [sys.executable, "-c", KERNEL_SIGBUS], capture_output=True, text=True, check=True
    )
    doc = json.loads(out.stdout.strip().splitlines()[-1])
    assert doc["evidence"]["says"] == "split"
    assert "split_lock_detect=fatal" in doc["evidence"]["cause"]
    assert doc["evidence"]["si_code"] == "BUS_ADRALN"
    assert doc["ac_clear_after"]
