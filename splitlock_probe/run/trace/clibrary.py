"""Which locked sites of the C library breakpoint mode may arm.

glibc blocks every signal with raw system calls while it starts and ends a
thread, in pthread_kill and raise, and in posix_spawn's child, and runs
locked ops there (its own thread descriptor, its stack-cache lock). A
breakpoint hit with SIGTRAP blocked is fatal: the kernel kills the process.
So in the C library only the sites of its public functions are armed (the
ones a program calls with its own objects: mutexes, condition variables,
semaphores, spin locks, stdio), and not those of a public function that
blocks signals itself. Its internal code works on its own, aligned objects;
what is not armed is counted, and alignment-check mode still sees it.
"""

from __future__ import annotations

import bisect

from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection

# glibc and musl: the library and its loader
_SONAMES = ("libc.so.", "ld-linux", "libc.musl", "ld-musl")
_RT_SIGPROCMASK = 14


class CLibrary:
    """The public functions of a C library image, and which of them block signals."""

    def __init__(self, path: str) -> None:
        with open(path, "rb") as f:
            elf = ELFFile(f)
            self.functions = _public_functions(elf)
            self.segments = [
                (seg["p_vaddr"], seg.data())
                for seg in elf.iter_segments()
                if seg["p_type"] == "PT_LOAD" and seg["p_flags"] & 1
            ]
        self.starts = [start for start, _ in self.functions]
        self._blocking: dict[int, bool] = {}

    def function_at(self, address: int) -> tuple[int, int] | None:
        i = bisect.bisect_right(self.starts, address) - 1
        if i >= 0 and address < self.functions[i][1]:
            return self.functions[i]
        return None

    def _code(self, start: int, end: int) -> bytes:
        for lo, data in self.segments:
            if lo <= start and end <= lo + len(data):
                return data[start - lo : end - lo]
        return b""

    def armable(self, address: int) -> str | None:
        """None: a site here may be armed; else why not."""
        function = self.function_at(address)
        if function is None:
            return "internal"
        start, end = function
        if start not in self._blocking:
            self._blocking[start] = _blocks_signals(self._code(start, end), start)
        return "blocks signals" if self._blocking[start] else None


def _soname(elf: ELFFile) -> str | None:
    for section in elf.iter_sections():
        if isinstance(section, DynamicSection):
            for tag in section.iter_tags():
                if tag.entry.d_tag == "DT_SONAME":
                    return str(getattr(tag, "soname", ""))  # pyelftools sets it by tag
    return None


def c_library(path: str) -> CLibrary | None:
    """The C library's rules for the image at `path`, or None when it is another."""
    with open(path, "rb") as f:
        soname = _soname(ELFFile(f))
    if soname is None or not soname.startswith(_SONAMES):
        return None
    return CLibrary(path)


def _public_functions(elf: ELFFile) -> list[tuple[int, int]]:
    """Defined functions of .dynsym that are API (GLIBC_PRIVATE ones start with _)."""
    section = elf.get_section_by_name(".dynsym")
    if not isinstance(section, SymbolTableSection):
        return []
    out = set()
    for sym in section.iter_symbols():
        if (
            sym["st_info"]["type"] == "STT_FUNC"
            and sym["st_shndx"] != "SHN_UNDEF"
            and sym["st_size"] > 0
            and not sym.name.startswith("_")
        ):
            out.add((sym["st_value"], sym["st_value"] + sym["st_size"]))
    return sorted(out)


def _blocks_signals(code: bytes, address: int) -> bool:
    """Does this code make an rt_sigprocmask system call of its own?"""
    from splitlock_probe.binary.locked import disassembler

    recent_eax = None
    for _at, _size, mnemonic, op_str in disassembler(64).disasm_lite(code, address):
        if mnemonic == "mov" and op_str.startswith("eax, "):
            try:
                recent_eax = int(op_str[5:], 0)
            except ValueError:
                recent_eax = None
        elif mnemonic == "syscall":
            if recent_eax == _RT_SIGPROCMASK:
                return True
            recent_eax = None
    return False
