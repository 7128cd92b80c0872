"""What an image's DWARF says about an address: the source line of an
instruction (the line table) and the declared type of a global or static
variable, down to the member an access hits.

Read lazily and by compile unit: .debug_aranges names the unit that holds
an instruction, and only that unit's line program and variables are read
(every unit only when there is no such table, or the unit does not declare
the variable). A whole libpython's DWARF takes pyelftools half a minute;
one unit takes milliseconds."""

from __future__ import annotations

import bisect
import os
from dataclasses import dataclass
from functools import cache
from typing import Any

from elftools.common.exceptions import DWARFError, ELFError
from elftools.elf.elffile import ELFFile

from splitlock_probe.binary.image import ElfImage
from splitlock_probe.structs.dwarf import members_of, name_of, type_of
from splitlock_probe.structs.types import Member
from splitlock_probe.text import size_text

_DAMAGED = (DWARFError, ELFError, OSError, ValueError, KeyError, IndexError, AttributeError)
EVERY_UNIT = -1


@dataclass(frozen=True)
class Hit:
    """The declared thing an access of `width` bytes at `offset` into a variable hits."""

    member: str  # "g_ctl.flags", or the variable itself
    size: int
    type: str
    width: int

    @property
    def wider_than_member(self) -> bool:
        return self.width > self.size


def member_at(members: list[Member], offset: int) -> Member | None:
    """The innermost (smallest) member holding byte `offset`; bitfields never."""
    best: Member | None = None
    for m in members:
        holds = m.offset <= offset < m.offset + max(m.size, 1)
        if holds and not m.bitfield and (best is None or m.size <= best.size):
            best = m
    return best


class DebugInfo:
    def __init__(self, image: ElfImage) -> None:
        self.image = image
        self.path = image.debug_path()
        self._lines: dict[int, tuple[list[int], list[str]]] = {}  # by unit offset
        self._variables: dict[int, dict[str, Any]] = {}
        self._aranges: Any = None
        self._file: Any = None
        self._dwarf: Any = None

    def _open(self) -> Any:
        if self._dwarf is None and self.path is not None:
            self._file = open(self.path, "rb")  # noqa: SIM115 - kept open for lazy DIEs
            self._dwarf = ELFFile(self._file).get_dwarf_info()
        return self._dwarf

    def unit_at(self, vaddr: int) -> Any | None:
        """The compile unit whose code holds `vaddr`, or None (no table, or none)."""
        dwarf = self._open()
        if dwarf is None:
            return None
        if self._aranges is None:
            self._aranges = dwarf.get_aranges() or False
        if self._aranges is False:
            return None
        offset = self._aranges.cu_offset_at_addr(vaddr)
        return None if offset is None else dwarf.get_CU_at(offset)

    def _units(self, unit: Any | None) -> list[Any]:
        dwarf = self._open()
        if dwarf is None:
            return []
        return [unit] if unit is not None else list(dwarf.iter_CUs())

    def source_at(self, vaddr: int) -> str | None:
        """'file.c:42' for a link-time address (section-relative in an object)."""
        try:
            unit = self.unit_at(vaddr)
            key = unit.cu_offset if unit is not None else EVERY_UNIT
            if key not in self._lines:
                self._lines[key] = self._read_lines(self._units(unit))
        except _DAMAGED:
            return None
        starts, where = self._lines[key]
        i = bisect.bisect_right(starts, vaddr) - 1
        return where[i] if i >= 0 and where[i] else None

    def _read_lines(self, units: list[Any]) -> tuple[list[int], list[str]]:
        rows: list[tuple[int, str]] = []
        try:
            for unit in units:
                program = self._dwarf.line_program_for_CU(unit)
                if program is None:
                    continue
                files = program["file_entry"]
                version = program["version"]
                for entry in program.get_entries():
                    state = entry.state
                    if state is None:
                        continue
                    if state.end_sequence:
                        rows.append((state.address, ""))
                        continue
                    index = state.file if version >= 5 else state.file - 1
                    name = "?"
                    if 0 <= index < len(files):
                        name = os.path.basename(files[index].name.decode(errors="replace"))
                    rows.append((state.address, f"{name}:{state.line}"))
        except _DAMAGED:
            pass  # a damaged table: what was read stands
        rows.sort(key=lambda r: r[0])
        return [r[0] for r in rows], [r[1] for r in rows]

    def _variables_of(self, unit: Any | None) -> dict[str, Any]:
        """name -> type DIE of the variables (definitions and extern declarations)."""
        key = unit.cu_offset if unit is not None else EVERY_UNIT
        if key in self._variables:
            return self._variables[key]
        found: dict[str, Any] = {}
        self._variables[key] = found
        try:
            for u in self._units(unit):
                for die in u.iter_DIEs():
                    if die.tag != "DW_TAG_variable":
                        continue
                    spec = die
                    if "DW_AT_specification" in die.attributes:
                        spec = die.get_DIE_from_attribute("DW_AT_specification")
                    name = name_of(spec)
                    kind = type_of(spec)
                    if name and kind is not None and name not in found:
                        found[name] = kind
        except _DAMAGED:
            pass
        return found

    def hit(self, variable: str, offset: int, width: int, code: int | None = None) -> Hit | None:
        """The member of `variable` holding byte `offset` (None without DWARF).
        The unit of the code at `code` is asked first: it declares what it
        touches (a static, or an extern from a header)."""
        try:
            unit = self.unit_at(code) if code is not None else None
            kind = self._variables_of(unit).get(variable) if unit is not None else None
            if kind is None:
                kind = self._variables_of(None).get(variable)
            if kind is None:
                return None
            type_name, size, members = members_of(kind, self.image.abi)
        except _DAMAGED:
            return None
        best = member_at(members, offset)
        if best is None:
            return Hit(variable, size, type_name, width)
        sep = "" if best.name.startswith("[") else "."
        return Hit(f"{variable}{sep}{best.name}", best.size, best.type, width)


