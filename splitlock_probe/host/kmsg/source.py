"""Reading the kernel log: /dev/kmsg (under paths.root()) or any file.

/dev/kmsg hands out one record per read(): "<prio>,<seq>,<usec>,<flags>;text"
plus metadata lines that start with a space. Opened O_NONBLOCK, EAGAIN means
the end; EPIPE means records were overwritten before we read them (counted,
then reading goes on). lseek(SEEK_END) skips every older record, which is how
a scan makes sure only its own lines count.

A regular file at <root>/dev/kmsg (a recorded log) is read through the same
code: EOF plays the part of EAGAIN, and following it polls like `tail -f`.
"""

from __future__ import annotations

import errno
import os
import select
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

from splitlock_probe.errors import ProbeError, UnsupportedHost
from splitlock_probe.host.paths import host_path, read_text

KMSG = "/dev/kmsg"
READ_SIZE = 1 << 16  # larger than any record: a short buffer makes kmsg fail with EINVAL
FILE_POLL_S = 0.2


class KernelLogUnreadable(UnsupportedHost):
    """The live log cannot be read here (exit 4): the message names the cause."""


def unreadable_reason(err: OSError, path: Path) -> str:
    if err.errno in (errno.EPERM, errno.EACCES):
        restrict = (read_text("/proc/sys/kernel/dmesg_restrict") or "").strip()
        if restrict == "1":
            return (
                f"cannot read {path}: kernel.dmesg_restrict=1, so reading the kernel log "
                "needs root (CAP_SYSLOG); run as root, or read a saved log with --file"
            )
        return f"cannot read {path}: permission denied; run as root or read a saved log with --file"
    if err.errno == errno.ENOENT:
        return f"cannot read {path}: no such device (no /dev/kmsg in this root or container)"
    return f"cannot read {path}: {os.strerror(err.errno or 0)}"


class KernelLog:
    """A non-blocking reader of /dev/kmsg, or of a file that stands in for it."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or host_path(KMSG)
        try:
            self._fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            raise KernelLogUnreadable(unreadable_reason(exc, self.path)) from None
        self.is_device = stat.S_ISCHR(os.fstat(self._fd).st_mode)
        self.overwritten = 0  # EPIPE: records lost before we read them
        self._partial = b""

    def seek_end(self) -> None:
        """From now on, only records written after this call are read."""
        os.lseek(self._fd, 0, os.SEEK_END)
        self._partial = b""

    def read_available(self, final: bool = True) -> Iterator[str]:
        """Every line available now; stops at the end without blocking. `final`:
        a file's last line counts even without a newline (following, it may
        still be being written)."""
        while True:
            try:
                chunk = os.read(self._fd, READ_SIZE)
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno == errno.EPIPE:
                    self.overwritten += 1
                    continue
                raise ProbeError(f"reading {self.path}: {os.strerror(exc.errno or 0)}") from None
            if not chunk:
                if final and self._partial:
                    line, self._partial = self._partial, b""
                    yield line.decode(errors="replace")
                return
            *complete, self._partial = (self._partial + chunk).split(b"\n")
            for line in complete:
                yield line.decode(errors="replace")

    def wait(self, timeout: float) -> None:
        """Sleep until new records may be there (at most `timeout` seconds)."""
        if self.is_device:
            select.select([self._fd], [], [], timeout)
        else:
            time.sleep(min(timeout, FILE_POLL_S))

    def follow(self, idle: float = 1.0) -> Iterator[str]:
        """read_available(), then every new line as it arrives, until interrupted."""
        while True:
            yield from self.read_available(final=False)
            self.wait(idle)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> KernelLog:
        return self

    def __exit__(
        self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def access() -> tuple[bool, str]:
    """Can the live kernel log be read here? (yes/no, and the reason)."""
    try:
        with KernelLog():
            return True, f"{host_path(KMSG)} is readable"
    except KernelLogUnreadable as exc:
        return False, str(exc)
