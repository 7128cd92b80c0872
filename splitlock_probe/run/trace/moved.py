"""Which instructions may move with a short locked site into its stub.

A jump is 5 bytes. A locked instruction shorter than that (glibc's mutexes:
`lock cmpxchg %edx,(%rdi)`, 4 bytes) can only become one if the instructions
after it move into the stub too, where their copies run instead. That is only
safe when nothing can reach a moved instruction but the locked one before
it: no direct branch anywhere in the image may target it (a function's cold
part jumps back into it), the function must hold no indirect jump (a jump
table could) and have no exception landing pads (its FDE names no LSDA),
and it must be a sized function symbol whose decode from its start lands on
the site. A moved instruction may not
be a branch, call, return, system call or interrupt, nor read RIP, nor be
locked itself (it would go unwatched); a conditional jump may end the run,
and the agent re-aims it. The whole run fits the site's 16 bytes.
Anything else keeps its int3.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from splitlock_probe.binary.ehframe import Unwind, unwind_of
from splitlock_probe.binary.image import ElfImage, Section
from splitlock_probe.binary.locked import branch_target, disassembler, is_branch, section_code

JUMP_BYTES = 5
RUN_MAX = 16
_NEVER_MOVED = ("jmp", "call", "ret", "loop", "jrcxz", "jecxz", "syscall", "sysenter", "int",
                "iret", "ud", "hlt", "xbegin", "xend", "xabort", "endbr", "bnd", "notrack",
                "enter", "leave", "push", "pop", "rep", "lock", "xchg")  # fmt: skip


@dataclass
class Mover:
    """One image's functions, decoded once each as sites ask."""

    image: ElfImage
    targets: set[int]  # every direct branch target in the image (the sweep's)
    unwind: Unwind | None = None  # the image's unwind table, when the caller read it already
    _decoded: dict[int, tuple[list[tuple[int, int, str, str]], bool]] = field(default_factory=dict)
    _landing: list[tuple[int, int]] | None = None  # functions that may have landing pads
    _code: dict[int, bytes] = field(default_factory=dict)  # section offset: its bytes

    def moved(self, vaddr: int, length: int, section: Section) -> tuple[bytes, bool] | None:
        """The bytes to move after the site at `vaddr` (`length` bytes) and
        whether the last moved one is a conditional jump; None when unsafe."""
        if length >= JUMP_BYTES:
            return b"", False
        found = self.image.functions.at(vaddr)
        if found is None or not found[0].size:
            return None
        function = found[0]
        insns, indirect = self._decode(function.value, function.size, section)
        if indirect or self._has_landing_pads(function.value):
            return None
        targets = self.targets
        index = next((i for i, ins in enumerate(insns) if ins[0] == vaddr), None)
        if index is None or insns[index][1] != length:
            return None
        run, size, jcc = b"", length, False
        for address, n, mnemonic, op_str in insns[index + 1 :]:
            if size >= JUMP_BYTES:
                break
            if address in targets or size + n > RUN_MAX or "rip" in op_str or jcc:
                return None
            if mnemonic.startswith(_NEVER_MOVED):
                return None
            jcc = mnemonic.startswith("j")
            run += self.code(section, address, n)
            size += n
        if size < JUMP_BYTES:
            return None
        return run, jcc

    def _decode(
        self, start: int, size: int, section: Section
    ) -> tuple[list[tuple[int, int, str, str]], bool]:
        """The function's instructions, and whether it may jump where we cannot see."""
        if start not in self._decoded:
            code = self.code(section, start, size)
            insns = list(disassembler(64).disasm_lite(code, start))
            indirect = sum(n for _, n, _, _ in insns) != len(code)  # data in the code
            for _, _, mnemonic, op_str in insns:
                if is_branch(mnemonic) and not mnemonic.startswith("call"):
                    indirect = indirect or branch_target(op_str) is None
            self._decoded[start] = (insns, indirect)
        return self._decoded[start]

    def _has_landing_pads(self, start: int) -> bool:
        if self._landing is None:
            self._landing = (self.unwind or unwind_of(self.image.path)).landing()
        return any(lo <= start < hi for lo, hi in self._landing)

    def code(self, section: Section, address: int, n: int) -> bytes:
        """`n` bytes of code at `address`, from the section read once."""
        at = address - section.addr
        if at < 0 or at + n > section.size:
            return b""
        if section.offset not in self._code:
            self._code[section.offset] = section_code(self.image, section)
        return self._code[section.offset][at : at + n]
