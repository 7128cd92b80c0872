"""The only module that imports the compiled core (splitlock_probe._core).

Import failures and non-x86-64 builds become UnsupportedHost with a reason,
never an ImportError at start-up: the package imports everywhere.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache
from typing import Any

from splitlock_probe.errors import ProbeError, UnsupportedHost
from splitlock_probe.model import Form, Insn, Primitive

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


class NativeError(ProbeError):
    """The core returned an unexpected status."""


@cache
def _load_core() -> tuple[Any, Any]:
    """The core on any Linux machine (the perf counters need no x86)."""
    try:
        from splitlock_probe._core import ffi, lib  # type: ignore[import-not-found,unused-ignore]
    except ImportError as exc:
        raise UnsupportedHost(
            f"the compiled core is missing ({exc}); reinstall with `pip install .` "
            "or `make install`"
        ) from exc
    return ffi, lib


@cache
def _load() -> tuple[Any, Any]:
    """The core where it can probe: x86-64 only."""
    ffi, lib = _load_core()
    if not lib.SLP_HAS_X86_64:
        raise UnsupportedHost(
            f"this is not an x86-64 machine ({os.uname().machine}): "
            "there are no x86 locked instructions to probe"
        )
    return ffi, lib


def unsupported_reason() -> str | None:
    """None when probing works here, else why not."""
    try:
        _load()
    except UnsupportedHost as exc:
        return str(exc)
    return None


def _op(primitive: Primitive, bit: int) -> Any:
    ffi, lib = _load()
    op = ffi.new("struct slp_op *")
    op.insn = getattr(lib, _INSN_CODES[primitive.insn])
    op.width = primitive.width
    op.form = getattr(lib, _FORM_CODES[primitive.form])
    op.bit = bit
    return op


def _fault(raw: Any) -> Fault:
    return Fault(int(raw.signo), int(raw.si_code), bool(raw.ac_armed), int(raw.ip), int(raw.addr))


def _check(status: int, what: str) -> None:
    _, lib = _load()
    if status == lib.SLP_OK:
        return
    if status == lib.SLP_ESYS:
        err = _load()[0].errno
        raise NativeError(f"{what}: {os.strerror(err)}")
    if status == lib.SLP_EINVAL:
        raise NativeError(f"{what}: invalid argument")
    raise NativeError(f"{what}: status {status}")


def supported(primitive: Primitive, bit: int = 0) -> bool:
    _, lib = _load()
    return bool(lib.slp_op_supported(_op(primitive, bit)))


class Arena:
    """`pages` read-write pages between guard pages, unmapped on close."""

    def __init__(self, pages: int) -> None:
        ffi, lib = _load()
        base = ffi.new("void **")
        _check(lib.slp_arena_map(pages, base), "mapping the probe arena")
        self.pages = pages
        self.base = int(ffi.cast("uintptr_t", base[0]))
        self._ptr = base[0]

    def address(self, offset: int) -> Any:
        if not 0 <= offset < self.pages * 4096:
            raise ValueError(f"offset {offset} is outside the arena")
        ffi, _ = _load()
        return ffi.cast("void *", self.base + offset)

    def read(self, offset: int, size: int) -> bytes:
        ffi, _ = _load()
        return bytes(ffi.buffer(self.address(offset), size))

    def fill(self, offset: int, data: bytes) -> None:
        ffi, _ = _load()
        ffi.memmove(self.address(offset), data, len(data))

    def close(self) -> None:
        if self._ptr is not None:
            _, lib = _load()
            _check(lib.slp_arena_unmap(self._ptr, self.pages), "unmapping the probe arena")
            self._ptr = None

    def __enter__(self) -> Arena:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def run(primitive: Primitive, address: Any, bit: int, count: int = 1) -> Fault | None:
    """Run the op `count` times; the fault it raised, if any."""
    ffi, lib = _load()
    fault = ffi.new("struct slp_fault *")
    status = lib.slp_run(_op(primitive, bit), address, count, fault)
    if status == lib.SLP_EFAULT:
        return _fault(fault)
    _check(status, f"running {primitive.name}")
    return None


def time_op(
    primitive: Primitive, address: Any, bit: int, batches: int, iterations: int, target_cycles: int
) -> Timing | Fault:
    """Timed batches of the op, or the fault that stopped them."""
    ffi, lib = _load()
    timing = ffi.new("struct slp_timing *")
    fault = ffi.new("struct slp_fault *")
    status = lib.slp_time(
        _op(primitive, bit), address, batches, iterations, target_cycles, timing, fault
    )
    if status == lib.SLP_EFAULT:
        return _fault(fault)
    _check(status, f"timing {primitive.name}")
    return Timing(
        int(timing.iterations),
        int(timing.batches),
        float(timing.min_cycles),
        float(timing.median_cycles),
    )


def trap(primitive: Primitive, address: Any, bit: int) -> Fault | None:
    """Run the op once with EFLAGS.AC set; the trap, or None if it did not trap."""
    ffi, lib = _load()
    fault = ffi.new("struct slp_fault *")
    status = lib.slp_trap(_op(primitive, bit), address, fault)
    if status == lib.SLP_EFAULT:
        return _fault(fault)
    _check(status, f"trapping {primitive.name}")
    return None


def tsc_hz(ms: int = 20) -> float:
    ffi, lib = _load()
    hz = ffi.new("double *")
    _check(lib.slp_tsc_hz(ms, hz), "calibrating the TSC")
    return float(hz[0])


def max_batches() -> int:
    return int(_load()[1].SLP_MAX_BATCHES)


def max_immediate() -> int:
    return int(_load()[1].SLP_IMM_MAX)


def compiled_layout_fields() -> list[tuple[str, str, int, int]]:
    """(layout, field, offset, size) as the C compiler laid out xen_abi.h."""
    ffi, lib = _load()
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


class PerfOpenError(ProbeError):
    """perf_event_open or a counter operation failed; errno says why."""

    def __init__(self, what: str, err: int) -> None:
        super().__init__(f"{what}: {os.strerror(err)}")
        self.errno = err


@dataclass(frozen=True)
class PerfValues:
    values: tuple[int, ...]
    time_enabled: int  # ns
    time_running: int  # ns


def perf_open(
    type_: int,
    config: int,
    config1: int = 0,
    config2: int = 0,
    pid: int = 0,
    cpu: int = -1,
    group_fd: int = -1,
    exclude_kernel: bool = True,
    inherit: bool = False,
) -> int:
    """A counter's file descriptor (opened disabled when it leads a group)."""
    ffi, lib = _load_core()
    event = ffi.new("struct slp_perf_event *")
    event.type = type_
    event.config = config
    event.config1 = config1
    event.config2 = config2
    event.exclude_kernel = int(exclude_kernel)
    event.exclude_hv = 1
    event.inherit = int(inherit)
    fd = ffi.new("int *")
    status = lib.slp_perf_open(event, pid, cpu, group_fd, fd)
    if status == lib.SLP_ESYS:
        raise PerfOpenError("perf_event_open", ffi.errno)
    _check_core(status, "perf_event_open")
    return int(fd[0])


