"""Each field of a struct against the locked op that could target it: at
which placements (mod 64) the struct's alignment allows it splits a line."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from splitlock_probe.model.hazard import natural_width, placements_mod_line, split_placements
from splitlock_probe.structs.types import Member, Struct


@dataclass(frozen=True)
class FieldHazard:
    member: Member
    width: int | None  # the op's width at this field (None: no locked op fits it)
    split_at: tuple[int, ...]  # struct placements mod 64 where that op splits

    @property
    def hazard(self) -> bool:
        return bool(self.split_at)


def analyse(
    struct: Struct, op_width: int | None = None, fields: Sequence[str] = ()
) -> list[FieldHazard]:
    """op_width: that op aimed at each field (the seed: an 8-byte bts at a
    4-byte field); None: each field's natural width. Bitfields are never
    offered to a locked op."""
    out = []
    for m in struct.members:
        if fields and m.name not in fields:
            continue
        width = None if m.bitfield else op_width or natural_width(m.size)
        split = split_placements(m.offset, width, struct.align) if width else []
        out.append(FieldHazard(m, width, tuple(split)))
    return out


def worst_placement(struct: Struct, hazards: Sequence[FieldHazard]) -> int:
    """The allowed placement (mod 64) where the most fields split (0 if none)."""
    best, most = 0, 0
    for p in placements_mod_line(struct.align):
        n = sum(1 for h in hazards if p in h.split_at)
        if n > most:
            best, most = p, n
    return best
