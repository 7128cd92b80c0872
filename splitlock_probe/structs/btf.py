"""Struct and union layouts from BTF: /sys/kernel/btf/vmlinux (the running
kernel's own types, world-readable) and /sys/kernel/btf/MODULE (split BTF:
its type ids and strings continue vmlinux's). The format is the kernel's
Documentation/bpf/btf.rst: a header (magic 0xeB9F, the type and string
sections' offsets), then `struct btf_type` records (name_off, info with the
kind in bits 24-28, vlen in 0-15 and kflag in bit 31, size or type), each
followed by its kind's data. Kinds we do not need (DECL_TAG, TYPE_TAG and
any newer one) are skipped by their size, never a failure.

The kernel is x86-64 code: its structs follow the x86-64 ABI. BTF holds no
alignment, so it is derived from the members, and is 1 for a packed struct.
"""

from __future__ import annotations

import struct as binary
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from splitlock_probe.errors import UsageError
from splitlock_probe.structs.types import X86_64, Member, Struct

MAGIC = 0xEB9F
_HEADER = binary.Struct("<HBBIIIII")
_TYPE = binary.Struct("<III")
(INT, PTR, ARRAY, STRUCT, UNION, ENUM, FWD, TYPEDEF, VOLATILE, CONST, RESTRICT, FUNC,
 FUNC_PROTO, VAR, DATASEC, FLOAT, DECL_TAG, TYPE_TAG, ENUM64) = range(1, 20)  # fmt: skip
# Bytes of kind data after the 12-byte record: fixed, or per vlen entry.
_FIXED = {INT: 4, ARRAY: 12, VAR: 4, DECL_TAG: 4}
_PER_ENTRY = {STRUCT: 12, UNION: 12, ENUM: 8, FUNC_PROTO: 8, DATASEC: 12, ENUM64: 12}
_QUALIFIERS = (TYPEDEF, VOLATILE, CONST, RESTRICT, TYPE_TAG)
MAX_ELEMENTS = 64
BASE = Path("/sys/kernel/btf/vmlinux")


@dataclass(frozen=True)
class BtfType:
    name: str
    kind: int
    kflag: bool
    size_or_type: int
    members: tuple[tuple[str, int, int], ...] = ()  # (name, type id, offset field)
    array: tuple[int, int] | None = None  # (element type id, count)


