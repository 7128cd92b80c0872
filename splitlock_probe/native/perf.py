"""perf_event_open and the group operations (csrc/perf.c). Linux only, any
architecture: the software events count everywhere."""

from __future__ import annotations

from dataclasses import dataclass

from splitlock_probe.native import check_sys, load_core


@dataclass(frozen=True)
class PerfValues:
    values: tuple[int, ...]
    time_enabled: int  # ns
    time_running: int  # ns


def open_event(
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
    ffi, lib = load_core()
    event = ffi.new("struct slp_perf_event *")
    event.type = type_
    event.config = config
    event.config1 = config1
    event.config2 = config2
    event.exclude_kernel = int(exclude_kernel)
    event.exclude_hv = 1
    event.inherit = int(inherit)
    fd = ffi.new("int *")
    check_sys(lib.slp_perf_open(event, pid, cpu, group_fd, fd), "perf_event_open")
    return int(fd[0])


def control(fd: int, what: str, group: bool = True) -> None:
    """what: "enable", "disable" or "reset"."""
    _, lib = load_core()
    code = {"enable": lib.SLP_PERF_ENABLE, "disable": lib.SLP_PERF_DISABLE}.get(
        what, lib.SLP_PERF_RESET
    )
    check_sys(lib.slp_perf_ctl(fd, code, int(group)), f"perf {what}")


def read_group(leader_fd: int) -> PerfValues:
    ffi, lib = load_core()
    out = ffi.new("struct slp_perf_values *")
    check_sys(lib.slp_perf_read(leader_fd, out), "reading counters")
    n = int(out.nr)
    return PerfValues(
        tuple(int(out.values[i]) for i in range(n)), int(out.time_enabled), int(out.time_running)
    )


def close(fd: int) -> None:
    _, lib = load_core()
    lib.slp_perf_close(fd)


def max_group() -> int:
    return int(load_core()[1].SLP_PERF_MAX_GROUP)
