"""Where struct layouts come from (`--from FILE`): an ELF with DWARF, in its
own ABI, or a C source or header, compiled for the ABIs asked for; and the
structs a command names, found or refused with the closest names first."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from splitlock_probe.errors import UsageError, closest_first
from splitlock_probe.structs import btf
from splitlock_probe.structs.btf import is_btf
from splitlock_probe.structs.csource import compile_structs
from splitlock_probe.structs.dwarf import structs as dwarf_structs
from splitlock_probe.structs.types import BOTH, I386, X86_64, Struct
from splitlock_probe.text import escape


def _head(path: Path) -> bytes:
    """The first 64 KiB: enough to tell BTF, an ELF, C and binary data apart."""
    try:
        with open(path, "rb") as f:
            return f.read(1 << 16)
    except OSError as exc:
        raise UsageError(f"--from {escape(str(path))}: {exc.strerror}") from None


def load(paths: Sequence[str], abi: str | None, cflags: str = "") -> list[Struct]:
    """Every struct the sources define (an ELF in its own ABI; C in `abi`, both
    by default)."""
    out: list[Struct] = []
    for value in paths:
        path = Path(value)
        if not path.exists():
            raise UsageError(f"--from {escape(value)}: no such file")
        if not path.is_file():
            raise UsageError(f"--from {escape(value)}: not a regular file")
        head = _head(path)
        if is_btf(head):  # the running kernel's types (/sys/kernel/btf/...)
            found = list(btf.load(path).structs())
            if abi not in (None, BOTH, X86_64):
                found = []
        elif head[:4] == b"\x7fELF":
            found = list(dwarf_structs(path))
            if abi not in (None, BOTH):
                found = [s for s in found if s.abi == abi]
        elif b"\0" in head:  # no C source holds a NUL: refused before any compiler runs
            raise UsageError(
                f"--from {escape(str(path))}: binary data, not an ELF with DWARF, BTF or C source"
            )
        else:
            abis = [X86_64, I386] if abi in (None, BOTH) else [abi]
            found = list(compile_structs(path, abis, cflags))
        out.extend(found)
    return out


def select(found: Sequence[Struct], names: Sequence[str]) -> list[Struct]:
    """The structs named (in every ABI they were read in)."""
    known = sorted({s.name for s in found})
    missing = [n for n in names if n not in known]
    if missing:
        close, others = closest_first(missing[0], known)
        rest = others[: max(0, 12 - len(close))]
        raise UsageError(
            f"no struct {escape(missing[0])} in the sources; closest: "
            f"{', '.join(close) or '-'}; others: {', '.join(rest) or '-'}"
        )
    return [s for s in found if s.name in names]
