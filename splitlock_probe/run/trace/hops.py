"""Where a short locked site can hop to its stub through alignment filler.

A site under 5 bytes whose following instructions may not move (moved.py)
has no room for a `jmp rel32`, but every locked instruction has room for a
2-byte `jmp rel8`: it reaches 128 bytes back and 127 on from the site's
third byte. Compilers pad between functions (and before aligned labels)
with nops or int3s after a return or a jump, up to a 16-byte boundary:
bytes nothing falls into. Five of them within reach take a `jmp rel32` to
the stub, so the site becomes `jmp rel8` -> hop -> stub and raises no signal
when its operand is aligned.

Filler is used only where nothing can enter it: no direct branch in the
image targets it, no RIP-relative `lea` takes its address (a pointer to
code: a computed goto's label), no function starts in it (by symbol or by unwind entry:
an entry reached only through a pointer may begin with nops, as
-fpatchable-function-entry makes them), and it lies in no function with
exception landing pads. An image whose unwind table cannot be read gets no
hops. Each hop serves one site, and the agent checks that the hop's bytes
are still the filler the tool read.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from splitlock_probe.binary.ehframe import Unwind

HOP_BYTES = 5  # jmp rel32
REL8_BACK, REL8_ON = -128, 127


@dataclass(frozen=True)
class Entries:
    """What can enter an image's code without a direct branch."""

    starts: list[int]  # function starts, by symbol and by unwind entry, ascending
    landing: list[tuple[int, int]]  # [start, end) of functions with landing pads


@dataclass
class Hops:
    """One image's usable filler runs, handed out 5 bytes at a time."""

    runs: list[tuple[int, int]]  # [start, end) in address order (the sweep's)
    targets: set[int]  # every direct branch target and lea-taken address in the image
    entries: Entries | None  # None: unknown, so no hops at all
    _starts: list[int] = field(default_factory=list)
    _next: dict[int, int] = field(default_factory=dict)  # run index: its first unused byte

    def __post_init__(self) -> None:
        entries = self.entries
        self.runs = [
            (start, end)
            for start, end in self.runs
            if entries is not None
            and end - start >= HOP_BYTES
            and not any(a in self.targets for a in range(start, end))
            and not _holds(entries.starts, start, end)
            and not any(lo < end and start < hi for lo, hi in entries.landing)
        ]
        self._starts = [start for start, _ in self.runs]

    def hop(self, vaddr: int) -> int | None:
        """A hop for the site at `vaddr` (its `jmp rel8` ends at vaddr + 2), as
        the hop's address; None when no unused filler is in reach."""
        after = vaddr + 2
        lo, hi = after + REL8_BACK, after + REL8_ON
        k = max(0, bisect.bisect_left(self._starts, lo) - 1)
        while k < len(self.runs) and self.runs[k][0] <= hi:
            start, end = self.runs[k]
            at = max(self._next.get(k, start), lo)
            if at <= hi and at + HOP_BYTES <= end:
                self._next[k] = at + HOP_BYTES
                return at
            k += 1
        return None


def _holds(ascending: list[int], start: int, end: int) -> bool:
    k = bisect.bisect_left(ascending, start)
    return k < len(ascending) and ascending[k] < end


def entries_of(unwind: Unwind, symbol_starts: list[int]) -> Entries | None:
    """The image's entries: its function symbols' starts and its .eh_frame
    functions; None when that table uses an encoding we cannot read."""
    if unwind.functions is None:
        return None
    starts = sorted(set(symbol_starts) | {start for start, _, _ in unwind.functions})
    return Entries(starts, unwind.landing())
