"""Every task of a command's tree, from perf's task records (csrc/taskring.c).

The kernel writes a record for each fork and thread (PERF_RECORD_FORK), exit,
name change (PERF_RECORD_COMM, flagged on exec) and executable mapping
(PERF_RECORD_MMAP) of the command and its descendants. So a thread that
lived for a microsecond is still known to be ours when its trap line is read
later, and its trap address still maps to the library it was in, after the
process is gone. Layouts: include/uapi/linux/perf_event.h.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

from splitlock_probe.host.cpus import online_cpus
from splitlock_probe.host.procinfo import Mapping
from splitlock_probe.native.tasks import TaskRing

MMAP, LOST, COMM, EXIT, FORK = 1, 2, 3, 4, 7
MISC_COMM_EXEC = 1 << 13
_HEADER = struct.Struct("<IHH")
_PIDS2 = struct.Struct("<II")
_MMAP = struct.Struct("<IIQQQ")
_TASK = struct.Struct("<IIIIQ")
_LOST = struct.Struct("<QQ")


@dataclass
class TreeProcess:
    tgid: int
    images: list[list[Mapping]] = field(default_factory=lambda: [[]])  # one per exec, newest last
    execs: int = 0

    def mapping(self, address: int) -> Mapping | None:
        for image in reversed(self.images):
            for m in reversed(image):
                if m.start <= address < m.end:
                    return m
        return None

    def locate(self, address: int) -> str | None:
        m = self.mapping(address)
        return m.locate(address) if m else None


@dataclass
class TreeTask:
    tid: int
    tgid: int
    comm: str | None
    exited: bool = False
    names: set[str] = field(default_factory=set)  # every name it had: a line names one of them

    def rename(self, comm: str) -> None:
        self.comm = comm
        self.names.add(comm)


@dataclass
class TaskLog:
    """What perf's task records say about the tree under `top`."""

    top: int
    tasks: dict[int, TreeTask] = field(default_factory=dict)
    processes: dict[int, TreeProcess] = field(default_factory=dict)
    lost: int = 0  # records the kernel dropped (a ring was full)

    def __post_init__(self) -> None:
        self.tasks[self.top] = TreeTask(self.top, self.top, None)
        self.processes[self.top] = TreeProcess(self.top)

    def feed(self, *rings: bytes) -> None:
        """Take what each CPU's ring held, merged in time order."""
        merged = [r for data in rings for r in records(data)]
        merged.sort(key=lambda r: r[0])
        for _time, kind, misc, body in merged:
            self._take(kind, misc, body)

    def _process(self, tgid: int) -> TreeProcess:
        proc = self.processes.get(tgid)
        if proc is None:
            proc = self.processes[tgid] = TreeProcess(tgid)
        return proc

    def _take(self, kind: int, misc: int, body: bytes) -> None:
        if kind == FORK:
            pid, _ppid, tid, _ptid, _time = _TASK.unpack_from(body)
            parent = self.tasks.get(_ptid) or self.tasks.get(_ppid)
            if tid not in self.tasks:  # a new task starts with its parent's name
                task = self.tasks[tid] = TreeTask(tid, pid, None)
                if parent is not None and parent.comm:
                    task.rename(parent.comm)
            if pid == tid and pid not in self.processes:
                parent_proc = self.processes.get(_ppid)
                proc = self._process(pid)
                if parent_proc is not None:  # fork() copies the parent's mappings
                    proc.images = [list(parent_proc.images[-1])]
        elif kind == EXIT:
            _pid, _ppid, tid, _ptid, _time = _TASK.unpack_from(body)
            if tid in self.tasks:
                self.tasks[tid].exited = True
        elif kind == COMM:
            pid, tid = _PIDS2.unpack_from(body)
            comm = _cstring(body[_PIDS2.size :])
            known = self.tasks.get(tid)
            if known is None:
                known = self.tasks[tid] = TreeTask(tid, pid, comm)
            known.rename(comm)
            if misc & MISC_COMM_EXEC:
                proc = self._process(pid)
                proc.execs += 1
                proc.images.append([])
        elif kind == MMAP:
            pid, _tid, addr, length, pgoff = _MMAP.unpack_from(body)
            path = _cstring(body[_MMAP.size :])
            self._process(pid).images[-1].append(Mapping(addr, addr + length, pgoff, path))
        elif kind == LOST:
            _id, lost = _LOST.unpack_from(body)
            self.lost += lost

    def owns(self, tid: int, comm: str | None = None) -> bool:
        """Was this thread one of the tree's (with this name, when one is given)?"""
        task = self.tasks.get(tid)
        if task is None:
            return False
        return comm is None or not task.names or comm[:15] in task.names

    def tgid(self, tid: int) -> int | None:
        task = self.tasks.get(tid)
        return task.tgid if task else None

    def locate(self, tid: int, address: int) -> str | None:
        m = self.mapping(tid, address)
        return m.locate(address) if m else None

    def mapping(self, tid: int, address: int) -> Mapping | None:
        task = self.tasks.get(tid)
        proc = self.processes.get(task.tgid) if task else None
        return proc.mapping(address) if proc else None

    def mappings(self, tid: int) -> list[Mapping]:
        """The executable mappings perf recorded for the thread's process (its
        newest image): enough to find an image's data through its load bias."""
        task = self.tasks.get(tid)
        proc = self.processes.get(task.tgid) if task else None
        return list(proc.images[-1]) if proc else []

    def comm(self, tid: int) -> str | None:
        task = self.tasks.get(tid)
        return task.comm if task else None


