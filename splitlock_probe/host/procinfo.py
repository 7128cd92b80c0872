"""Who a thread id in the kernel log is, while it still lives: its process's
executable, command line and container, and what a trap address falls in.

Reads go through paths.root() (psutil's PROCFS_PATH is pointed there too), so
a recorded tree answers like the live host. The log names a thread id that may
since have been reused by another task: the thread's current name must match
the name in the log line, or the thread counts as gone.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

import psutil

from splitlock_probe.host.paths import host_path, read_text
from splitlock_probe.host.vm import vm_name
from splitlock_probe.text import ascii_int

_CONTAINER = re.compile(
    r"(?:docker|cri-containerd|crio|libpod)-(?P<id>[0-9a-f]{12,64})\.scope"
    r"|/(?:docker|lxc)/(?P<id2>[0-9a-f]{12,64})"
)
COMM_LEN = 15  # TASK_COMM_LEN - 1


@dataclass(frozen=True)
class TaskInfo:
    tgid: int
    exe: str | None  # None: gone, or not ours to read (run as root to see it)
    cmdline: tuple[str, ...]
    cgroup: str | None
    container: str | None  # container id, where the cgroup names one
    vm: str | None = None  # the virtual machine, where the process is its monitor

    def as_dict(self) -> dict[str, Any]:
        return {
            "tgid": self.tgid,
            "exe": self.exe,
            "cmdline": list(self.cmdline),
            "cgroup": self.cgroup,
            "container": self.container,
            "vm": self.vm,
        }


@dataclass(frozen=True)
class Mapping:
    start: int
    end: int
    offset: int  # file offset of `start`
    path: str  # "" for anonymous memory

    def locate(self, address: int) -> str:
        """'libfoo.so.1+0x1234' (offset in the file), or '[anon]+0x...'."""
        name = os.path.basename(self.path) if self.path else "[anon]"
        if self.path.startswith("["):
            name = self.path
        return f"{name}+{address - self.start + self.offset:#x}"


def _status_tgid(tid: int) -> int | None:
    text = read_text(f"/proc/{tid}/status") or ""
    for line in text.splitlines():
        if line.startswith("Tgid:"):
            return ascii_int(line[5:].strip(), 10)  # a recorded tree may hold anything
    return None


def _regular(tgid: int) -> bool:
    """psutil reads these unbounded: in a recorded tree each must be a real file."""
    import stat

    try:
        return all(
            stat.S_ISREG(os.stat(host_path(f"/proc/{tgid}/{name}")).st_mode)
            for name in ("stat", "cmdline", "status")
        )
    except FileNotFoundError:
        raise psutil.NoSuchProcess(tgid) from None  # gone: as psutil itself would say
    except OSError:
        return False


def _cgroup(tgid: int) -> tuple[str | None, str | None]:
    text = read_text(f"/proc/{tgid}/cgroup")
    if not text:
        return None, None
    lines = [line.split(":", 2) for line in text.splitlines() if line.count(":") >= 2]
    unified = [path for hier, _, path in lines if hier == "0"]
    path = unified[0] if unified else (lines[0][2] if lines else None)
    m = _CONTAINER.search(text)
    container = (m["id"] or m["id2"])[:12] if m else None
    return path, container


def lookup(tid: int, comm: str) -> TaskInfo | None:
    """The live task behind a log line's comm/tid, or None when it is gone or reused."""
    name = read_text(f"/proc/{tid}/comm")
    if name is None or name.rstrip("\n") != comm[:COMM_LEN]:
        return None
    tgid = _status_tgid(tid) or tid
    psutil.PROCFS_PATH = str(host_path("/proc"))
    exe: str | None = None
    cmdline: tuple[str, ...] = ()
    try:
        if _regular(tgid):
            proc = psutil.Process(tgid)
            cmdline = tuple(proc.cmdline())
            exe = proc.exe() or None
    except (psutil.AccessDenied, psutil.ZombieProcess):
        pass
    except psutil.NoSuchProcess:
        return None
    path, container = _cgroup(tgid)
    return TaskInfo(tgid, exe, cmdline, path, container, vm_name(cmdline, path))


def maps(tid: int) -> list[Mapping]:
    return parse_maps(read_text(f"/proc/{tid}/maps") or "")


def parse_maps(text: str) -> list[Mapping]:
    """/proc/PID/maps: one Mapping per line, lines that do not parse skipped."""
    out: list[Mapping] = []
    for line in text.splitlines():
        parts = line.split(maxsplit=5)
        if len(parts) < 5:
            continue
        lo, _, hi = parts[0].partition("-")
        try:
            out.append(
                Mapping(
                    int(lo, 16), int(hi, 16), int(parts[2], 16), parts[5] if len(parts) > 5 else ""
                )
            )
        except ValueError:
            continue
    return out


def locate(address: int, mappings: list[Mapping]) -> str | None:
    for m in mappings:
        if m.start <= address < m.end:
            return m.locate(address)
    return None
