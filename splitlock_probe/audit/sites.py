"""The audit of one ELF: each locked instruction as a site with its source
line, its operand's data and a verdict (docs/usage.md, `audit`).

A verdict is exact only where the operand's address is fixed modulo a
cache line: a fixed link-time address in an executable, or in a shared
object whose segment is aligned to 64 or more (the loader moves it by a
multiple of that), or in an object file's section aligned to 64 or more.
Below that, an op as wide as its alignment guarantees, and aligned to its
width, is clean wherever it lands; anything else can be misaligned, and at
some placement split: a hazard. A register operand is unresolved."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from splitlock_probe.binary.data import DataPlace, in_image
from splitlock_probe.binary.debuginfo import ParameterHint, debuginfo, parameter_hint
from splitlock_probe.binary.image import ElfImage
from splitlock_probe.binary.locked import LockedInsn, locked_instructions
from splitlock_probe.model.access import LINE
from splitlock_probe.text import counted

SPLIT, HAZARD, CLEAN, UNRESOLVED = "split", "hazard", "clean", "unresolved"
KINDS = (SPLIT, HAZARD, CLEAN, UNRESOLVED)
EXTERN = "extern"


@dataclass(frozen=True)
class AuditSite:
    address: int  # link-time; section-relative in an object file
    symbol: str | None  # "func+0x12"
    source: str | None  # "file.c:42"
    instruction: str
    width: int
    kind: str  # one of KINDS
    why: str  # how the verdict was reached, in words
    operand: str
    section: str
    data: DataPlace | None
    line_offset: int | None  # the operand's address mod 64, where fixed
    hint: ParameterHint | None = None  # unresolved: what DWARF suggests the operand is

    def as_dict(self) -> dict[str, Any]:
        return {
            "address": f"{self.address:#x}",
            "section": self.section,
            "symbol": self.symbol,
            "source": self.source,
            "instruction": self.instruction,
            "width": self.width,
            "kind": self.kind,
            "why": self.why,
            "operand": self.operand,
            "line_offset": self.line_offset,
            "data": None if self.data is None else self.data.as_dict(),
            "hint": None if self.hint is None else self.hint.as_dict(),
        }


@dataclass
class FileAudit:
    path: str
    abi: str
    type: str  # ET_EXEC, ET_DYN, ET_REL
    sites: list[AuditSite] = field(default_factory=list)
    debug: str | None = None  # where its DWARF was read, if anywhere
    error: str | None = None  # the file could not be audited

    def count(self, kind: str) -> int:
        return sum(1 for s in self.sites if s.kind == kind)


def verdict(address: int, width: int, align: int) -> tuple[str, str]:
    """An operand at `address`, which the loader moves only by multiples of `align`."""
    if align >= LINE:
        off = address % LINE
        if off + width > LINE:
            return (
                SPLIT,
                f"at line offset {off}, {counted(width, 'byte')} cross the line (fixed mod 64)",
            )
        if address % width:
            return HAZARD, f"at line offset {off}: misaligned inside the line (fixed mod 64)"
        return CLEAN, f"at line offset {off}: aligned (fixed mod 64)"
    if align >= width and address % width == 0:
        return CLEAN, f"aligned to {width} under a guaranteed alignment of {align}"
    return HAZARD, (
        f"address {address % align} mod {align} (all that is guaranteed): a {width}-byte op "
        f"is misaligned{' and splits a line' if address % align + width > align else ''} "
        "at some placement"
    )


def _judged(img: ElfImage, insn: LockedInsn) -> tuple[str, str, DataPlace | None, int | None]:
    target = insn.target
    if target is None:
        how = (
            "fs:/gs:-relative"
            if ("fs:" in insn.operand or "gs:" in insn.operand)
            else ("through a register")
        )
        return UNRESOLVED, f"operand {how}: its address is known only at run time", None, None
    if target.extern is not None:
        data = DataPlace(EXTERN, symbol=target.extern, offset=target.address, width=insn.width)
        return UNRESOLVED, f"an extern symbol ({target.extern}): placed at link time", data, None
    data = in_image(img, target.address, insn.width, target.section, insn.vaddr)
    if target.section is not None:
        align = img.sections[target.section].align
    elif img.type == "ET_EXEC":
        align = 1 << 30  # a fixed address
    else:
        seg = img.segment_at(target.address)
        align = seg.align if seg else 1
    kind, why = verdict(target.address, insn.width, align)
    line = target.address % LINE if align >= LINE else None
    return kind, why, data, line


def audit(img: ElfImage) -> Iterator[AuditSite]:
    info = debuginfo(img)
    for insn in locked_instructions(img):
        kind, why, data, line = _judged(img, insn)
        function = img.function_at(insn.vaddr, insn.section.index if img.relocatable else None)
        hint = None
        if kind == UNRESOLVED and insn.base is not None:
            hint = parameter_hint(info, insn.vaddr, insn.base, insn.disp)
        yield AuditSite(
            insn.vaddr, function, info.source_at(insn.vaddr), insn.text, insn.width, kind, why,
            insn.operand, insn.section.name, data, line, hint,
        )  # fmt: skip
