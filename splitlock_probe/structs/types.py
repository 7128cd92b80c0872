"""A struct as read from debug information: its members flattened, and how
its alignment was decided."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from splitlock_probe.model.layouts import I386, X86_64

__all__ = ["ABI_CHOICES", "BOTH", "I386", "X86_64", "Member", "Struct"]

BOTH = "both"
ABI_CHOICES = (X86_64, I386, BOTH)


@dataclass(frozen=True)
class Member:
    name: str  # dotted for nested members, [i] for array elements
    offset: int  # bytes from the start of the struct
    size: int  # bytes
    type: str  # as declared, typedefs kept
    align: int  # what the type asks for under the ABI (1 for a packed struct's members)
    bit_offset: int | None = None  # a bitfield: its first bit; never a locked op's target
    bit_size: int | None = None

    @property
    def bitfield(self) -> bool:
        return self.bit_size is not None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "offset": self.offset, "size": self.size,
                               "type": self.type}  # fmt: skip
        if self.bitfield:
            out.update(bit_offset=self.bit_offset, bit_size=self.bit_size)
        return out


@dataclass(frozen=True)
class Struct:
    name: str
    abi: str  # X86_64 | I386
    size: int
    align: int
    align_source: str  # how the alignment was decided, in words
    members: tuple[Member, ...] = field(default_factory=tuple)
    kind: str = "struct"  # or "union"
