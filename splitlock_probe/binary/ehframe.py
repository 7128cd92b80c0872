"""The functions an ELF image's .eh_frame describes (one FDE each), and
which of them have exception landing pads: an FDE with a non-null LSDA
pointer. The unwinder jumps to a landing pad, an address no branch names, so
code there must stay where it is (run/trace/moved.py); and a function's start
is an entry even where no symbol names it (run/trace/hops.py).

A small reader of the .eh_frame format (the LSB's, DWARF CFI with GNU
augmentations), because pyelftools decodes every call-frame instruction and
took seconds on a C++ compiler's 2 MB table. An encoding it does not know
makes it answer "unknown" (None), which its callers take the safe way."""

from __future__ import annotations

import struct
from dataclasses import dataclass

EVERYTHING = [(0, 1 << 64)]
_SIZES = {0x00: 8, 0x02: 2, 0x03: 4, 0x04: 8, 0x0A: 2, 0x0B: 4, 0x0C: 8}  # DW_EH_PE formats
_SIGNED = {0x0A: "<h", 0x0B: "<i", 0x0C: "<q"}
_UNSIGNED = {0x00: "<Q", 0x02: "<H", 0x03: "<I", 0x04: "<Q"}
_PCREL, _OMIT = 0x10, 0xFF


class _Unknown(Exception):
    pass


def _uleb(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, at


def _skip_leb(data: bytes, at: int) -> int:
    """Past one LEB128 number, signed or not (their lengths are the same)."""
    _, end = _uleb(data, at)
    return end


def _pointer(data: bytes, at: int, encoding: int, vaddr: int) -> tuple[int, int]:
    """An encoded pointer at `at` (its own address `vaddr + at`), and the next offset."""
    fmt = encoding & 0x0F
    if fmt not in _SIZES or encoding & 0x70 not in (0, _PCREL):
        raise _Unknown(hex(encoding))
    code = _SIGNED.get(fmt) or _UNSIGNED[fmt]
    (value,) = struct.unpack_from(code, data, at)
    if encoding & 0x70 == _PCREL:
        value += vaddr + at
    return value & ((1 << 64) - 1), at + _SIZES[fmt]


@dataclass(frozen=True)
class Unwind:
    """An image's unwind table, read once for all who ask (moved.py, hops.py)."""

    functions: list[tuple[int, int, bool]] | None  # [start, end), has an LSDA; None: unreadable
    has_table: bool  # an .eh_frame at all
    has_pads: bool  # a .gcc_except_table: LSDAs that name landing pads

    def landing(self) -> list[tuple[int, int]]:
        """[start, end) of each function whose unwind entry names an LSDA: C++
        and -fexceptions cleanups, whose landing pads the unwinder jumps to.
        None without a .gcc_except_table; every address where that table is
        there and the unwind table is missing or cannot be read."""
        if not self.has_pads:
            return []
        if not self.has_table or self.functions is None:
            return EVERYTHING
        return [(start, end) for start, end, lsda in self.functions if lsda]


def unwind_of(path: str) -> Unwind:
    """The unwind table of the ELF at `path`."""
    from elftools.elf.elffile import ELFFile

    with open(path, "rb") as f:
        elf = ELFFile(f)
        eh = elf.get_section_by_name(".eh_frame")
        found = functions(eh.data(), eh["sh_addr"]) if eh is not None else []
        has_pads = elf.get_section_by_name(".gcc_except_table") is not None
    return Unwind(found, eh is not None, has_pads)


def functions(data: bytes, vaddr: int) -> list[tuple[int, int, bool]] | None:
    """[start, end) of each function with an FDE, and whether it names an
    LSDA, from the bytes of .eh_frame loaded at `vaddr`; None when the table
    uses an encoding this reader does not know."""
    cies: dict[int, tuple[bool, int, int]] = {}  # offset: (has 'z', FDE encoding, LSDA encoding)
    out: list[tuple[int, int, bool]] = []
    at = 0
    try:
        while at + 4 <= len(data):
            (length,) = struct.unpack_from("<I", data, at)
            if length == 0:  # the terminator
                break
            if length == 0xFFFFFFFF:
                raise _Unknown("64-bit CFI")
            start, body, end = at, at + 4, at + 4 + length
            (cie_id,) = struct.unpack_from("<I", data, body)
            if cie_id == 0:
                cies[start] = _cie(data, body + 4, vaddr)
            else:
                cie = cies.get(body - cie_id)
                if cie is None:
                    raise _Unknown("an FDE before its CIE")
                z, fde_enc, lsda_enc = cie
                begin, p = _pointer(data, body + 4, fde_enc, vaddr)
                size, p = _pointer(data, p, fde_enc & 0x0F, vaddr)
                raw = 0  # 0: no LSDA
                if z and lsda_enc != _OMIT:
                    _, p = _uleb(data, p)
                    raw, _ = _pointer(data, p, lsda_enc & 0x0F, vaddr)
                out.append((begin, begin + size, raw != 0))
            at = end
    except (_Unknown, struct.error, IndexError):
        return None
    return out


def _cie(data: bytes, at: int, vaddr: int) -> tuple[bool, int, int]:
    version = data[at]
    at += 1
    end = data.index(b"\0", at)
    augmentation = data[at:end]
    at = end + 1
    _, at = _uleb(data, at)  # code alignment
    at = _skip_leb(data, at)  # data alignment (signed)
    if version == 1:
        at += 1  # return address register
    else:
        _, at = _uleb(data, at)
    fde_enc, lsda_enc = 0x00, _OMIT
    if augmentation[:1] == b"z":
        _, at = _uleb(data, at)
        for letter in augmentation[1:]:
            if letter == ord("R"):
                fde_enc = data[at]
                at += 1
            elif letter == ord("L"):
                lsda_enc = data[at]
                at += 1
            elif letter == ord("P"):
                encoding = data[at]
                _, at = _pointer(data, at + 1, encoding & 0x7F, vaddr)
            elif letter not in (ord("S"), ord("B"), ord("G")):
                raise _Unknown(chr(letter))
    elif augmentation:
        raise _Unknown(augmentation.decode(errors="replace"))
    return augmentation[:1] == b"z", fde_enc, lsda_enc
