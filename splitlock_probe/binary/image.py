"""One ELF file as the tools need it: its load segments (to turn file offsets,
run-time addresses and link-time addresses into one another), its sections,
its function and object symbols, and where its debug information is (the
file itself, or a separate debug file found by build-id under
/usr/lib/debug). Read once per path with pyelftools."""

from __future__ import annotations

import bisect
import os
import struct
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import BinaryIO

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import NoteSection, SymbolTableSection

from splitlock_probe.host.procinfo import Mapping

DEBUG_ROOT = Path("/usr/lib/debug")
SHF_ALLOC, SHF_EXECINSTR = 0x2, 0x4


@dataclass(frozen=True)
class Segment:
    vaddr: int
    memsz: int
    offset: int
    filesz: int
    align: int
    executable: bool


@dataclass(frozen=True)
class Section:
    index: int
    name: str
    addr: int
    size: int
    offset: int
    align: int
    executable: bool
    allocated: bool
    nobits: bool


@dataclass(frozen=True)
class Symbol:
    name: str
    value: int  # a link-time address (section-relative in a relocatable object)
    size: int
    section: int | None  # section index; None when undefined or absolute


@dataclass
class _Table:
    starts: list[int] = field(default_factory=list)
    symbols: list[Symbol] = field(default_factory=list)

    def at(self, address: int, section: int | None = None) -> tuple[Symbol, int] | None:
        """The symbol holding `address` (a label exactly there, else the sized one
        around it) and the offset into it."""
        i = bisect.bisect_right(self.starts, address) - 1
        while i >= 0:
            sym = self.symbols[i]
            if section is not None and sym.section != section:
                i -= 1
                continue
            if sym.value == address:
                return sym, 0
            if sym.size and sym.value <= address < sym.value + sym.size:
                return sym, address - sym.value
            if sym.size:
                return None
            i -= 1
        return None


class ElfImage:
    def __init__(self, path: str) -> None:
        self.path = path
        with open(path, "rb") as f:
            elf = ELFFile(f)
            self.elfclass = elf.elfclass
            self.type = str(elf["e_type"])  # ET_EXEC, ET_DYN, ET_REL
            self.machine = str(elf["e_machine"])
            self.segments = [
                Segment(
                    s["p_vaddr"],
                    s["p_memsz"],
                    s["p_offset"],
                    s["p_filesz"],
                    max(1, s["p_align"]),
                    bool(s["p_flags"] & 1),
                )
                for s in elf.iter_segments()
                if s["p_type"] == "PT_LOAD"
            ]
            self.sections: list[Section] = []
            self.build_id: str | None = None
            # .debug_info itself: has_dwarf_info() also counts the .eh_frame a stripped file keeps
            self.has_dwarf = elf.get_section_by_name(".debug_info") is not None
            functions: list[Symbol] = []
            objects: list[Symbol] = []
            has_symtab = False
            for index, s in enumerate(elf.iter_sections()):
                flags = s["sh_flags"]
                self.sections.append(
                    Section(
                        index,
                        s.name,
                        s["sh_addr"],
                        s["sh_size"],
                        s["sh_offset"],
                        max(1, s["sh_addralign"]),
                        bool(flags & SHF_EXECINSTR),
                        bool(flags & SHF_ALLOC),
                        s["sh_type"] == "SHT_NOBITS",
                    )
                )
                if isinstance(s, NoteSection) and self.build_id is None:
                    for note in s.iter_notes():
                        if note["n_type"] == "NT_GNU_BUILD_ID":
                            self.build_id = str(note["n_desc"])
                if isinstance(s, SymbolTableSection):
                    _symbols_of(f, elf, s, functions, objects)
                    has_symtab = has_symtab or s.name == ".symtab"
        debug = self.debug_path()
        if debug is not None and debug != path and not has_symtab:
            # Stripped: the separate debug file keeps the full symbol table.
            _read_symbols(debug, functions, objects)
        self.functions = _table(functions)
        self.objects = _table(objects)

    @property
    def relocatable(self) -> bool:
        return self.type == "ET_REL"

    @property
    def abi(self) -> str:
        return "i386" if self.elfclass == 32 else "x86-64"

    def debug_path(self) -> str | None:
        """Where the DWARF is: this file, or its separate debug file by build-id."""
        if self.has_dwarf:
            return self.path
        if self.build_id and len(self.build_id) > 2:
            candidate = DEBUG_ROOT / ".build-id" / self.build_id[:2] / f"{self.build_id[2:]}.debug"
            if candidate.is_file():
                return str(candidate)
        return None

    def vaddr_of_offset(self, offset: int) -> int | None:
        for s in self.segments:
            if s.offset <= offset < s.offset + max(s.filesz, 1):
                return s.vaddr + offset - s.offset
        return None

    def segment_at(self, vaddr: int) -> Segment | None:
        for s in self.segments:
            if s.vaddr <= vaddr < s.vaddr + s.memsz:
                return s
        return None

    def bias(self, mapping: Mapping) -> int | None:
        """Run-time address minus link-time address, from one file mapping of it."""
        vaddr = self.vaddr_of_offset(mapping.offset)
        return None if vaddr is None else mapping.start - vaddr

    def section_at(self, vaddr: int) -> Section | None:
        for s in self.sections:
            if s.allocated and s.addr <= vaddr < s.addr + s.size:
                return s
        return None

    def function_at(self, vaddr: int, section: int | None = None) -> str | None:
        found = self.functions.at(vaddr, section)
        if found is None:
            return None
        sym, off = found
        return sym.name if not off else f"{sym.name}+{off:#x}"

    def object_at(self, vaddr: int, section: int | None = None) -> tuple[Symbol, int] | None:
        return self.objects.at(vaddr, section)


