"""A C source or header compiled for its struct layouts: the system's C
compiler ($CC, default cc) with -g -c, and for i386 with -m32 -ffreestanding
(the compiler's own stdint.h and stddef.h, so no 32-bit libc headers are
needed). Unused types are kept (-fno-eliminate-unused-debug-types): a
header's structs are the point. A compile error is a usage error with the
compiler's first lines (escaped: they quote the file, which may be anything).

The compiler runs bounded: a header can `#include "/dev/zero"` (cc1 grew by
1.2 GB a second reading it) or define a gigabyte of initialised data, so it
gets at most MEMORY_LIMIT of address space and may write files of at most
FILE_LIMIT, besides the time limit."""

from __future__ import annotations

import os
import shlex
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from splitlock_probe.errors import UsageError
from splitlock_probe.structs.dwarf import structs
from splitlock_probe.structs.types import I386, X86_64, Struct
from splitlock_probe.text import escape

ABI_FLAGS = {X86_64: ["-m64"], I386: ["-m32", "-ffreestanding"]}
TIMEOUT_S = 120
MEMORY_LIMIT = 4 << 30  # address space: a real header needs a few hundred MB
FILE_LIMIT = 1 << 30  # the object and the compiler's temporaries


def _bounded() -> None:
    """In the compiler's process before exec (our own has no other thread yet:
    the struct sources are read before any work starts)."""
    import resource

    for which, limit in ((resource.RLIMIT_AS, MEMORY_LIMIT), (resource.RLIMIT_FSIZE, FILE_LIMIT)):
        _, hard = resource.getrlimit(which)
        capped = limit if hard == resource.RLIM_INFINITY else min(limit, hard)
        resource.setrlimit(which, (capped, capped))


def compile_structs(path: Path, abis: Sequence[str], cflags: str = "") -> Iterator[Struct]:
    cc = shlex.split(os.environ.get("CC", "cc"))
    for abi in abis:
        with tempfile.TemporaryDirectory(prefix="splitlock-structs-") as tmp:
            out = Path(tmp) / "layout.o"
            argv = [*cc, *ABI_FLAGS[abi], "-g", "-c", "-x", "c", "-w",
                    "-fno-eliminate-unused-debug-types", *shlex.split(cflags),
                    "-o", str(out), str(path)]  # fmt: skip
            try:
                done = subprocess.run(argv, capture_output=True, text=True, errors="replace",
                                      timeout=TIMEOUT_S, check=False, preexec_fn=_bounded,
                                      stdin=subprocess.DEVNULL)  # fmt: skip
            except FileNotFoundError:
                raise UsageError(f"no C compiler {cc[0]!r} (set CC)") from None
            except subprocess.TimeoutExpired:
                shown = escape(str(path))
                raise UsageError(f"{shown}: the compiler took over {TIMEOUT_S} s") from None
            if done.returncode != 0:
                first = "; ".join(line[:300] for line in done.stderr.strip().splitlines()[:3])
                raise UsageError(f"{escape(str(path))} does not compile for {abi}: {escape(first)}")
            yield from structs(out)
