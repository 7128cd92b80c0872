"""cffi builder (API mode) for splitlock_probe._core.

setup.py names this file in cffi_modules; `python csrc/ffi_build.py` also
builds the module in place for a quick check.
"""

from __future__ import annotations

import os
from pathlib import Path

import cffi

HERE = Path(__file__).resolve().parent
# Every C file of the core, explicitly: nothing is picked up by accident.
SOURCES = [
    "ops.c",
    "trap.c",
    "timing.c",
    "cost.c",
    "arena.c",
    "layouts.c",
    "perf.c",
    "reaper.c",
    "taskring.c",
    "tracer.c",
    "build.c",
]


def _rel(path: Path) -> str:
    # setuptools wants source paths relative to the project root (the cwd).
    return os.path.relpath(path, Path.cwd())


def make_builder(portable: bool = False, relative: bool = True) -> cffi.FFI:
    """The builder; portable=True compiles the non-x86 paths (for tests)."""
    path = _rel if relative else str
    ffi = cffi.FFI()
    ffi.cdef((HERE / "splitlock.cdef").read_text())
    ffi.set_source(
        "splitlock_probe._core",
        '#include "splitlock.h"\n',
        sources=[path(HERE / name) for name in SOURCES],
        include_dirs=[path(HERE)],
        depends=[path(p) for p in sorted(HERE.glob("*.h"))],
        define_macros=[("SLP_FORCE_PORTABLE", "1")] if portable else [],
        extra_compile_args=["-O2", "-std=gnu11", "-Wall", "-Wextra", "-Werror"],
        libraries=["pthread"],
    )
    return ffi


ffibuilder = make_builder()

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
