"""What a locked op's operand hit, named as a developer names it: the region
(an ELF image and its section, the heap, a stack, anonymous memory), the
object symbol and the offset into it (`g_ctl+60`), and with DWARF the member
and its declared size and type (`g_ctl.flags`, 4 bytes, `uint32_t`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from splitlock_probe.binary.debuginfo import debuginfo
from splitlock_probe.binary.image import ElfImage, image
from splitlock_probe.host.procinfo import Mapping
from splitlock_probe.text import size_text

IMAGE, HEAP, STACK, ANONYMOUS, UNKNOWN = "image", "heap", "stack", "anonymous", "unknown"


@dataclass(frozen=True)
class DataPlace:
    region: str  # IMAGE | HEAP | STACK | ANONYMOUS | UNKNOWN
    file: str | None = None  # the image, for IMAGE
    section: str | None = None  # ".bss", ".data"
    symbol: str | None = None  # the object symbol holding the operand
    offset: int | None = None  # into that symbol
    member: str | None = None  # with DWARF: "g_ctl.flags"
    member_size: int | None = None
    member_type: str | None = None
    width: int = 0  # the op's

    @property
    def wider_than_member(self) -> bool | None:
        return None if self.member_size is None else self.width > self.member_size

    @property
    def name(self) -> str | None:
        """'g_ctl+60' (the symbol and offset), or None."""
        if self.symbol is None:
            return None
        return self.symbol if not self.offset else f"{self.symbol}+{self.offset}"

    def what(self) -> str:
        """What was hit: 'g_ctl+60 = g_ctl.flags (uint32_t, 4 bytes)', or the region."""
        if self.symbol is None and self.region == UNKNOWN:
            return "not in any loaded image: the heap, a stack or anonymous memory"
        if self.symbol is None:
            return self.region if self.section is None else f"{self.region} {self.section}"
        out = self.name or ""
        if self.member is not None:
            out += f" = {self.member} ({self.member_type}, {size_text(self.member_size)})"
        elif self.section is not None:
            out += f" in {self.section} (no DWARF: no member)"
        return out

    def bug_class(self) -> str | None:
        """The seed's bug class, said plainly when this is it."""
        if not self.wider_than_member:
            return None
        return f"{_an(self.width)} {self.width}-byte op on a {self.member_size}-byte member"

    def words(self) -> str:
        bug = self.bug_class()
        return self.what() + (f": {bug}" if bug else "")

    def as_dict(self) -> dict[str, Any]:
        return {
            "region": self.region,
            "file": self.file,
            "section": self.section,
            "symbol": self.symbol,
            "offset": self.offset,
            "member": self.member,
            "member_size": self.member_size,
            "member_type": self.member_type,
            "wider_than_member": self.wider_than_member,
        }


def in_image(
    img: ElfImage, address: int, width: int, section: int | None = None, code: int | None = None
) -> DataPlace:
    """A link-time address (section-relative with `section`) inside `img`,
    touched by the instruction at link-time address `code` (when known)."""
    if section is not None:
        sec = img.sections[section] if 0 <= section < len(img.sections) else None
    else:
        sec = img.section_at(address)
    found = img.object_at(address, section)
    place = DataPlace(IMAGE, img.path, sec.name if sec else None, width=width)
    if found is None:
        return place
    sym, off = found
    hit = debuginfo(img).hit(sym.name, off, width, code)
    return DataPlace(
        IMAGE, img.path, place.section, sym.name, off,
        hit.member if hit else None, hit.size if hit else None, hit.type if hit else None,
        width,
    )  # fmt: skip


def at_run_time(
    address: int, width: int, mappings: Sequence[Mapping], code: int | None = None
) -> DataPlace:
    """A run-time address in a process whose mappings (file-backed ones at
    least) are known: an image's .data or .bss (its anonymous tail too, found
    through the image's load bias), else the heap, a stack, anonymous memory."""
    for m in mappings:
        if not m.path or m.path.startswith("["):
            continue
        img = image(m.path)
        bias = img.bias(m) if img else None
        if img is None or bias is None:
            continue
        vaddr = address - bias
        if img.segment_at(vaddr) is not None:
            # The instruction's unit declares the data, when the code is in this image too.
            link_code = code - bias if code is not None else None
            if link_code is not None and img.segment_at(link_code) is None:
                link_code = None
            return in_image(img, vaddr, width, code=link_code)
    for m in mappings:
        if m.start <= address < m.end:
            if m.path == "[heap]":
                return DataPlace(HEAP, width=width)
            if m.path.startswith("[stack"):
                return DataPlace(STACK, width=width)
            return DataPlace(ANONYMOUS if not m.path else UNKNOWN, width=width)
    return DataPlace(UNKNOWN, width=width)


def _an(number: int) -> str:
    return "an" if str(number)[0] == "8" or number in (11, 18) else "a"