# Elf64_Sym and Elf32_Sym, little-endian (x86): read with struct, not
# pyelftools' per-symbol parser, which took most of a C library's sweep.
_SYM64, _SYM32 = struct.Struct("<IBBHQQ"), struct.Struct("<IIIBBH")
STT_NOTYPE, STT_OBJECT, STT_FUNC, STT_TLS = 0, 1, 2, 6
SHN_UNDEF, SHN_LORESERVE, SHN_ABS = 0, 0xFF00, 0xFFF1


def _symbols_of(
    f: BinaryIO, elf: ELFFile, section: SymbolTableSection, functions: list[Symbol],
    objects: list[Symbol],
) -> None:  # fmt: skip
    strtab = elf.get_section(section["sh_link"])
    f.seek(section["sh_offset"])
    data = f.read(section["sh_size"])
    f.seek(strtab["sh_offset"])
    names = f.read(strtab["sh_size"])
    wide = elf.elfclass == 64
    layout = _SYM64 if wide else _SYM32
    data = data[: len(data) - len(data) % layout.size]
    for entry in layout.iter_unpack(data):
        if wide:
            name_at, info, _other, shndx, value, size = entry
        else:
            name_at, value, size, info, _other, shndx = entry
        if not name_at or shndx in (SHN_UNDEF, SHN_ABS) or name_at >= len(names):
            continue
        end = names.find(b"\0", name_at)
        name = names[name_at : end if end >= 0 else len(names)].decode("utf-8", "replace")
        if not name:
            continue
        kind = info & 0xF
        symbol = Symbol(name, value, size, shndx if shndx < SHN_LORESERVE else None)
        if kind in (STT_FUNC, STT_NOTYPE):
            functions.append(symbol)
        elif kind in (STT_OBJECT, STT_TLS):
            objects.append(symbol)


def _read_symbols(path: str, functions: list[Symbol], objects: list[Symbol]) -> None:
    try:
        with open(path, "rb") as f:
            elf = ELFFile(f)
            for section in elf.iter_sections():
                if isinstance(section, SymbolTableSection):
                    _symbols_of(f, elf, section, functions, objects)
    except (OSError, ELFError, ValueError, KeyError, struct.error):
        pass  # a damaged debug file: the image's own symbols stand


def _table(symbols: list[Symbol]) -> _Table:
    by_value: dict[tuple[int, int | None], Symbol] = {}
    for s in symbols:
        old = by_value.get((s.value, s.section))
        # At one address keep a label (size 0) over what is around it, and a
        # global name over a local alias of the same size.
        if old is None or (s.size == 0 and old.size != 0):
            by_value[(s.value, s.section)] = s
    ordered = sorted(by_value.values(), key=lambda s: (s.value, s.section or 0))
    return _Table([s.value for s in ordered], ordered)


@cache
def image(path: str) -> ElfImage | None:
    """The image at `path`, or None when it is not an ELF file we can read."""
    try:
        if not os.path.isfile(path):
            return None
        return ElfImage(path)
    except (OSError, ELFError, ValueError, KeyError, AssertionError, struct.error):
        return None
