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


MAX_FILE_BYTES = 32 << 20  # /proc/cpuinfo of a 1,024-CPU host is ~1.5 MB


def read_file(path: Path) -> str | None:
    """A /proc, /sys or recorded file's text (at most MAX_FILE_BYTES), or None
    when it does not exist, cannot be read, or is not a regular file: in a
    recorded tree a /dev/zero or a FIFO in its place would never end (the
    former grew by 1.5 GB a second as /proc/cpuinfo). procfs and sysfs files
    are regular files."""
    import stat

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        chunks, total = [], 0
        while total < MAX_FILE_BYTES:
            chunk = os.read(fd, min(1 << 20, MAX_FILE_BYTES - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        return b"".join(chunks).decode(errors="replace")
    except OSError:
        return None
    finally:
        os.close(fd)


def read_text(path: str) -> str | None:
    """The text of `path` under the root (read_file), or None."""
    return read_file(host_path(path))
