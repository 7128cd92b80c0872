"""The sites the agent's breakpoint mode watches in one image, packed as
csrc/agent/sitewire.h lays them out: every locked instruction the static
audit's sweep finds (binary/locked.py), less those whose operand can never
be misaligned (a fixed address aligned to its width: RIP-relative or
absolute, with no bit offset in a register), each with what the agent needs
to work out its operand's address from the registers."""

from __future__ import annotations

import struct
from collections import Counter
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from splitlock_probe.binary.ehframe import unwind_of
from splitlock_probe.binary.image import ElfImage
from splitlock_probe.binary.locked import LockedInsn, locked_instructions
from splitlock_probe.run.trace.clibrary import c_library
from splitlock_probe.run.trace.hops import HOP_BYTES, Hops, entries_of
from splitlock_probe.run.trace.moved import JUMP_BYTES, Mover

MAGIC = 0x45544953
SITE = struct.Struct("<QiBBbbBBBB16si5s3x")
REPLY = struct.Struct("<IiIIII")
C_LIBRARY = 1  # reply flag: take these sites out before glibc starts an all-blocked thread
BASE_NONE, BASE_RIP = -1, 16
FS, GS, ADDR32, MOVED_JCC = 1, 2, 4, 8
_GPR = ("rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi",
        "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15")  # fmt: skip
_BIT_STRING = {"bt", "bts", "btr", "btc"}


@dataclass(frozen=True)
class SiteTable:
    """One image's answer: the packed sites, and how many the sweep found."""

    packed: bytes
    watched: int
    found: int  # locked instructions in the image, watched or not
    left: dict[str, int] = field(default_factory=dict)  # C library sites not armed, by why
    c_library: bool = False


@cache
def _decoder() -> Any:
    import capstone

    md = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
    md.detail = True
    return md


def _number(name: str) -> int:
    """A register's ModRM number by its 64- or 32-bit name (address registers)."""
    if name in _GPR:
        return _GPR.index(name)
    if name.startswith("e") and "r" + name[1:] in _GPR:
        return _GPR.index("r" + name[1:])
    if name.endswith("d") and name[:-1] in _GPR:
        return _GPR.index(name[:-1])
    raise ValueError(f"not an address register: {name}")


def _never_misaligned(insn: LockedInsn, bit_register: bool) -> bool:
    """A fixed address keeps its alignment at any load address (images load
    page-aligned), unless a register bit offset moves the word touched."""
    target = insn.target
    return (
        target is not None
        and target.extern is None
        and not bit_register
        and (target.address % insn.width == 0)
    )


def pack(
    insn: LockedInsn, moved: bytes = b"", jcc: bool = False, hop: tuple[int, bytes] | None = None
) -> bytes | None:
    """The wire form of one site, or None when it needs no watching (or
    cannot be described: then the static audit reports it). `moved`: the
    instructions after it that move with it into its stub (moved.py), the
    last a conditional jump when `jcc`; `hop`: the filler a short site may
    jump through to its stub (hops.py) and the bytes it holds."""
    from capstone import x86

    if insn.width < 2:
        return None  # one byte never splits a line
    found = next(_decoder().disasm(insn.code, insn.vaddr, 1), None)
    if found is None or found.size != len(insn.code) or len(insn.code) > 15:
        return None
    mems = [o for o in found.operands if o.type == x86.X86_OP_MEM]
    if len(mems) != 1:
        return None
    mem = mems[0].mem
    regs = [o for o in found.operands if o.type == x86.X86_OP_REG]
    bit_register = insn.mnemonic in _BIT_STRING and bool(regs)
    if _never_misaligned(insn, bit_register):
        return None
    if mem.base == x86.X86_REG_RIP:
        base = BASE_RIP
    elif mem.base:
        base = _number(found.reg_name(mem.base))
    else:
        base = BASE_NONE
    index_name = found.reg_name(mem.index) if mem.index else None
    # riz/eiz: capstone's name for a SIB byte with no index
    index = _number(index_name) if index_name not in (None, "riz", "eiz") else BASE_NONE
    flags = 0
    if mem.segment == x86.X86_REG_FS:
        flags |= FS
    elif mem.segment == x86.X86_REG_GS:
        flags |= GS
    if 0x67 in found.prefix:
        flags |= ADDR32
    if jcc:
        flags |= MOVED_JCC
    if len(insn.code) + len(moved) > 16:
        moved, flags = b"", flags & ~MOVED_JCC
    hop_at, hop_code = (hop[0] - insn.vaddr, hop[1]) if hop and not moved else (0, b"")
    disp_at = found.disp_offset if base == BASE_RIP else 0
    if not -(1 << 31) <= mem.disp < (1 << 31):
        return None
    return SITE.pack(
        insn.vaddr, mem.disp, found.size, insn.width, base, index, max(1, mem.scale), flags,
        disp_at, len(moved), (insn.code + moved).ljust(16, b"\0"), hop_at, hop_code,
    )  # fmt: skip


def site_table(path: str) -> SiteTable:
    """Every site of the x86-64 image at `path` that breakpoint mode watches."""
    image = ElfImage(path)
    if image.elfclass != 64 or image.relocatable:
        raise ValueError(f"{path}: not an x86-64 executable or shared object")
    rules = c_library(path)
    targets: set[int] = set()
    padding: list[tuple[int, int]] = []
    sites = list(locked_instructions(image, targets, padding))  # whole only after
    unwind = unwind_of(path)  # read once: moving and hopping both keep off what it names
    mover = Mover(image, targets, unwind)
    hops = Hops(padding, targets, entries_of(unwind, image.functions.starts))
    packed = []
    left: Counter[str] = Counter()
    for insn in sites:
        site = pack(insn)
        if site is None:
            continue
        why = rules.armable(insn.vaddr) if rules is not None else None
        if why is not None:  # counted only where it would have been watched
            left[why] += 1
            continue
        moving = mover.moved(insn.vaddr, len(insn.code), insn.section)
        if moving is not None and moving[0]:
            site = pack(insn, *moving) or site
        elif len(insn.code) < JUMP_BYTES and (at := hops.hop(insn.vaddr)) is not None:
            filler = mover.code(insn.section, at, HOP_BYTES)
            if len(filler) == HOP_BYTES:
                site = pack(insn, hop=(at, filler)) or site
        packed.append((insn.vaddr, site))
    packed.sort()
    packed_sites = b"".join(site for _, site in packed)
    return SiteTable(packed_sites, len(packed), len(sites), dict(left), rules is not None)


def reply(status: int, table: SiteTable | None = None) -> bytes:
    if table is None:
        return REPLY.pack(MAGIC, status, 0, SITE.size, 0, 0)
    flags = C_LIBRARY if table.c_library else 0
    return REPLY.pack(MAGIC, status, table.watched, SITE.size, flags, 0) + table.packed
