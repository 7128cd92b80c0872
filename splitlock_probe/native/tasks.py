"""A process tree's task records (csrc/taskring.c) and the subreaper switch
(csrc/reaper.c): what `run` follows its command's tree with."""

from __future__ import annotations

import os

from splitlock_probe.native import NativeError, check_core, check_sys, load_core


class TaskRing:
    """One CPU's ring of task records for a process tree (csrc/taskring.c)."""

    READ_CHUNK = 1 << 16

    def __init__(self, pid: int, cpu: int, pages: int = 64) -> None:
        ffi, lib = load_core()
        self._ring = ffi.new("struct slp_taskring *")
        check_sys(lib.slp_taskring_open(pid, cpu, pages, self._ring), "perf task records")
        self._buf = ffi.new("unsigned char[]", self.READ_CHUNK)
        self._len = ffi.new("size_t *")

    def read(self) -> bytes:
        """Every whole record written since the last read."""
        ffi, lib = load_core()
        out = bytearray()
        while True:
            check_core(lib.slp_taskring_read(self._ring, self._buf, self.READ_CHUNK, self._len),
                       "reading perf task records")  # fmt: skip
            n = int(self._len[0])
            out += ffi.buffer(self._buf, n)
            if n < self.READ_CHUNK // 2:
                return bytes(out)

    def close(self) -> None:
        _, lib = load_core()
        lib.slp_taskring_close(self._ring)


def set_child_subreaper(on: bool = True) -> None:
    """Orphaned descendants become our children instead of init's (prctl)."""
    ffi, lib = load_core()
    status = lib.slp_child_subreaper(int(on))
    if status == lib.SLP_ESYS:
        raise NativeError(f"prctl(PR_SET_CHILD_SUBREAPER): {os.strerror(ffi.errno)}")
    check_core(status, "becoming a subreaper")
