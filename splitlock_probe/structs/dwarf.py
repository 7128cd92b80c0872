"""Struct and union layouts from an ELF's DWARF (pyelftools), in the ELF's
own ABI: ELFCLASS32 is i386 (8-byte scalars align to 4 inside structs),
ELFCLASS64 is x86-64 (scalars align to their size).

Members are flattened: nested structs and unions with dotted names
(`msg.count`), arrays as a whole and per element (`bits[1]`, up to
MAX_ELEMENTS), bitfields named with their bit offset. The struct's
alignment comes from DW_AT_alignment where the compiler wrote it (an
explicit `aligned(N)`), else from its members under the ABI, and is 1 for a
packed struct: DWARF does not mark one, but a member at an offset its type
would not allow gives it away.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

from splitlock_probe.errors import UsageError
from splitlock_probe.structs.types import I386, X86_64, Member, Struct
from splitlock_probe.text import escape

MAX_ELEMENTS = 64  # array elements listed one by one; the whole array is always there
_AGGREGATES = ("DW_TAG_structure_type", "DW_TAG_union_type")
_PEEL = ("DW_TAG_typedef", "DW_TAG_const_type", "DW_TAG_volatile_type", "DW_TAG_restrict_type",
         "DW_TAG_atomic_type")  # fmt: skip


def _name(die: Any) -> str | None:
    attr = die.attributes.get("DW_AT_name")
    return attr.value.decode(errors="replace") if attr is not None else None


def _type(die: Any) -> Any | None:
    return die.get_DIE_from_attribute("DW_AT_type") if "DW_AT_type" in die.attributes else None


def _peeled(die: Any) -> Any:
    while die is not None and die.tag in _PEEL:
        nxt = _type(die)
        if nxt is None:
            return die
        die = nxt
    return die


def _type_name(die: Any | None) -> str:
    if die is None:
        return "void"
    name = _name(die)
    if die.tag == "DW_TAG_pointer_type":
        return f"{_type_name(_type(die))} *"
    if die.tag in ("DW_TAG_const_type", "DW_TAG_volatile_type"):
        return f"{die.tag[7:-5]} {_type_name(_type(die))}"
    if die.tag == "DW_TAG_array_type":
        return f"{_type_name(_type(die))}[{_count(die) or ''}]"
    if die.tag in _AGGREGATES:
        return f"{'struct' if die.tag == _AGGREGATES[0] else 'union'} {name or '(anonymous)'}"
    return name or "?"


def _count(die: Any) -> int | None:
    for sub in die.iter_children():
        if sub.tag == "DW_TAG_subrange_type":
            if "DW_AT_count" in sub.attributes:
                return int(sub.attributes["DW_AT_count"].value)
            if "DW_AT_upper_bound" in sub.attributes:
                return int(sub.attributes["DW_AT_upper_bound"].value) + 1
    return None


def _size(die: Any, abi: str) -> int:
    die = _peeled(die)
    if die is None:
        return 0
    if "DW_AT_byte_size" in die.attributes:
        return int(die.attributes["DW_AT_byte_size"].value)
    if die.tag == "DW_TAG_pointer_type":
        return 4 if abi == I386 else 8
    if die.tag == "DW_TAG_array_type":
        return (_count(die) or 0) * _size(_type(die), abi)
    return 0


def _natural_align(die: Any, abi: str) -> int:
    """What a member of this type asks for under the ABI."""
    die = _peeled(die)
    if die is None:
        return 1
    if "DW_AT_alignment" in die.attributes:
        return int(die.attributes["DW_AT_alignment"].value)
    if die.tag == "DW_TAG_array_type":
        return _natural_align(_type(die), abi)
    if die.tag in _AGGREGATES:
        return _aggregate_align(die, abi)[0]
    size = _size(die, abi)
    if abi == I386 and size > 4:
        return 4  # i386 SysV: long long, double, uint64_t align to 4 inside structs
    return max(1, min(size, 16))


def _aggregate_align(die: Any, abi: str) -> tuple[int, str]:
    if "DW_AT_alignment" in die.attributes:
        n = int(die.attributes["DW_AT_alignment"].value)
        return n, f"DW_AT_alignment {n} (an explicit aligned({n}))"
    best, packed = 1, False
    for m in die.iter_children():
        if m.tag != "DW_TAG_member" or "DW_AT_bit_size" in m.attributes:
            continue
        want = _natural_align(_type(m), abi)
        off = _offset(m)
        if off is not None and off % want:
            packed = True
        best = max(best, want)
    if packed:
        return 1, "1: packed (a member sits at an offset its type would not allow)"
    return best, f"{best}: its most aligned member, under the {abi} ABI"


def _offset(member: Any) -> int | None:
    attr = member.attributes.get("DW_AT_data_member_location")
    if attr is None:
        return 0  # a union's members, or DWARF 5's bitfields
    value = attr.value
    return int(value) if isinstance(value, int) else None


def _bit_offset(member: Any, bits: int, byte_offset: int, abi: str) -> int:
    """A bitfield's first bit from the struct's start (little-endian x86)."""
    attrs = member.attributes
    if "DW_AT_data_bit_offset" in attrs:  # DWARF 5
        return int(attrs["DW_AT_data_bit_offset"].value)
    if "DW_AT_bit_offset" in attrs:  # DWARF 4: counted from the storage unit's top bit
        unit = _size(_type(member), abi) or 4
        return byte_offset * 8 + unit * 8 - int(attrs["DW_AT_bit_offset"].value) - bits
    return byte_offset * 8


def _flatten(die: Any, abi: str, base: int, prefix: str, packed: bool) -> Iterator[Member]:
    for m in die.iter_children():
        if m.tag != "DW_TAG_member":
            continue
        name = _name(m)
        path = f"{prefix}{name}" if name else prefix.rstrip(".")
        mtype = _type(m)
        offset = base + (_offset(m) or 0)
        if "DW_AT_bit_size" in m.attributes:
            bits = int(m.attributes["DW_AT_bit_size"].value)
            bit_off = _bit_offset(m, bits, offset - base, abi)
            yield Member(path or "(bitfield)", base + bit_off // 8, max(1, (bits + 7) // 8),
                         _type_name(mtype), 1, bit_off, bits)  # fmt: skip
            continue
        size = _size(mtype, abi)
        align = 1 if packed else _natural_align(mtype, abi)
        inner = _peeled(mtype)
        if name:
            yield Member(path, offset, size, _type_name(mtype), align)
        if inner is not None and inner.tag in _AGGREGATES:
            inner_packed = packed or _aggregate_align(inner, abi)[0] == 1
            yield from _flatten(inner, abi, offset, f"{path}." if path else "", inner_packed)
        elif inner is not None and inner.tag == "DW_TAG_array_type" and name:
            elem = _type(inner)
            n, esize = _count(inner) or 0, _size(elem, abi)
            for i in range(min(n, MAX_ELEMENTS)):
                yield Member(f"{path}[{i}]", offset + i * esize, esize, _type_name(elem), align)


def structs(path: Path) -> Iterator[Struct]:
    """Every named struct and union with a size that the DWARF defines."""
    try:
        with open(path, "rb") as f:
            elf = ELFFile(f)
            abi = I386 if elf.elfclass == 32 else X86_64
            # has_dwarf_info() also counts .eh_frame, which every stripped ELF has
            if elf.get_section_by_name(".debug_info") is None:
                shown = escape(str(path))
                raise UsageError(f"{shown}: no DWARF (build with -g, or give its debug file)")
            seen: set[str] = set()
            for cu in elf.get_dwarf_info().iter_CUs():
                for die in cu.iter_DIEs():
                    if die.tag not in _AGGREGATES or "DW_AT_declaration" in die.attributes:
                        continue
                    name = _name(die)
                    if not name or name in seen or "DW_AT_byte_size" not in die.attributes:
                        continue
                    seen.add(name)
                    align, source = _aggregate_align(die, abi)
                    members = tuple(_flatten(die, abi, 0, "", align == 1))
                    kind = "union" if die.tag == _AGGREGATES[1] else "struct"
                    yield Struct(name, abi, _size(die, abi), align, source, members, kind)
    except (OSError, ELFError) as exc:
        raise UsageError(f"{path}: not an ELF file with DWARF ({exc})") from None


def members_of(type_die: Any, abi: str) -> tuple[str, int, list[Member]]:
    """A variable's type as the audit sees it: its name, its size, and its
    members flattened (none for a scalar)."""
    inner = _peeled(type_die)
    members: list[Member] = []
    if inner is not None and inner.tag in _AGGREGATES:
        packed = _aggregate_align(inner, abi)[0] == 1
        members = list(_flatten(inner, abi, 0, "", packed))
    elif inner is not None and inner.tag == "DW_TAG_array_type":
        elem = _type(inner)
        n, esize = _count(inner) or 0, _size(elem, abi)
        inner_elem = _peeled(elem)
        for i in range(min(n, MAX_ELEMENTS)):
            members.append(Member(f"[{i}]", i * esize, esize, _type_name(elem), 1))
            if inner_elem is not None and inner_elem.tag in _AGGREGATES:
                packed = _aggregate_align(inner_elem, abi)[0] == 1
                members.extend(_flatten(inner_elem, abi, i * esize, f"[{i}].", packed))
    return _type_name(type_die), _size(type_die, abi), members


def type_of(die: Any) -> Any | None:
    return _type(die)


def name_of(die: Any) -> str | None:
    return _name(die)


def peeled(die: Any) -> Any:
    """The type under typedefs and qualifiers."""
    return _peeled(die)
