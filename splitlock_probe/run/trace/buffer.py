"""The trap buffer both tracers write (csrc/agent/trapbuf.h): a memfd we
create, map, and hand to the traced program (the agent finds it by
SPLITLOCK_AGENT_FD and checks it by device and inode) or to the ptrace
tracer (a pointer into our mapping).

Its layout is read with struct; the sizes are checked against what the C
compiler made of trapbuf.h (trapbuf_layout) before any use.
"""

from __future__ import annotations

import mmap
import os
import struct
from dataclasses import dataclass
from types import TracebackType

MAGIC, VERSION = 0x544C5053, 1
DEFAULT_CAPACITY = 1 << 16  # records: 12 MiB of address space, touched only as filled
_HEADER = struct.Struct("<IIII" + "Q" * 15)
_RECORD = struct.Struct("<IIQQ16QQQ16sII")
COUNTERS = (
    "next", "traps", "locked", "dropped", "passed_on", "images", "lost_ac",
    "armed", "unarmed", "hits", "blind", "disarmed", "jumps", "trapped", "hops",
)  # fmt: skip
FD_ENV, ID_ENV = "SPLITLOCK_AGENT_FD", "SPLITLOCK_AGENT_ID"


@dataclass(frozen=True)
class TrapRecord:
    pid: int
    tid: int
    rip: int
    rflags: int
    regs: tuple[int, ...]  # rax rcx rdx rbx rsp rbp rsi rdi r8..r15
    fs_base: int
    gs_base: int
    insn: bytes
    source: str  # "agent" | "ptrace"


class LayoutMismatch(RuntimeError):
    pass


class TrapBuffer:
    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        from splitlock_probe.native.trace import trapbuf_layout

        header, record, insn_at = trapbuf_layout()
        if (header, record, insn_at) != (_HEADER.size, _RECORD.size, 168):
            raise LayoutMismatch(
                f"trace buffer layout: C says {header}/{record}/{insn_at}, "
                f"Python {_HEADER.size}/{_RECORD.size}/168"
            )
        self.capacity = capacity
        self.size = _HEADER.size + capacity * _RECORD.size
        self.fd = os.memfd_create("splitlock-probe-traps")  # close-on-exec until agent_env()
        try:
            os.ftruncate(self.fd, self.size)
            self.map = mmap.mmap(self.fd, self.size)
        except BaseException:
            os.close(self.fd)
            raise
        self.map[: _HEADER.size] = _HEADER.pack(
            MAGIC, VERSION, capacity, _RECORD.size, *[0] * len(COUNTERS)
        )

    def agent_env(self) -> dict[str, str]:
        """What the agent needs to find the buffer; from now on the fd is
        inherited across exec (every image of the program maps it)."""
        os.set_inheritable(self.fd, True)
        st = os.fstat(self.fd)
        return {FD_ENV: str(self.fd), ID_ENV: f"{st.st_dev}:{st.st_ino}"}

    def tampered(self) -> bool:
        """The fixed part of the header is not what we wrote: the traced program
        wrote into the buffer (it lives in memory the program can reach), so its
        counts and records may be forged. Our own capacity still bounds reading."""
        magic, version, capacity, record_size = _HEADER.unpack_from(self.map, 0)[:4]
        return (magic, version, capacity, record_size) != (
            MAGIC,
            VERSION,
            self.capacity,
            _RECORD.size,
        )

    def counters(self) -> dict[str, int]:
        values = _HEADER.unpack_from(self.map, 0)[4:]
        return dict(zip(COUNTERS, values, strict=False))

    def records(self) -> list[TrapRecord]:
        """Every whole record (one being written as a process died is skipped)."""
        n = min(self.counters()["next"], self.capacity)
        out = []
        for i in range(n):
            f = _RECORD.unpack_from(self.map, _HEADER.size + i * _RECORD.size)
            source = f[-1]
            if source not in (1, 2):
                continue
            insn_len = f[-2]
            regs = tuple(f[4:20])
            kind = "agent" if source == 1 else "ptrace"
            out.append(
                TrapRecord(f[0], f[1], f[2], f[3], regs, f[20], f[21], f[22][:insn_len], kind)
            )
        return out

    def close(self) -> None:
        if self.fd >= 0:
            self.map.close()
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> TrapBuffer:
        return self

    def __exit__(
        self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