def records(data: bytes) -> Iterator[tuple[int, int, int, bytes]]:
    """(time, type, misc, body) of each record in a run of whole records; the
    time is the sample_id the ring adds at each record's end."""
    at = 0
    while at + _HEADER.size + 8 <= len(data):
        kind, misc, size = _HEADER.unpack_from(data, at)
        if size < _HEADER.size + 8 or at + size > len(data):
            return
        (time,) = struct.unpack_from("<Q", data, at + size - 8)
        yield time, kind, misc, data[at + _HEADER.size : at + size - 8]
        at += size


def _cstring(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode(errors="replace")


class RingTracker:
    """A TaskLog kept up to date from a task ring on every online CPU."""

    method = "perf task records (every thread, however short-lived)"

    def __init__(self, pid: int, pages: int = 64) -> None:
        self.log = TaskLog(pid)
        self._rings: list[TaskRing] = []
        try:
            for cpu in online_cpus():
                self._rings.append(TaskRing(pid, cpu, pages))
        except BaseException:
            self.close()
            raise

    def update(self) -> None:
        self.log.feed(*(ring.read() for ring in self._rings))

    def owns(self, tid: int, comm: str | None = None) -> bool:
        return self.log.owns(tid, comm)

    def tgid(self, tid: int) -> int | None:
        return self.log.tgid(tid)

    def locate(self, tid: int, address: int) -> str | None:
        return self.log.locate(tid, address)

    def mapping(self, tid: int, address: int) -> Mapping | None:
        return self.log.mapping(tid, address)

    def mappings(self, tid: int) -> list[Mapping]:
        return self.log.mappings(tid)

    def comm(self, tid: int) -> str | None:
        return self.log.comm(tid)

    @property
    def counts(self) -> tuple[int, int, int]:
        """Tasks, processes, records lost."""
        return len(self.log.tasks), len(self.log.processes), self.log.lost

    @property
    def execs(self) -> int | None:
        """Programs the tree exec'd, the command's own included; None when records
        were lost and the count cannot be trusted."""
        if self.log.lost:
            return None
        return sum(p.execs for p in self.log.processes.values())

    def close(self) -> None:
        for ring in self._rings:
            ring.close()
        self._rings = []
