"""The only door to the compiled core (splitlock_probe._core).

This module loads it and turns its status codes into exceptions; one module
per subsystem binds the rest: probe.py (ops, arena, timing, trap), perf.py
(counters), tasks.py (task records, subreaper), trace.py (ptrace tracer,
trap buffer, agent). Import failures and non-x86-64 builds become
UnsupportedHost with a reason, never an ImportError at start-up: the package
imports everywhere.
"""

from __future__ import annotations

import os
from functools import cache
from typing import Any

from splitlock_probe.errors import ProbeError, UnsupportedHost


class NativeError(ProbeError):
    """The core returned an unexpected status."""


class PerfOpenError(ProbeError):
    """perf_event_open, ptrace or a counter operation failed; errno says why."""

    def __init__(self, what: str, err: int) -> None:
        super().__init__(f"{what}: {os.strerror(err)}")
        self.errno = err


@cache
def load_core() -> tuple[Any, Any]:
    """The core on any Linux machine (the perf counters need no x86)."""
    try:
        from splitlock_probe._core import ffi, lib  # type: ignore[import-not-found,unused-ignore]
    except ImportError as exc:
        raise UnsupportedHost(missing_core_advice(str(exc))) from exc
    return ffi, lib


@cache
def load() -> tuple[Any, Any]:
    """The core where it can probe: x86-64 only."""
    ffi, lib = load_core()
    if not lib.SLP_HAS_X86_64:
        raise UnsupportedHost(
            f"this is not an x86-64 machine ({os.uname().machine}): "
            "there are no x86 locked instructions to probe"
        )
    return ffi, lib


def unsupported_reason() -> str | None:
    """None when probing works here, else why not."""
    try:
        load()
    except UnsupportedHost as exc:
        return str(exc)
    return None


def check(status: int, what: str) -> None:
    """A probing call's status as an exception (the x86-64 core)."""
    ffi, lib = load()
    if status == lib.SLP_OK:
        return
    if status == lib.SLP_ESYS:
        raise NativeError(f"{what}: {os.strerror(ffi.errno)}")
    if status == lib.SLP_EINVAL:
        raise NativeError(f"{what}: invalid argument")
    raise NativeError(f"{what}: status {status}")


def check_core(status: int, what: str) -> None:
    """A Linux-only call's status as an exception (any core, x86 or not)."""
    _, lib = load_core()
    if status == lib.SLP_OK:
        return
    if status == lib.SLP_EUNSUPPORTED:
        raise UnsupportedHost(f"{what}: perf_event_open needs Linux")
    raise NativeError(f"{what}: status {status}")


def check_sys(status: int, what: str) -> None:
    """Like check_core, but a failed system call is a PerfOpenError with its errno."""
    ffi, lib = load_core()
    if status == lib.SLP_ESYS:
        raise PerfOpenError(what, ffi.errno)
    check_core(status, what)


def missing_core_advice(error: str) -> str:
    """Why the core is missing, and what to do: a source checkout that shadows the
    installed package (`python -m` from inside it) needs other advice than a
    broken install."""
    here = os.path.realpath(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    for installed in _installed_package_dirs():
        if os.path.realpath(installed) != here:
            return (
                f"the compiled core is missing: splitlock_probe was imported from {here}, "
                f"which shadows the installed copy in {os.path.dirname(installed)} (python -m "
                "and PYTHONPATH put the working directory first); run it from another "
                "directory, or as the splitlock-probe command, or `pip install -e .` here"
            )
    return (
        f"the compiled core is missing ({error}); reinstall with `pip install .` or `make install`"
    )


def _installed_package_dirs() -> list[str]:
    """Every directory a distribution of splitlock-probe says holds the package
    (a source tree's egg-info is one of them, and names the tree itself)."""
    from importlib import metadata

    found = []
    for dist in metadata.distributions():
        if (dist.metadata["Name"] or "").lower().replace("_", "-") == "splitlock-probe":
            path = str(dist.locate_file("splitlock_probe"))
            if os.path.isfile(os.path.join(path, "__init__.py")):
                found.append(path)
    return found


def build() -> str:
    """What the compiled core is (x86-64 or portable, and its compiler), or why
    there is none."""
    try:
        ffi, lib = load_core()
    except UnsupportedHost as exc:
        return f"no core: {exc}"
    return str(ffi.string(lib.slp_build()).decode())
