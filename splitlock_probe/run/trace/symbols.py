"""A code address as `file+0xoffset` and, where the ELF has symbols,
`symbol+0xoffset`, read with pyelftools.

The address comes with the mapping it was in (from perf's mmap records or
/proc/PID/maps), which gives the file and the file offset. A symbol's value
is a virtual address in the ELF; the PT_LOAD segment holding it turns it
into a file offset, so both sides meet in file offsets and no load bias is
needed. A label exactly at the address wins over the function around it.
"""

from __future__ import annotations

import bisect
import os
from dataclasses import dataclass
from functools import cache

from splitlock_probe.host.procinfo import Mapping


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


@dataclass(frozen=True)
class _Symbols:
    starts: list[int]  # file offsets, sorted
    entries: list[tuple[int, int, str]]  # (file offset, size, name), same order


@cache
def _symbols(path: str) -> _Symbols | None:
    try:
        from elftools.common.exceptions import ELFError
        from elftools.elf.elffile import ELFFile
        from elftools.elf.sections import SymbolTableSection
    except ImportError:  # pragma: no cover - a dependency; listed in pyproject
        return None
    try:
        with open(path, "rb") as f:
            elf = ELFFile(f)
            loads = [
                (s["p_vaddr"], s["p_memsz"], s["p_offset"])
                for s in elf.iter_segments()
                if s["p_type"] == "PT_LOAD"
            ]
            entries: dict[int, tuple[int, int, str]] = {}
            for section in elf.iter_sections():
                if not isinstance(section, SymbolTableSection):
                    continue
                for sym in section.iter_symbols():
                    value = sym["st_value"]
                    if not sym.name or not value or sym["st_shndx"] == "SHN_UNDEF":
                        continue
                    if sym["st_info"]["type"] not in ("STT_FUNC", "STT_NOTYPE"):
                        continue
                    for vaddr, memsz, offset in loads:
                        if vaddr <= value < vaddr + memsz:
                            at = value - vaddr + offset
                            size = sym["st_size"]
                            old = entries.get(at)
                            # At one offset keep the label (size 0) over the function.
                            if old is None or (size == 0 and old[1] != 0):
                                entries[at] = (at, size, sym.name)
                            break
    except (OSError, ELFError, ValueError):
        return None
    ordered = sorted(entries.values())
    return _Symbols([e[0] for e in ordered], ordered)


def _symbol(path: str, offset: int) -> str | None:
    table = _symbols(path)
    if table is None:
        return None
    i = bisect.bisect_right(table.starts, offset) - 1
    while i >= 0:
        at, size, name = table.entries[i]
        if at == offset:
            return name
        if size and at <= offset < at + size:
            return f"{name}+{offset - at:#x}"
        if size:  # the nearest sized symbol does not hold it: no name
            return None
        i -= 1  # a label before it; look further for the function around it
    return None


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
    from splitlock_probe.binary.image import image

    img = image(where.file)
    vaddr = img.vaddr_of_offset(where.offset) if img else None
    return debuginfo(img).source_at(vaddr) if img and vaddr is not None else None
