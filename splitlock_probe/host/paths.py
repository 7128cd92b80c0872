"""One overridable root for every /proc, /sys and /dev read.

SPLITLOCK_PROBE_ROOT names a directory that stands in for `/`, so recorded
host trees (tests/data/hosts/...) drive the same code as the live host.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT_ENV = "SPLITLOCK_PROBE_ROOT"


def root() -> Path:
    """The root every read goes through; a usage error when the variable names
    no directory (a typo must not read as an unknown host)."""
    value = os.environ.get(ROOT_ENV)
    if not value:
        return Path("/")
    path = Path(value)
    if not path.is_dir():
        from splitlock_probe.errors import UsageError

        raise UsageError(f"{ROOT_ENV}={value}: no such directory (it stands in for /)")
    return path


def host_path(path: str) -> Path:
    """`/proc/cpuinfo` -> <root>/proc/cpuinfo."""
    return root() / path.lstrip("/")


def read_text(path: str) -> str | None:
    """The file's text, or None when it does not exist or cannot be read."""
    try:
        return host_path(path).read_text(errors="replace")
    except OSError:
        return None