@dataclass(frozen=True)
class ParameterHint:
    """What DWARF suggests a register operand is: a member of the struct a
    pointer parameter points at (the register holds it at the function's
    entry; a compiler may have reused it since, hence a hint)."""

    register: str
    parameter: str
    type: str  # "struct ctl *"
    member: str | None  # "flags"
    member_size: int | None
    member_type: str | None

    def words(self) -> str:
        target = f"{self.parameter}->{self.member}" if self.member else f"*{self.parameter}"
        size = f" ({self.member_type}, {size_text(self.member_size)})" if self.member else ""
        return (
            f"likely {target}{size}: {self.register} holds {self.parameter} ({self.type}) at entry"
        )

    def as_dict(self) -> dict[str, Any]:
        return {"register": self.register, "parameter": self.parameter, "type": self.type,
                "member": self.member, "member_size": self.member_size,
                "member_type": self.member_type}  # fmt: skip


_ARGUMENT_REGISTERS = ("rdi", "rsi", "rdx", "rcx", "r8", "r9")  # x86-64 SysV, integer class


def _pc_range(die: Any) -> tuple[int, int] | None:
    low = die.attributes.get("DW_AT_low_pc")
    high = die.attributes.get("DW_AT_high_pc")
    if low is None or high is None:
        return None
    end = high.value if high.form == "DW_FORM_addr" else low.value + high.value
    return int(low.value), int(end)


def parameter_hint(info: DebugInfo, vaddr: int, register: str, disp: int) -> ParameterHint | None:
    """For `[register + disp]` in the function at `vaddr` (x86-64 only)."""
    if info.image.abi != "x86-64" or register not in _ARGUMENT_REGISTERS:
        return None
    try:
        unit = info.unit_at(vaddr)
        if unit is None:
            return None
        for die in unit.get_top_DIE().iter_children():
            span = _pc_range(die) if die.tag == "DW_TAG_subprogram" else None
            if span is None or not span[0] <= vaddr < span[1]:
                continue
            params = [c for c in die.iter_children() if c.tag == "DW_TAG_formal_parameter"]
            index = _ARGUMENT_REGISTERS.index(register)
            if index >= len(params):
                return None
            return _hint(info, register, params[index], disp)
    except _DAMAGED:
        return None
    return None


def _hint(info: DebugInfo, register: str, param: Any, disp: int) -> ParameterHint | None:
    from splitlock_probe.structs.dwarf import peeled

    name = name_of(param) or "?"
    pointer = peeled(type_of(param))
    if pointer is None or pointer.tag != "DW_TAG_pointer_type":
        return None
    pointee = type_of(pointer)
    type_name, _, _ = members_of(pointer, info.image.abi)
    _, _, members = members_of(pointee, info.image.abi) if pointee is not None else ("", 0, [])
    best = member_at(members, disp)
    if best is None:
        return ParameterHint(register, name, type_name, None, None, None)
    return ParameterHint(register, name, type_name, best.name, best.size, best.type)


@cache
def debuginfo(image: ElfImage) -> DebugInfo:
    return DebugInfo(image)
