"""The trap records of a traced run, as sites: one per instruction in the
code (file + offset), with what it touched, how often, and whether that
split a line (a split lock) or was misaligned inside one (a hazard)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from splitlock_probe.binary.data import DataPlace, at_run_time
from splitlock_probe.host.procinfo import Mapping
from splitlock_probe.run.trace.buffer import TrapRecord
from splitlock_probe.run.trace.choose import ALIGNMENT, BREAKPOINT
from splitlock_probe.run.trace.decode import HAZARD, SPLIT, Undecodable, decode
from splitlock_probe.run.trace.symbols import place, source_of
from splitlock_probe.text import counted

if TYPE_CHECKING:
    from splitlock_probe.run.trace.siteserver import ImageAnswer


@dataclass
class TraceSite:
    ip: int  # the first address it was seen at
    location: str | None  # "file+0xoffset"
    symbol: str | None
    file: str | None
    text: str
    width: int
    count: int = 0
    split: int = 0
    hazard: int = 0
    line_offsets: Counter[int] = field(default_factory=Counter)
    crosses_page: int = 0
    threads: dict[int, str | None] = field(default_factory=dict)  # tid -> comm
    source: str | None = None  # "file.c:42", from the image's line table
    data: DataPlace | None = None  # what the operand hit, the first time it trapped

    @property
    def kind(self) -> str:
        return SPLIT if self.split else HAZARD

    @property
    def name(self) -> str:
        return self.location or f"{self.ip:#x}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "location": self.location,
            "symbol": self.symbol,
            "file": self.file,
            "ip": f"{self.ip:#x}",
            "instruction": self.text,
            "width": self.width,
            "kind": self.kind,
            "count": self.count,
            "split": self.split,
            "hazard": self.hazard,
            "line_offsets": {str(k): v for k, v in sorted(self.line_offsets.items())},
            "crosses_page": self.crosses_page,
            "threads": [{"tid": t, "comm": c} for t, c in sorted(self.threads.items())],
            "source": self.source,
            "data": None if self.data is None else self.data.as_dict(),
        }


@dataclass
class TraceResult:
    mechanism: str  # "agent" | "ptrace"
    reason: str  # why this mechanism
    counters: dict[str, int]
    sites: list[TraceSite] = field(default_factory=list)
    undecodable: list[str] = field(default_factory=list)
    programs: int | None = None  # programs the tree exec'd (task records); None: unknown
    tampered: bool = False  # the traced program wrote into the trace buffer's header
    privileges_dropped: bool = False  # ptrace ran a set-user-ID program without its privileges
    method: str = ALIGNMENT  # breakpoint | alignment
    images: list[ImageAnswer] = field(default_factory=list)  # breakpoint mode: each image's sites

    @property
    def untraced(self) -> int | None:
        """Programs of the tree the tracer never ran in (0: it saw all of them;
        None: unknown). ptrace follows every task; the agent must be loaded by
        each program, and a static, set-user-ID or cleared-environment one escapes."""
        if self.mechanism != "agent":
            return 0
        if self.counters["images"] == 0:
            return max(1, self.programs or 0)
        if self.programs is None:
            return None
        return max(0, self.programs - self.counters["images"])

    def gaps(self) -> list[str]:
        """What a clean trace cannot vouch for, beyond untraced programs (each
        has its note too). Left out on purpose: the C library's internal sites
        (`not_armed`, every run has them) and its int3 sites taken out for a
        helper thread (`disarmed`), documented limits of breakpoint mode."""
        out = []
        if self.tampered:
            out.append("the program wrote into the trace buffer")
        if self.counters["dropped"]:
            out.append("locked traps did not fit in the buffer")
        if self.method == BREAKPOINT:
            if self.counters["blind"] or any(i.error is not None for i in self.images):
                out.append("images went unwatched")
            if self.counters["unarmed"]:
                out.append("locked sites could not be armed")
        return out

    @property
    def split(self) -> int:
        return sum(s.split for s in self.sites)

    @property
    def hazard(self) -> int:
        return sum(s.hazard for s in self.sites)

    def sites_with(self, kind: str) -> int:
        """Sites where `kind` (split or hazard) was traced at least once; a site
        can have both, at different placements of its data."""
        return sum(1 for s in self.sites if (s.split if kind == SPLIT else s.hazard))

    @property
    def threads(self) -> set[int]:
        """Every thread the tracer saw do a misaligned locked op."""
        return {tid for s in self.sites for tid in s.threads}

    @property
    def not_armed(self) -> dict[str, int]:
        """Breakpoint mode: C library sites left unarmed, by why (run/trace/clibrary.py)."""
        out: Counter[str] = Counter()
        for image in self.images:
            out.update(image.left)
        return dict(out)

    def breakpoints(self) -> dict[str, Any] | None:
        """What breakpoint mode watched, for the JSON; None in alignment mode."""
        if self.method != BREAKPOINT:
            return None
        return {
            "armed": self.counters["armed"],
            "unarmed": self.counters["unarmed"],
            "hits": self.counters["hits"],
            "jumps": self.counters["jumps"],
            "hops": self.counters["hops"],
            "trapped": self.counters["trapped"],
            "blind_images": self.counters["blind"],
            "disarmed": self.counters["disarmed"],
            "not_armed": self.not_armed,
            "images": [image.as_dict() for image in self.images],
        }

    @property
    def unlocked(self) -> int:
        """Alignment traps of instructions that were not locked: ignored, counted."""
        return max(0, self.counters["traps"] - self.counters["locked"])

    def notes(self) -> list[str]:
        out = []
        if self.privileges_dropped:
            out.append(
                "the command is set-user-ID (or set-group-ID): traced by an unprivileged "
                "ptrace, it ran without those privileges, and may behave otherwise than "
                "untraced (run as root to trace it as it is)"
            )
        if self.tampered:
            out.append(
                "the traced program wrote into the trace buffer's header: its counts and "
                "records may be forged (the tool kept its own bounds)"
            )
        if self.counters["dropped"]:
            out.append(
                f"{self.counters['dropped']:,} locked traps did not fit in the buffer: "
                "site counts are lower bounds"
            )
        if self.undecodable:
            out.append(f"{len(self.undecodable)} trapped instructions could not be decoded")
        if self.method == BREAKPOINT:
            out.extend(self._breakpoint_notes())
        if self.counters["lost_ac"]:
            out.append(
                f"{self.counters['lost_ac']:,} times a thread was found without the "
                "alignment check (a signal came while an instruction was stepped); "
                "it was set again"
            )
        untraced = self.untraced
        if self.mechanism == "agent" and self.counters["images"] == 0:
            out.append(
                "the agent started in no process: the program is static, set-user-ID, "
                "or cleared its environment; nothing was traced (--trace=ptrace follows "
                "every program)"
            )
        elif untraced:
            out.append(
                f"the agent started in {self.counters['images']:,} of the "
                f"{self.programs:,} programs the tree ran: {untraced:,} (static, "
                "set-user-ID, or started with a cleared environment) went untraced "
                "(--trace=ptrace follows every program)"
            )
        elif untraced is None:
            out.append(
                "whether the agent reached every program of the tree is unknown "
                "(task records were lost or refused)"
            )
        return out

    def _breakpoint_notes(self) -> list[str]:
        out = []
        blind = [i for i in self.images if i.error is not None]
        if self.counters["blind"] or blind:
            named = ", ".join(f"{i.path} ({i.error})" for i in blind[:3])
            more = f", +{len(blind) - 3}" if len(blind) > 3 else ""
            out.append(
                f"{counted(max(self.counters['blind'], len(blind)), 'image')} went "
                f"unwatched (no site list){': ' + named + more if named else ''}; "
                "--method alignment sees them"
            )
        if self.counters["disarmed"]:
            out.append(
                f"the C library's {counted(self.counters['disarmed'], 'breakpoint')} were "
                "taken out when the program started one of its helper threads, which run "
                "with every signal blocked (a SIGEV_THREAD timer or mq_notify, aio, "
                "getaddrinfo_a): its sites, and images loaded after that, went unwatched "
                "from then on (--method alignment has no such gap)"
            )
        if self.counters["unarmed"]:
            out.append(
                f"{counted(self.counters['unarmed'], 'locked site')} could not be armed (the "
                "code in memory differs from its file, or no room for a copy near the "
                "image): not watched"
            )
        return out


def collect(
    mechanism: str,
    reason: str,
    counters: dict[str, int],
    records: list[TrapRecord],
    mapping: Callable[[int, int], Mapping | None],
    comm: Callable[[int], str | None],
    mappings: Callable[[int], list[Mapping]],
    programs: int | None = None,
    tampered: bool = False,
    privileges_dropped: bool = False,
    method: str = ALIGNMENT,
    images: list[ImageAnswer] | None = None,
) -> TraceResult:
    result = TraceResult(
        mechanism, reason, counters, programs=programs, tampered=tampered,
        privileges_dropped=privileges_dropped, method=method, images=images or [],
    )  # fmt: skip
    by_place: dict[str, TraceSite] = {}
    for r in records:
        try:
            access = decode(r)
        except Undecodable as exc:
            result.undecodable.append(str(exc))
            continue
        if not access.locked:
            continue
        where = place(r.rip, mapping(r.tid, r.rip))
        key = where.location or f"{r.rip:#x}"
        site = by_place.get(key)
        if site is None:
            site = by_place[key] = TraceSite(
                r.rip, where.location, where.symbol, where.file, access.text, access.width,
                source=source_of(where),
                data=at_run_time(access.address, access.width, mappings(r.tid), r.rip),
            )  # fmt: skip
        site.count += 1
        if access.splits_line:
            site.split += 1
        else:
            site.hazard += 1
        site.crosses_page += access.crosses_page
        site.line_offsets[access.line_offset] += 1
        site.threads.setdefault(r.tid, comm(r.tid))
    result.sites = sorted(by_place.values(), key=lambda s: (s.kind != SPLIT, -s.count, s.name))
    return result
