"""What a trapped instruction touched: decoded with capstone, its operand's
address computed from the registers the tracer saved (docs/reference.md §2).

- The effective address is base + index * scale + displacement (RIP-relative
  from the next instruction; fs:/gs: add the segment base; a 0x67 prefix
  makes it 32 bits).
- `bt`/`bts`/`btr`/`btc` with a *register* bit offset treat memory as a
  bit string: the op touches `width` bytes at EA + width * floor(bit /
  (8 * width)), the offset signed. An immediate offset is taken modulo the
  width and moves nothing.
- `cmpxchg16b` touches 16 bytes; `xchg` with memory is locked without a
  prefix.
Then: crossing a 64-byte line is a split lock; misaligned inside a line is
a hazard (the same op splits at another placement of its data).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from splitlock_probe.model import access as model
from splitlock_probe.run.trace.buffer import TrapRecord

SPLIT, HAZARD = "split", "hazard"
_GPR = ("rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi",
        "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15")  # fmt: skip
_BIT_STRING = {"bt", "bts", "btr", "btc"}


class Undecodable(ValueError):
    pass


@dataclass(frozen=True)
class Access:
    text: str  # "lock bts qword ptr [rip + 0x2c02], 1"
    mnemonic: str  # without the lock prefix: "bts"
    length: int  # instruction bytes
    touched: model.Access  # the bytes the op touched, judged by the model's arithmetic
    locked: bool

    @property
    def address(self) -> int:
        return self.touched.offset

    @property
    def width(self) -> int:
        return self.touched.size

    @property
    def line_offset(self) -> int:
        return self.address % model.LINE

    @property
    def splits_line(self) -> bool:
        return self.touched.crosses_line

    @property
    def crosses_page(self) -> bool:
        return self.touched.crosses_page

    @property
    def kind(self) -> str:
        return SPLIT if self.splits_line else HAZARD


@cache
def _disassembler() -> Any:
    import capstone

    md = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
    md.detail = True
    return md


def _register(name: str, regs: tuple[int, ...]) -> int:
    """A general register's value by any of its names (rax, eax, r8d, ...)."""
    if name in _GPR:
        return regs[_GPR.index(name)]
    if name.startswith("e") and "r" + name[1:] in _GPR:
        return regs[_GPR.index("r" + name[1:])] & 0xFFFFFFFF
    if name.endswith("d") and name[:-1] in _GPR:
        return regs[_GPR.index(name[:-1])] & 0xFFFFFFFF
    raise Undecodable(f"unexpected address register {name}")


def _signed(value: int, bits: int) -> int:
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def decode(record: TrapRecord) -> Access:
    from capstone import x86

    found = list(_disassembler().disasm(record.insn, record.rip, 1))
    if not found:
        raise Undecodable(f"no instruction at {record.rip:#x}: {record.insn.hex()}")
    insn = found[0]
    mems = [o for o in insn.operands if o.type == x86.X86_OP_MEM]
    if len(mems) != 1:
        raise Undecodable(f"{insn.mnemonic} {insn.op_str}: not one memory operand")
    mem = mems[0].mem
    width = mems[0].size
    address = mem.disp
    if mem.base == x86.X86_REG_RIP:
        address += record.rip + insn.size
    elif mem.base:
        address += _register(insn.reg_name(mem.base), record.regs)
    if mem.index:
        address += _register(insn.reg_name(mem.index), record.regs) * mem.scale
    if 0x67 in insn.prefix:
        address &= 0xFFFFFFFF
    if mem.segment == x86.X86_REG_FS:
        address += record.fs_base
    elif mem.segment == x86.X86_REG_GS:
        address += record.gs_base
    mnemonic = insn.mnemonic.removeprefix("lock ").strip()
    regs = [o for o in insn.operands if o.type == x86.X86_OP_REG]
    if mnemonic in _BIT_STRING and regs:
        bit = _signed(_register64(insn.reg_name(regs[0].reg), record.regs), 8 * width)
        address += width * (bit // (8 * width))
    address &= (1 << 64) - 1
    locked = 0xF0 in insn.prefix or mnemonic == "xchg"
    text = f"{insn.mnemonic} {insn.op_str}".strip()
    return Access(text, mnemonic, insn.size, model.Access(address, width), locked)


def _register64(name: str, regs: tuple[int, ...]) -> int:
    """A bit-offset register of any width (ax, eax, rax, r8w ...) as its value."""
    for full in _GPR:
        if name == full:
            return regs[_GPR.index(full)]
    small = {"ax": "rax", "cx": "rcx", "dx": "rdx", "bx": "rbx", "sp": "rsp", "bp": "rbp",
             "si": "rsi", "di": "rdi"}  # fmt: skip
    if name in small:
        return regs[_GPR.index(small[name])] & 0xFFFF
    if name.endswith("w") and name[:-1] in _GPR:
        return regs[_GPR.index(name[:-1])] & 0xFFFF
    return _register(name, regs)