def perf_ctl(fd: int, what: str, group: bool = True) -> None:
    """what: "enable", "disable" or "reset"."""
    ffi, lib = _load_core()
    code = {"enable": lib.SLP_PERF_ENABLE, "disable": lib.SLP_PERF_DISABLE}.get(
        what, lib.SLP_PERF_RESET
    )
    status = lib.slp_perf_ctl(fd, code, int(group))
    if status == lib.SLP_ESYS:
        raise PerfOpenError(f"perf {what}", ffi.errno)
    _check_core(status, f"perf {what}")


def perf_read(leader_fd: int) -> PerfValues:
    ffi, lib = _load_core()
    out = ffi.new("struct slp_perf_values *")
    status = lib.slp_perf_read(leader_fd, out)
    if status == lib.SLP_ESYS:
        raise PerfOpenError("reading counters", ffi.errno)
    _check_core(status, "reading counters")
    n = int(out.nr)
    return PerfValues(
        tuple(int(out.values[i]) for i in range(n)), int(out.time_enabled), int(out.time_running)
    )


def perf_close(fd: int) -> None:
    _, lib = _load_core()
    lib.slp_perf_close(fd)


class TaskRing:
    """One CPU's ring of task records for a process tree (csrc/taskring.c)."""

    READ_CHUNK = 1 << 16

    def __init__(self, pid: int, cpu: int, pages: int = 64) -> None:
        ffi, lib = _load_core()
        self._ring = ffi.new("struct slp_taskring *")
        status = lib.slp_taskring_open(pid, cpu, pages, self._ring)
        if status == lib.SLP_ESYS:
            raise PerfOpenError("perf task records", ffi.errno)
        _check_core(status, "perf task records")
        self._buf = ffi.new("unsigned char[]", self.READ_CHUNK)
        self._len = ffi.new("size_t *")

    def read(self) -> bytes:
        """Every whole record written since the last read."""
        ffi, lib = _load_core()
        out = bytearray()
        while True:
            _check_core(lib.slp_taskring_read(self._ring, self._buf, self.READ_CHUNK, self._len),
                        "reading perf task records")  # fmt: skip
            n = int(self._len[0])
            out += ffi.buffer(self._buf, n)
            if n < self.READ_CHUNK // 2:
                return bytes(out)

    def close(self) -> None:
        _, lib = _load_core()
        lib.slp_taskring_close(self._ring)


