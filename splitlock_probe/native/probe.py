"""The probing core: locked ops on real memory, timed batches, the
alignment-check trap, the probe arena and the TSC (csrc/ops.c, timing.c,
trap.c, arena.c, layouts.c)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from splitlock_probe.model.access import Form, Insn, Primitive
from splitlock_probe.native import check, load

_INSN_CODES = {
    Insn.BTS: "SLP_INSN_BTS",
    Insn.BTR: "SLP_INSN_BTR",
    Insn.BTC: "SLP_INSN_BTC",
    Insn.XADD: "SLP_INSN_XADD",
    Insn.CMPXCHG: "SLP_INSN_CMPXCHG",
    Insn.XCHG: "SLP_INSN_XCHG",
    Insn.ADD: "SLP_INSN_ADD",
    Insn.CMPXCHG16B: "SLP_INSN_CMPXCHG16B",
}
_FORM_CODES = {Form.NONE: "SLP_FORM_NONE", Form.REG: "SLP_FORM_REG", Form.IMM: "SLP_FORM_IMM"}


@dataclass(frozen=True)
class Fault:
    """A SIGBUS or SIGSEGV raised by an op and caught by the core."""

    signo: int
    si_code: int
    ac_armed: bool  # True: our alignment-check trap; False: the kernel's doing
    ip: int
    addr: int


@dataclass(frozen=True)
class Timing:
    iterations: int
    batches: int
    min_cycles: float
    median_cycles: float


def _op(primitive: Primitive, bit: int) -> Any:
    ffi, lib = load()
    op = ffi.new("struct slp_op *")
    op.insn = getattr(lib, _INSN_CODES[primitive.insn])
    op.width = primitive.width
    op.form = getattr(lib, _FORM_CODES[primitive.form])
    op.bit = bit
    return op


def _fault(raw: Any) -> Fault:
    return Fault(int(raw.signo), int(raw.si_code), bool(raw.ac_armed), int(raw.ip), int(raw.addr))


def supported(primitive: Primitive, bit: int = 0) -> bool:
    _, lib = load()
    return bool(lib.slp_op_supported(_op(primitive, bit)))


class Arena:
    """`pages` read-write pages between guard pages, unmapped on close."""

    def __init__(self, pages: int) -> None:
        ffi, lib = load()
        base = ffi.new("void **")
        check(lib.slp_arena_map(pages, base), "mapping the probe arena")
        self.pages = pages
        self.base = int(ffi.cast("uintptr_t", base[0]))
        self._ptr = base[0]

    def address(self, offset: int) -> Any:
        if not 0 <= offset < self.pages * 4096:
            raise ValueError(f"offset {offset} is outside the arena")
        ffi, _ = load()
        return ffi.cast("void *", self.base + offset)

    def read(self, offset: int, size: int) -> bytes:
        ffi, _ = load()
        return bytes(ffi.buffer(self.address(offset), size))

    def fill(self, offset: int, data: bytes) -> None:
        ffi, _ = load()
        ffi.memmove(self.address(offset), data, len(data))

    def close(self) -> None:
        if self._ptr is not None:
            _, lib = load()
            check(lib.slp_arena_unmap(self._ptr, self.pages), "unmapping the probe arena")
            self._ptr = None

    def __enter__(self) -> Arena:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def run(primitive: Primitive, address: Any, bit: int, count: int = 1) -> Fault | None:
    """Run the op `count` times; the fault it raised, if any."""
    ffi, lib = load()
    fault = ffi.new("struct slp_fault *")
    status = lib.slp_run(_op(primitive, bit), address, count, fault)
    if status == lib.SLP_EFAULT:
        return _fault(fault)
    check(status, f"running {primitive.name}")
    return None


def time_op(
    primitive: Primitive, address: Any, bit: int, batches: int, iterations: int, target_cycles: int
) -> Timing | Fault:
    """Timed batches of the op, or the fault that stopped them."""
    ffi, lib = load()
    timing = ffi.new("struct slp_timing *")
    fault = ffi.new("struct slp_fault *")
    status = lib.slp_time(
        _op(primitive, bit), address, batches, iterations, target_cycles, timing, fault
    )
    if status == lib.SLP_EFAULT:
        return _fault(fault)
    check(status, f"timing {primitive.name}")
    return Timing(
        int(timing.iterations),
        int(timing.batches),
        float(timing.min_cycles),
        float(timing.median_cycles),
    )


def trap(primitive: Primitive, address: Any, bit: int) -> Fault | None:
    """Run the op once with EFLAGS.AC set; the trap, or None if it did not trap."""
    ffi, lib = load()
    fault = ffi.new("struct slp_fault *")
    status = lib.slp_trap(_op(primitive, bit), address, fault)
    if status == lib.SLP_EFAULT:
        return _fault(fault)
    check(status, f"trapping {primitive.name}")
    return None


def tsc_hz(ms: int = 20) -> float:
    ffi, lib = load()
    hz = ffi.new("double *")
    check(lib.slp_tsc_hz(ms, hz), "calibrating the TSC")
    return float(hz[0])


def max_batches() -> int:
    return int(load()[1].SLP_MAX_BATCHES)


def max_immediate() -> int:
    return int(load()[1].SLP_IMM_MAX)


def compiled_layout_fields() -> list[tuple[str, str, int, int]]:
    """(layout, field, offset, size) as the C compiler laid out xen_abi.h."""
    ffi, lib = load()
    out = ffi.new("const struct slp_field_info **")
    n = lib.slp_layout_fields(out)
    return [
        (
            ffi.string(out[0][i].layout).decode(),
            ffi.string(out[0][i].field).decode(),
            int(out[0][i].offset),
            int(out[0][i].size),
        )
        for i in range(n)
    ]


@dataclass(frozen=True)
class CostSample:
    """Single ops timed one at a time: TSC cycles of each, split and aligned."""

    split: tuple[int, ...]
    aligned: tuple[int, ...]
    fault: Fault | None  # what stopped the sampling early, if anything


def cost_sample(
    primitive: Primitive,
    split_address: Any,
    aligned_address: Any,
    n: int,
    budget_cycles: int,
    spacing_ns: int = 0,
) -> CostSample:
    """Up to n pairs (split, aligned), each op timed alone, within budget_cycles."""
    ffi, lib = load()
    split = ffi.new("uint64_t[]", n)
    aligned = ffi.new("uint64_t[]", n)
    done = ffi.new("uint32_t *")
    fault = ffi.new("struct slp_fault *")
    status = lib.slp_cost_sample(
        _op(primitive, 0), split_address, aligned_address, n, budget_cycles, spacing_ns,
        split, aligned, done, fault,
    )  # fmt: skip
    got = int(done[0])
    caught = _fault(fault) if status == lib.SLP_EFAULT else None
    if caught is None:
        check(status, f"sampling {primitive.name}")
    return CostSample(tuple(split[0:got]), tuple(aligned[0:got]), caught)


@dataclass(frozen=True)
class NeighbourRun:
    victim_units: int  # bytes copied, or atomic ops done
    aggressor_ops: int
    elapsed_ns: int


VICTIMS = {"stream": "SLP_VICTIM_STREAM", "atomic": "SLP_VICTIM_ATOMIC"}
AGGRESSORS = {"idle": "SLP_NEIGHBOUR_IDLE", "aligned": "SLP_NEIGHBOUR_ALIGNED",
              "split": "SLP_NEIGHBOUR_SPLIT"}  # fmt: skip


def neighbour(
    primitive: Primitive,
    split_address: Any,
    aligned_address: Any,
    victim_cpu: int,
    aggressor_cpu: int,
    victim: str,
    aggressor: str,
    ms: int,
) -> NeighbourRun:
    """A victim on one CPU beside an aggressor on another, for ms milliseconds."""
    ffi, lib = load()
    out = ffi.new("struct slp_neighbour_result *")
    status = lib.slp_neighbour(
        _op(primitive, 0), split_address, aligned_address, victim_cpu, aggressor_cpu,
        getattr(lib, VICTIMS[victim]), getattr(lib, AGGRESSORS[aggressor]), ms, out,
    )  # fmt: skip
    check(status, f"the neighbour test on CPUs {victim_cpu} and {aggressor_cpu}")
    return NeighbourRun(int(out.victim_units), int(out.aggressor_ops), int(out.elapsed_ns))
