"""Every locked read-modify-write in an image's executable sections, found by
a linear sweep with capstone (as objdump -d does): lock-prefixed ops and
xchg with memory (locked without a prefix). Where the operand's link-time
address is fixed (RIP-relative, or absolute; through the relocation in an
object file) it is worked out; through a register it is not."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

from elftools.elf.elffile import ELFFile
from elftools.elf.relocation import RelocationSection
from elftools.elf.sections import SymbolTableSection

from splitlock_probe.binary.image import ElfImage, Section

R_386_GOTOFF = 9


@dataclass(frozen=True)
class Target:
    """A fixed operand address: in the image's own sections, or an extern symbol."""

    address: int  # link-time address; section-relative in an object file
    section: int | None  # section index (object files); None: address is absolute
    extern: str | None = None  # an undefined symbol the object refers to


@dataclass(frozen=True)
class LockedInsn:
    vaddr: int  # link-time address (section-relative in an object file)
    section: Section
    text: str  # "lock bts qword ptr [rip + 0x2f73], 5"
    mnemonic: str  # "bts"
    width: int  # operand bytes
    target: Target | None  # None: through a register, or fs:/gs: relative
    operand: str  # the memory operand as written: "qword ptr [rdi + 0x3c]"
    base: str | None = None  # the base register of a register operand without index
    disp: int = 0
    code: bytes = b""  # the instruction's bytes


def disassembler(bits: int) -> Any:
    """A capstone decoder for 32- or 64-bit code, without operand detail (fast)."""
    return _cs(bits, False)


@cache
def _cs(bits: int, detail: bool) -> Any:
    import capstone

    md = capstone.Cs(
        capstone.CS_ARCH_X86, capstone.CS_MODE_32 if bits == 32 else capstone.CS_MODE_64
    )
    md.detail = detail
    md.skipdata = True  # bytes that are no instruction: step over them, as objdump does
    return md


def _relocations(image: ElfImage) -> dict[int, dict[int, tuple[Any, int | None]]]:
    """Per section index: offset -> (symbol, explicit addend or None for REL)."""
    out: dict[int, dict[int, tuple[Any, int | None]]] = {}
    with open(image.path, "rb") as f:
        elf = ELFFile(f)
        for section in elf.iter_sections():
            if not isinstance(section, RelocationSection):
                continue
            target = section["sh_info"]
            symtab = elf.get_section(section["sh_link"])
            if not isinstance(symtab, SymbolTableSection):
                continue
            table = out.setdefault(target, {})
            for r in section.iter_relocations():
                sym = symtab.get_symbol(r["r_info_sym"])
                addend = r["r_addend"] if r.is_RELA() else None
                table[r["r_offset"]] = (
                    (sym.name, sym["st_shndx"], sym["st_value"], r["r_info_type"]),
                    addend,
                )
    return out


def section_code(image: ElfImage, section: Section) -> bytes:
    """The bytes of one section, as the file holds them."""
    with open(image.path, "rb") as f:
        f.seek(section.offset)
        return f.read(section.size)


_BRANCHES = ("j", "call", "loop", "xbegin", "bnd j", "notrack j")


def is_branch(mnemonic: str) -> bool:
    """A jump, call, loop or transaction start (capstone's mnemonic)."""
    return mnemonic.startswith(_BRANCHES)


def branch_target(op_str: str) -> int | None:
    """A direct branch's target (capstone writes 0x1a40, or 8 below 10); None for
    an indirect one (a register or memory operand)."""
    try:
        return int(op_str.strip(), 0)
    except ValueError:
        return None


def rip_relative_target(address: int, size: int, op_str: str) -> int | None:
    """The address `lea reg, [rip +- disp]` takes (a function pointer, a
    computed goto's label, a jump table's base); None for any other form."""
    at = op_str.find("[rip ")
    if at < 0 or not op_str.endswith("]"):
        return None
    sign, _, disp = op_str[at + 5 : -1].partition(" ")
    try:
        value = int(disp, 0)
    except ValueError:
        return None
    return address + size + (value if sign == "+" else -value)


def _ends_flow(mnemonic: str) -> bool:
    """Nothing falls through it: a return, a jump, ud2 (capstone's mnemonics,
    prefixes such as `bnd`, `notrack` and `repz` included)."""
    return mnemonic.endswith(("ret", "jmp")) or mnemonic == "ud2"