@dataclass(frozen=True)
class TraceInfo:
    done: bool
    status: int  # wait status of the command, once done
    user_s: float
    system_s: float
    max_rss_kb: int
    voluntary_switches: int
    involuntary_switches: int
    tasks_seen: int
    tasks_now: int


class Tracer:
    """The ptrace alignment-trap tracer (csrc/tracer.c) of one seized command."""

    def __init__(self, pid: int, buffer: Any) -> None:
        ffi, lib = _load()
        self._keep = buffer  # the mapping must outlive the tracer
        out = ffi.new("struct slp_tracer **")
        status = lib.slp_tracer_new(pid, ffi.from_buffer(buffer), out)
        if status == lib.SLP_ESYS:
            raise PerfOpenError("ptrace(PTRACE_SEIZE)", ffi.errno)
        _check_core(status, "ptrace(PTRACE_SEIZE)")
        self._t = out[0]
        self._info = ffi.new("struct slp_trace_info *")

    def _result(self) -> TraceInfo:
        i = self._info
        return TraceInfo(
            bool(i.done),
            int(i.status),
            float(i.user_s),
            float(i.system_s),
            int(i.max_rss_kb),
            int(i.voluntary_switches),
            int(i.involuntary_switches),
            int(i.tasks_seen),
            int(i.tasks_now),
        )

    def poll(self, timeout_s: float) -> TraceInfo:
        """Handle the tree's stops for up to timeout_s (SIGCHLD must be blocked)."""
        _, lib = _load()
        _check_core(lib.slp_tracer_poll(self._t, int(timeout_s * 1000), self._info), "tracing")
        return self._result()

    def release(self, timeout_s: float = 1.0) -> TraceInfo:
        """Detach what is left of the tree, AC off, after the command ended."""
        _, lib = _load()
        _check_core(lib.slp_tracer_release(self._t, int(timeout_s * 1000), self._info), "detaching")
        return self._result()

    def close(self) -> None:
        if self._t is not None:
            _load()[1].slp_tracer_free(self._t)
            self._t = None


def trapbuf_layout() -> tuple[int, int, int]:
    """sizeof the header, sizeof a record, offset of a record's instruction bytes."""
    ffi, lib = _load()
    out = ffi.new("uint32_t[3]")
    _check_core(lib.slp_trapbuf_layout(out, out + 1, out + 2), "trace buffer layout")
    return int(out[0]), int(out[1]), int(out[2])


def agent_library() -> str | None:
    """The preloadable trace agent built beside the core, if it was built."""
    import glob

    here = os.path.dirname(os.path.abspath(__file__))
    found = sorted(glob.glob(os.path.join(here, "_agent*.so")))
    return found[0] if found else None


def set_child_subreaper(on: bool = True) -> None:
    """Orphaned descendants become our children instead of init's (prctl)."""
    ffi, lib = _load_core()
    status = lib.slp_child_subreaper(int(on))
    if status == lib.SLP_ESYS:
        raise NativeError(f"prctl(PR_SET_CHILD_SUBREAPER): {os.strerror(ffi.errno)}")
    _check_core(status, "becoming a subreaper")


def perf_max_group() -> int:
    return int(_load_core()[1].SLP_PERF_MAX_GROUP)


def _check_core(status: int, what: str) -> None:
    _, lib = _load_core()
    if status == lib.SLP_OK:
        return
    if status == lib.SLP_EUNSUPPORTED:
        raise UnsupportedHost(f"{what}: perf_event_open needs Linux")
    raise NativeError(f"{what}: status {status}")
