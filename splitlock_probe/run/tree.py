"""The live tasks below us: every thread of every process a wrapped command
started, with what each process was running and where its code was mapped.

The processes `run` starts exist only on the live host, so this reads the
live /proc, never SPLITLOCK_PROBE_ROOT's. With us as child subreaper every
descendant stays below us even when its parent exits, so "ours" is "our
pid is among its ancestors". Polling can miss a thread that lives and dies
between two looks; `owns()` also asks /proc at the moment a log line names a
thread, which the kernel's 10 ms penalty sleep usually leaves time for.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from splitlock_probe.host.paths import read_file
from splitlock_probe.host.procinfo import Mapping, parse_maps

LIVE_PROC = Path("/proc")
MAX_DEPTH = 256  # ancestry walks stop here (a loop would be a kernel bug, not ours to hang on)


@dataclass
class Process:
    tgid: int
    exe: str | None
    argv: tuple[str, ...]
    maps: list[Mapping] = field(default_factory=list)


@dataclass(frozen=True)
class Task:
    tid: int
    tgid: int
    comm: str


def _read(path: Path) -> str | None:
    return read_file(path)


class ProcessTree:
    method = "polling /proc (threads that live shorter than a poll may be missed)"

    def __init__(self, top: int | None = None, proc: Path = LIVE_PROC) -> None:
        self.top = os.getpid() if top is None else top
        self.proc = proc
        self.tasks: dict[int, Task] = {}
        self.processes: dict[int, Process] = {}
        self.foreign: set[int] = set()  # thread ids seen to belong to someone else

    def _status(self, tid: int) -> dict[str, str]:
        text = _read(self.proc / str(tid) / "status") or ""
        out = {}
        for line in text.splitlines():
            key, _, value = line.partition(":")
            out[key] = value.strip()
        return out

    def _children(self, pid: int) -> list[int]:
        found: list[int] = []
        try:
            tids = os.listdir(self.proc / str(pid) / "task")
        except OSError:
            return found
        for tid in tids:
            text = _read(self.proc / str(pid) / "task" / tid / "children") or ""
            found.extend(int(c) for c in text.split())
        return found

    def _see_process(self, tgid: int) -> None:
        """Record a process, and again after it exec()s (a new image, new maps)."""
        try:
            exe: str | None = os.readlink(self.proc / str(tgid) / "exe")
        except OSError:
            exe = None
        known = self.processes.get(tgid)
        if known is not None and known.exe == exe:
            return
        raw = _read(self.proc / str(tgid) / "cmdline") or ""
        argv = tuple(a for a in raw.split("\0") if a)
        self.processes[tgid] = Process(tgid, exe, argv, self.read_maps(tgid))

    def _see_threads(self, tgid: int) -> None:
        try:
            tids = os.listdir(self.proc / str(tgid) / "task")
        except OSError:
            return
        for name in tids:
            tid = int(name)
            comm = (_read(self.proc / str(tgid) / "task" / name / "comm") or "").rstrip("\n")
            known = self.tasks.get(tid)
            if comm and (known is None or known.comm != comm):
                self.tasks[tid] = Task(tid, tgid, comm)

    def read_maps(self, tgid: int) -> list[Mapping]:
        return parse_maps(_read(self.proc / str(tgid) / "maps") or "")

    def refresh(self) -> None:
        """Look at every process below us now."""
        pending = self._children(self.top)
        seen: set[int] = set()
        while pending:
            pid = pending.pop()
            if pid in seen:
                continue
            seen.add(pid)
            self._see_process(pid)
            self._see_threads(pid)
            pending.extend(self._children(pid))

    def update(self) -> None:
        self.refresh()

    def tgid(self, tid: int) -> int | None:
        task = self.tasks.get(tid)
        return task.tgid if task else None

    @property
    def counts(self) -> tuple[int, int, int]:
        """Tasks, processes, records lost (none: nothing is recorded)."""
        return len(self.tasks), len(self.processes), 0

    @property
    def execs(self) -> None:
        """Polling /proc cannot see every exec: unknown."""
        return None

    def close(self) -> None:
        pass

    def owns(self, tid: int, comm: str | None = None) -> bool:
        """Is this thread one of ours? Known ones answer at once; a new one is
        looked up (its process's parents, up to us) while it still lives."""
        if tid in self.tasks:
            return comm is None or self.tasks[tid].comm == comm[:15]
        if tid in self.foreign:
            return False
        status = self._status(tid)
        tgid = int(status.get("Tgid") or 0)
        pid, depth = tgid, 0
        while pid > 1 and depth < MAX_DEPTH:
            if pid == self.top:
                break
            pid = int(self._status(pid).get("PPid") or 0)
            depth += 1
        if tgid and pid == self.top and tgid != self.top:
            self._see_process(tgid)
            self._see_threads(tgid)
            return True
        if tgid:  # alive and not ours; a gone thread may be ours, so it is not remembered
            self.foreign.add(tid)
        return False

    def locate(self, tid: int, address: int) -> str | None:
        """'lib.so+0x..' for a trap address: the process's maps now while it
        lives, else the last ones read."""
        m = self.mapping(tid, address)
        return m.locate(address) if m else None

    def mapping(self, tid: int, address: int) -> Mapping | None:
        task = self.tasks.get(tid)
        if task is None:
            return None
        process = self.processes.get(task.tgid)
        live = self.read_maps(task.tgid)
        if live and process is not None:
            process.maps = live
        for m in live or (process.maps if process else []):
            if m.start <= address < m.end:
                return m
        return None

    def mappings(self, tid: int) -> list[Mapping]:
        """The thread's process's maps: now while it lives, else the last read."""
        task = self.tasks.get(tid)
        if task is None:
            return []
        process = self.processes.get(task.tgid)
        return self.read_maps(task.tgid) or (process.maps if process else [])

    def comm(self, tid: int) -> str | None:
        task = self.tasks.get(tid)
        return task.comm if task else None