class Btf:
    """Every type of one BTF blob (and, for split BTF, its base's)."""

    def __init__(self, data: bytes, base: Btf | None = None) -> None:
        if len(data) < _HEADER.size:
            raise UsageError("not BTF: too short")
        magic, _version, _flags, hdr_len, type_off, type_len, str_off, str_len = (
            _HEADER.unpack_from(data, 0)
        )
        if magic != MAGIC:
            raise UsageError("not BTF (no 0xeB9F magic)")
        start = hdr_len
        self.strings = data[start + str_off : start + str_off + str_len]
        self.base = base
        self.types: list[BtfType | None] = [None] if base is None else list(base.types)
        self._base_strings = 0 if base is None else len(base.strings)
        at, end = start + type_off, start + type_off + type_len
        while at + _TYPE.size <= end:
            name_off, info, size_or_type = _TYPE.unpack_from(data, at)
            at += _TYPE.size
            kind, vlen, kflag = (info >> 24) & 0x1F, info & 0xFFFF, bool(info >> 31)
            members: tuple[tuple[str, int, int], ...] = ()
            array = None
            if kind in (STRUCT, UNION):
                members = tuple(
                    (self.string(n), t, off)
                    for n, t, off in (_TYPE.unpack_from(data, at + 12 * k) for k in range(vlen))
                )
            elif kind == ARRAY:
                elem, _index, count = _TYPE.unpack_from(data, at)
                array = (elem, count)
            at += _FIXED.get(kind, 0) + _PER_ENTRY.get(kind, 0) * vlen
            self.types.append(BtfType(self.string(name_off), kind, kflag, size_or_type,
                                      members, array))  # fmt: skip

    def string(self, off: int) -> str:
        if self.base is not None and off < self._base_strings:
            return self.base.string(off)
        off -= self._base_strings
        end = self.strings.find(b"\0", off)
        return self.strings[off : end if end >= 0 else None].decode(errors="replace")

    def get(self, tid: int) -> BtfType | None:
        return self.types[tid] if 0 < tid < len(self.types) else None

    def peeled(self, tid: int) -> tuple[int, BtfType | None]:
        t = self.get(tid)
        hops = 0
        while t is not None and t.kind in _QUALIFIERS and hops < 32:
            tid, t = t.size_or_type, self.get(t.size_or_type)
            hops += 1
        return tid, t

    def size(self, tid: int) -> int:
        _, t = self.peeled(tid)
        if t is None:
            return 0
        if t.kind in (INT, STRUCT, UNION, ENUM, ENUM64, FLOAT, DATASEC):
            return t.size_or_type
        if t.kind == PTR:
            return 8
        if t.kind == ARRAY and t.array:
            return t.array[1] * self.size(t.array[0])
        return 0

    def align(self, tid: int) -> int:
        _, t = self.peeled(tid)
        if t is None:
            return 1
        if t.kind == ARRAY and t.array:
            return self.align(t.array[0])
        if t.kind in (STRUCT, UNION):
            return self.aggregate_align(t)[0]
        return max(1, min(self.size(tid), 16))

    def aggregate_align(self, t: BtfType) -> tuple[int, str]:
        best, packed = 1, False
        for _name, mtype, off in t.members:
            if t.kflag and off >> 24:
                continue  # a bitfield
            bit = off & 0xFFFFFF if t.kflag else off
            want = self.align(mtype)
            if bit % 8 or (bit // 8) % want:
                packed = True
            best = max(best, want)
        if packed:
            return 1, "1: packed (a member sits at an offset its type would not allow)"
        return best, f"{best}: its most aligned member, under the x86-64 ABI (BTF has none)"

    def type_name(self, tid: int) -> str:
        t = self.get(tid)
        if t is None:
            return "void"
        if t.kind == PTR:
            return f"{self.type_name(t.size_or_type)} *"
        if t.kind in (CONST, VOLATILE):
            return f"{'const' if t.kind == CONST else 'volatile'} {self.type_name(t.size_or_type)}"
        if t.kind == ARRAY and t.array:
            return f"{self.type_name(t.array[0])}[{t.array[1]}]"
        if t.kind in (STRUCT, UNION):
            return f"{'struct' if t.kind == STRUCT else 'union'} {t.name or '(anonymous)'}"
        return t.name or "?"

    def flatten(self, t: BtfType, base: int, prefix: str, packed: bool) -> Iterator[Member]:
        for name, mtype, off in t.members:
            bits = off >> 24 if t.kflag else 0
            bit = off & 0xFFFFFF if t.kflag else off
            path = f"{prefix}{name}" if name else prefix.rstrip(".")
            if bits or bit % 8:
                yield Member(path or "(bitfield)", base + bit // 8, max(1, (bits + 7) // 8),
                             self.type_name(mtype), 1, base * 8 + bit, bits or None)  # fmt: skip
                continue
            offset = base + bit // 8
            size = self.size(mtype)
            align = 1 if packed else self.align(mtype)
            _, inner = self.peeled(mtype)
            if name:
                yield Member(path, offset, size, self.type_name(mtype), align)
            if inner is not None and inner.kind in (STRUCT, UNION):
                inner_packed = packed or self.aggregate_align(inner)[0] == 1
                yield from self.flatten(inner, offset, f"{path}." if path else "", inner_packed)
            elif inner is not None and inner.kind == ARRAY and inner.array and name:
                elem, count = inner.array
                esize = self.size(elem)
                for i in range(min(count, MAX_ELEMENTS)):
                    yield Member(f"{path}[{i}]", offset + i * esize, esize,
                                 self.type_name(elem), align)  # fmt: skip

    def structs(self, names: set[str] | None = None) -> Iterator[Struct]:
        first = 1 if self.base is None else len(self.base.types)
        seen: set[str] = set()
        for t in self.types[first:]:
            if t is None or t.kind not in (STRUCT, UNION) or not t.name or t.name in seen:
                continue
            if names is not None and t.name not in names:
                continue
            seen.add(t.name)
            align, source = self.aggregate_align(t)
            members = tuple(self.flatten(t, 0, "", align == 1))
            kind = "struct" if t.kind == STRUCT else "union"
            yield Struct(t.name, X86_64, t.size_or_type, align, source, members, kind)


def is_btf(head: bytes) -> bool:
    """Do a file's first bytes open a BTF blob?"""
    return head[:2] == MAGIC.to_bytes(2, "little")


def load(path: Path) -> Btf:
    """A BTF file; a module's is read on top of vmlinux's (split BTF)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"{path}: {exc.strerror}") from None
    base = None
    if path.resolve() != BASE.resolve() and path.parent == BASE.parent:
        base = Btf(BASE.read_bytes())
    return Btf(data, base)