def locked_instructions(
    image: ElfImage,
    branch_targets: set[int] | None = None,
    padding: list[tuple[int, int]] | None = None,
) -> Iterator[LockedInsn]:
    """Every locked instruction of the image's code, in address order. With
    `branch_targets`, the same sweep adds the target of every direct branch
    and call to it, and every address a RIP-relative `lea` takes (code
    reached through a pointer), whole once exhausted (run/trace/moved.py and
    hops.py keep their hands off them).
    With `padding`, it also lists each run of alignment filler [start, end):
    nops or int3s after a return or jump, up to a 16-byte boundary, which
    nothing falls into (run/trace/hops.py puts jumps there)."""
    relocs = _relocations(image) if image.relocatable else {}
    lite = _cs(image.elfclass, False)
    full = _cs(image.elfclass, True)
    for section in image.sections:
        if not (section.executable and section.allocated) or section.nobits or not section.size:
            continue
        code = section_code(image, section)
        ended, run = False, -1  # after a flow end; where the filler began
        for address, size, mnemonic, op_str in lite.disasm_lite(code, section.addr):
            if padding is not None:
                if mnemonic == "nop" or mnemonic == "int3":
                    if run < 0 and ended:
                        run = address
                    if run >= 0 and (address + size) % 16 == 0:
                        padding.append((run, address + size))
                        run, ended = -1, False
                    continue
                run, ended = -1, _ends_flow(mnemonic)
            if branch_targets is not None:
                if is_branch(mnemonic):
                    if (target := branch_target(op_str)) is not None:
                        branch_targets.add(target)
                    continue
                taken = rip_relative_target(address, size, op_str) if mnemonic == "lea" else None
                if taken is not None:
                    branch_targets.add(taken)
                    continue
            if not (mnemonic.startswith("lock ") or (mnemonic == "xchg" and "ptr" in op_str)):
                continue
            at = address - section.addr
            found = next(full.disasm(code[at : at + size], address, 1), None)
            if found is None:
                continue
            insn = _described(image, section, found, relocs.get(section.index, {}))
            if insn is not None:
                yield insn


def _described(
    image: ElfImage, section: Section, insn: Any, relocs: dict[int, Any]
) -> LockedInsn | None:
    from capstone import x86

    mems = [o for o in insn.operands if o.type == x86.X86_OP_MEM]
    if len(mems) != 1:
        return None
    mem, width = mems[0].mem, mems[0].size
    text = f"{insn.mnemonic} {insn.op_str}".strip()
    operand = next((p.strip() for p in insn.op_str.split(",") if "ptr" in p), insn.op_str)
    mnemonic = insn.mnemonic.removeprefix("lock ").strip()
    target: Target | None = None
    if mem.segment in (x86.X86_REG_FS, x86.X86_REG_GS):
        target = None  # thread-local or per-CPU: where it lands is decided at run time
    elif image.relocatable:
        reloc = (
            relocs.get(insn.address - section.addr + insn.disp_offset) if insn.disp_offset else None
        )
        gotoff = reloc is not None and image.elfclass == 32 and reloc[0][3] == R_386_GOTOFF
        if reloc is not None and not mem.index and (mem.base in (0, x86.X86_REG_RIP) or gotoff):
            # GOTOFF: the base register holds the GOT's address, the field S - GOT.
            (name, shndx, value, _kind), addend = reloc
            if addend is None:  # REL (i386): the addend is in the bytes
                addend = mem.disp
            if mem.base == x86.X86_REG_RIP:
                addend += insn.size - insn.disp_offset  # EA = S + A + (end - P)
            if isinstance(shndx, int):
                target = Target(value + addend, shndx)
            else:
                target = Target(addend, None, extern=name)
    elif mem.base == x86.X86_REG_RIP and not mem.index:
        target = Target(insn.address + insn.size + mem.disp, None)
    elif not mem.base and not mem.index and image.type == "ET_EXEC":
        target = Target(mem.disp & ((1 << image.elfclass) - 1), None)
    base = None
    if target is None and mem.base not in (0, x86.X86_REG_RIP) and not mem.index:
        base = insn.reg_name(mem.base)
    return LockedInsn(insn.address, section, text, mnemonic, width, target, operand, base,
                      mem.disp, bytes(insn.bytes))  # fmt: skip
