"""Tracing one `run`: the buffer, the mechanism, and either the agent's
environment or the ptrace tracer, then the sites the records show."""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from splitlock_probe.native import PerfOpenError
from splitlock_probe.native.trace import Tracer, agent_library
from splitlock_probe.run.trace.buffer import TrapBuffer
from splitlock_probe.run.trace.choose import AGENT, AUTO, BREAKPOINT, PTRACE, choose, choose_method
from splitlock_probe.run.trace.sites import TraceResult, collect
from splitlock_probe.run.trace.siteserver import SiteServer

if TYPE_CHECKING:
    from splitlock_probe.host.procinfo import Mapping


class TrackerView(Protocol):
    """What the sites need from a run's task tracker."""

    def mapping(self, tid: int, address: int) -> Mapping | None: ...
    def mappings(self, tid: int) -> list[Mapping]: ...
    def comm(self, tid: int) -> str | None: ...
    @property
    def execs(self) -> int | None: ...


# Programs that are tracers themselves: a process has one tracer, so under
# --trace=ptrace they cannot attach to their own children.
PTRACE_USERS = frozenset({"strace", "ltrace", "gdb", "rr", "lldb"})


def privileges_dropped(argv: Sequence[str]) -> bool:
    """Would ptrace make this set-user-ID (or -group-ID) program run without its
    privileges? The kernel ignores the bits when an unprivileged tracer execs it."""
    path = shutil.which(argv[0]) if argv else None
    if path is None or os.geteuid() == 0:
        return False
    st = os.stat(path)
    setuid = bool(st.st_mode & stat.S_ISUID) and st.st_uid != os.geteuid()
    setgid = bool(st.st_mode & stat.S_ISGID) and st.st_gid not in {os.getegid(), *os.getgroups()}
    return setuid or setgid


class Tracing:
    def __init__(
        self,
        argv: Sequence[str],
        wanted: str,
        method: str = AUTO,
        site_cache: str | None = None,
    ) -> None:
        self.agent = agent_library()
        self.mechanism, self.reason = choose(argv, wanted, self.agent is not None)
        self.method = choose_method(self.mechanism, method)
        self.site_cache = site_cache
        self.sites: SiteServer | None = None
        if self.mechanism == AGENT and self.agent is None:
            from splitlock_probe.errors import UnsupportedHost

            raise UnsupportedHost("the trace agent was not built; reinstall, or --trace=ptrace")
        name = os.path.basename(argv[0]) if argv else ""
        if self.mechanism == PTRACE and name in PTRACE_USERS:
            from splitlock_probe.errors import UsageError

            raise UsageError(
                f"--trace=ptrace cannot run {name}: a process has one tracer, and {name} "
                "must be its children's; use --trace=agent"
            )
        self.privileges_dropped = self.mechanism == PTRACE and privileges_dropped(argv)
        self.buffer = TrapBuffer()
        self.tracer: Tracer | None = None

    def env(self) -> dict[str, str] | None:
        """The command's environment: ours plus the agent, or None (unchanged)."""
        if self.mechanism != AGENT or self.agent is None:
            return None
        env = dict(os.environ)
        preload = env.get("LD_PRELOAD", "").strip()
        env["LD_PRELOAD"] = f"{self.agent} {preload}".strip()
        env.update(self.buffer.agent_env())
        if self.method == BREAKPOINT:
            self.sites = SiteServer(self.site_cache)
            env.update(self.sites.env())
        return env

    def attach(self, pid: int) -> None:
        """ptrace: seize the command at its gate, before it execs."""
        if self.mechanism != PTRACE:
            return
        try:
            self.tracer = Tracer(pid, self.buffer.map)
        except PerfOpenError as exc:
            from splitlock_probe.errors import UnsupportedHost

            raise UnsupportedHost(
                f"cannot trace with ptrace here ({exc}): a container's seccomp profile or "
                "kernel.yama.ptrace_scope=3 forbids it; try --trace=agent"
            ) from None

    def result(self, tracker: TrackerView) -> TraceResult:
        return collect(
            self.mechanism,
            self.reason,
            self.buffer.counters(),
            self.buffer.records(),
            tracker.mapping,
            tracker.comm,
            tracker.mappings,
            tracker.execs,
            self.buffer.tampered(),
            self.privileges_dropped,
            self.method,
            sorted(self.sites.answers.values(), key=lambda a: a.path) if self.sites else [],
        )

    def close(self) -> None:
        if self.sites is not None:
            self.sites.close()
            self.sites = None
        if self.tracer is not None:
            self.tracer.close()
            self.tracer = None
        self.buffer.close()
