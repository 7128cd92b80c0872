"""Access arithmetic and the catalogue of locked primitives (docs/reference.md §2).

Pure: no I/O, no compiled code. Everything the scan predicts comes from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

LINE = 64
PAGE = 4096


class Insn(str, Enum):
    BTS = "bts"
    BTR = "btr"
    BTC = "btc"
    XADD = "xadd"
    CMPXCHG = "cmpxchg"
    XCHG = "xchg"
    ADD = "add"
    CMPXCHG16B = "cmpxchg16b"

    @property
    def is_bit_test(self) -> bool:
        return self in (Insn.BTS, Insn.BTR, Insn.BTC)


class Form(str, Enum):
    """How a bit-test op takes its bit offset (NONE for the other ops)."""

    NONE = "none"
    REG = "reg"  # memory is a bit string: the offset moves the address
    IMM = "imm"  # offset taken modulo the operand width: the address stays


@dataclass(frozen=True)
class Access:
    """The bytes one op touches: [offset, offset + size)."""

    offset: int
    size: int

    @property
    def crosses_line(self) -> bool:
        return self.offset % LINE + self.size > LINE

    @property
    def crosses_page(self) -> bool:
        return self.offset % PAGE + self.size > PAGE

    @property
    def misaligned(self) -> bool:
        return self.offset % self.size != 0

    def shifted(self, delta: int) -> Access:
        return Access(self.offset + delta, self.size)


@dataclass(frozen=True)
class Prediction:
    """What the model says one op at one address does."""

    splits_line: bool  # the bytes cross a cache line (the same arithmetic for every width)
    splits_page: bool
    misaligned: bool
    faults: bool  # cmpxchg16b on a misaligned operand raises #GP and never executes

    @property
    def split_lock(self) -> bool:
        """The op takes a split lock: it crosses a line and really executes."""
        return self.splits_line and not self.faults

    def as_dict(self) -> dict[str, bool]:
        return {
            "splits_line": self.splits_line,
            "splits_page": self.splits_page,
            "misaligned": self.misaligned,
            "faults": self.faults,
        }


_SUFFIX = {1: "b", 2: "w", 4: "l", 8: "q"}


@dataclass(frozen=True)
class Primitive:
    """One locked instruction at one operand width in one bit-offset form."""

    name: str
    insn: Insn
    width: int  # operand bytes
    form: Form
    description: str = ""

    @property
    def bit_width(self) -> int:
        return 8 * self.width

    def access(self, ea: int, bit: int = 0) -> Access:
        """The bytes touched by this op with effective address `ea` and offset `bit`."""
        if self.insn.is_bit_test and self.form is Form.REG:
            # Signed bit string: floor division moves down for negative offsets.
            return Access(ea + self.width * (bit // self.bit_width), self.width)
        return Access(ea, self.width)

    def predict(self, access: Access) -> Prediction:
        faults = self.insn is Insn.CMPXCHG16B and access.misaligned
        return Prediction(access.crosses_line, access.crosses_page, access.misaligned, faults)

    def exec_bit(self, bit: int) -> int:
        """The bit the core executes: the immediate form carries it in the opcode."""
        return bit if self.insn.is_bit_test else 0


def _catalogue() -> dict[str, Primitive]:
    prims: list[Primitive] = []
    for insn in (Insn.BTS, Insn.BTR, Insn.BTC):
        for width in (2, 4, 8):
            base = f"{insn.value}{_SUFFIX[width]}"
            prims.append(
                Primitive(base, insn, width, Form.REG, f"lock {base} %reg, mem (bit string)")
            )
            prims.append(
                Primitive(
                    f"{base}-imm", insn, width, Form.IMM, f"lock {base} $imm, mem (imm mod width)"
                )
            )
    for insn in (Insn.XADD, Insn.CMPXCHG, Insn.XCHG, Insn.ADD):
        for width in (1, 2, 4, 8):
            name = f"{insn.value}{_SUFFIX[width]}"
            lock = "" if insn is Insn.XCHG else "lock "
            prims.append(Primitive(name, insn, width, Form.NONE, f"{lock}{name} %reg, mem"))
    prims.append(Primitive("cmpxchg16b", Insn.CMPXCHG16B, 16, Form.NONE, "lock cmpxchg16b mem"))
    return {p.name: p for p in prims}


PRIMITIVES: dict[str, Primitive] = _catalogue()

# The seed case's two versions of the same line of KVM code.
ALIASES = {
    "legacy": "btsq",  # test_and_set_bit(): lock btsq, needs 8-byte alignment
    "patched": "btsl",  # the fix: lock btsl on the 4-byte field
}


def primitive(name: str) -> Primitive:
    """Look a primitive up by name or alias; KeyError names the choices."""
    key = ALIASES.get(name, name)
    if key not in PRIMITIVES:
        raise KeyError(name)
    return PRIMITIVES[key]


def primitive_names() -> list[str]:
    return [*PRIMITIVES, *ALIASES]
