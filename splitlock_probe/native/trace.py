"""The ptrace alignment-trap tracer (csrc/tracer.c), the trap buffer's layout
(csrc/agent/trapbuf.h) and where the preloadable agent was built."""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from typing import Any

from splitlock_probe.native import check_core, check_sys, load


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
        ffi, lib = load()
        self._keep = buffer  # the mapping must outlive the tracer
        out = ffi.new("struct slp_tracer **")
        check_sys(lib.slp_tracer_new(pid, ffi.from_buffer(buffer), out), "ptrace(PTRACE_SEIZE)")
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
        _, lib = load()
        check_core(lib.slp_tracer_poll(self._t, int(timeout_s * 1000), self._info), "tracing")
        return self._result()

    def release(self, timeout_s: float = 1.0) -> TraceInfo:
        """Detach what is left of the tree, AC off, after the command ended."""
        _, lib = load()
        check_core(lib.slp_tracer_release(self._t, int(timeout_s * 1000), self._info), "detaching")
        return self._result()

    def close(self) -> None:
        if self._t is not None:
            load()[1].slp_tracer_free(self._t)
            self._t = None


def trapbuf_layout() -> tuple[int, int, int]:
    """sizeof the header, sizeof a record, offset of a record's instruction bytes."""
    ffi, lib = load()
    out = ffi.new("uint32_t[3]")
    check_core(lib.slp_trapbuf_layout(out, out + 1, out + 2), "trace buffer layout")
    return int(out[0]), int(out[1]), int(out[2])


def sitewire_layout() -> tuple[int, int, int]:
    """sizeof a site, sizeof the reply header, offset of a site's instruction bytes."""
    ffi, lib = load()
    out = ffi.new("uint32_t[3]")
    check_core(lib.slp_sitewire_layout(out, out + 1, out + 2), "site wire layout")
    return int(out[0]), int(out[1]), int(out[2])


def agent_library() -> str | None:
    """The preloadable trace agent built beside the core, if it was built."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    found = sorted(glob.glob(os.path.join(package, "_agent*.so")))
    return found[0] if found else None
