"""A code address as `file+0xoffset` and, where the ELF has symbols,
`symbol+0xoffset`, read with pyelftools.

The address comes with the mapping it was in (from perf's mmap records or
/proc/PID/maps), which gives the file and the file offset. A symbol's value
is a virtual address in the ELF; the PT_LOAD segment holding the file
offset turns it into one, so no load bias is needed. A label exactly at the
address wins over the function around it (binary/image.py).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from splitlock_probe.host.procinfo import Mapping

if TYPE_CHECKING:
    from splitlock_probe.binary.image import ElfImage


@dataclass(frozen=True)
class Place:
    file: str | None  # the mapped file's path, None for anonymous memory
    offset: int | None  # in the file
    symbol: str | None  # "func+0x12" or "label"

    @property
    def location(self) -> str | None:
        if self.file is None or self.offset is None:
            return None
        return f"{os.path.basename(self.file)}+{self.offset:#x}"


def _linked(path: str, offset: int) -> tuple[ElfImage, int] | None:
    """The image at `path` and the link-time address of a file offset in it."""
    from splitlock_probe.binary.image import image

    img = image(path)
    vaddr = img.vaddr_of_offset(offset) if img else None
    return (img, vaddr) if img is not None and vaddr is not None else None


def _symbol(path: str, offset: int) -> str | None:
    """The function (or label) at a file offset, from the image's symbols."""
    found = _linked(path, offset)
    return found[0].function_at(found[1]) if found else None


def place(address: int, mapping: Mapping | None) -> Place:
    if mapping is None or not mapping.path or mapping.path.startswith("["):
        return Place(mapping.path or None if mapping else None, None, None)
    offset = address - mapping.start + mapping.offset
    return Place(mapping.path, offset, _symbol(mapping.path, offset))


def source_of(where: Place) -> str | None:
    """'file.c:42' of the code at `where`, from its image's line table (or its
    debug file by build-id); None without DWARF."""
    if where.file is None or where.offset is None:
        return None
    from splitlock_probe.binary.debuginfo import debuginfo

    found = _linked(where.file, where.offset)
    return debuginfo(found[0]).source_at(found[1]) if found else None
