"""A struct read from --from as a layout that `scan` places and probes: its
own alignment is its placement policy, and the members a locked op fits are
what it probes when no --field is named."""

from __future__ import annotations

from splitlock_probe.model.hazard import natural_width
from splitlock_probe.model.layouts import Field, Layout
from splitlock_probe.structs.types import Member, Struct


def _lockable(m: Member) -> bool:
    """A scalar a locked op of its own width could target (not a bitfield,
    not an array or an aggregate as a whole)."""
    aggregate = "[" in m.type or m.type.startswith(("struct ", "union "))
    return not m.bitfield and not aggregate and natural_width(m.size) is not None


def as_layout(struct: Struct) -> Layout:
    fields = tuple(Field(m.name, m.offset, m.size) for m in struct.members if not m.bitfield)
    return Layout(
        struct.name,
        struct.size,
        fields,
        f"{struct.kind} {struct.name} ({struct.abi}), aligned {struct.align}: "
        f"{struct.align_source}",
        abi=struct.abi,
        align=struct.align,
        default_fields=tuple(m.name for m in struct.members if _lockable(m)),
        builtin=False,
    )
