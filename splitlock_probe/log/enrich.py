"""What the live processes behind trap lines are: psutil and /proc for each
thread still alive, and each trap address mapped to a library and offset."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from splitlock_probe.host import procinfo
from splitlock_probe.host.kmsg.tally import LogTally, ProcessCount


@dataclass
class ProcessView:
    count: ProcessCount
    task: procinfo.TaskInfo | None  # None: the thread is gone (or its id was reused)
    sites: list[tuple[int, int, str | None]] = field(default_factory=list)  # ip, count, where

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.count.as_dict(),
            "alive": self.task is not None,
            "task": None if self.task is None else self.task.as_dict(),
            "sites": [
                {"ip": f"{ip:#x}", "count": n, "location": where} for ip, n, where in self.sites
            ],
        }


def enrich(tally: LogTally) -> list[ProcessView]:
    """Per-process rows, busiest first; live tasks get psutil and /proc/PID/maps detail."""
    views = []
    for count in tally.ranked():
        task = procinfo.lookup(count.pid, count.comm)  # a vCPU thread: its VM's monitor
        mappings = procinfo.maps(count.pid) if task is not None and not count.guest else []
        sites = [
            (ip, n, procinfo.locate(ip, mappings) if mappings else None)
            for ip, n in sorted(count.ips.items(), key=lambda kv: -kv[1])
        ]
        views.append(ProcessView(count, task, sites))
    return views
