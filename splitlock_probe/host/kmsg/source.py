"""Reading the kernel log: /dev/kmsg (under paths.root()) or any file.

/dev/kmsg hands out one record per read(): "<prio>,<seq>,<usec>,<flags>;text"
plus metadata lines that start with a space. Opened O_NONBLOCK, EAGAIN means
the end; EPIPE means records were overwritten before we read them (counted,
then reading goes on). lseek(SEEK_END) skips every older record, which is how
a scan makes sure only its own lines count.

A regular file at <root>/dev/kmsg (a recorded log) is read through the same
code: EOF plays the part of EAGAIN, and following it polls like `tail -F`
(a file renamed or truncated by log rotation is opened again).

Nothing read here can make a command hang or grow without bound: a line is
cut at 1 MiB (counted in `cut`), and one pass reads at most MAX_PASS_BYTES
(a real ring buffer holds at most 32 MiB; /dev/zero as a recorded dev/kmsg
would otherwise never end), counted in `bounded`.
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
from splitlock_probe.host.kmsg.split import LineSplitter
from splitlock_probe.host.paths import host_path, read_text

KMSG = "/dev/kmsg"
READ_SIZE = 1 << 16  # larger than any record: a short buffer makes kmsg fail with EINVAL
FILE_POLL_S = 0.2
MAX_PASS_BYTES = 64 << 20  # one read_available(): twice the largest ring buffer


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
        st = os.fstat(self._fd)
        self.is_device = stat.S_ISCHR(st.st_mode)
        self._identity = (st.st_dev, st.st_ino)
        self._offset = 0  # bytes read from a regular file (to notice truncation)
        self.overwritten = 0  # EPIPE: records lost before we read them
        self.cut = 0  # lines longer than MAX_LINE, cut
        self.bounded = 0  # passes that stopped at MAX_PASS_BYTES
        self.reopened = 0  # a followed file was rotated or truncated and opened again
        self._lines = LineSplitter()

    def seek_end(self) -> None:
        """From now on, only records written after this call are read."""
        try:
            self._offset = os.lseek(self._fd, 0, os.SEEK_END)
        except OSError as exc:
            if exc.errno != errno.ESPIPE:
                raise ProbeError(f"reading {self.path}: {os.strerror(exc.errno or 0)}") from None
            for _ in self.read_available(final=False):  # a FIFO: drop what is there now
                pass
        self._lines = LineSplitter()

    def read_available(self, final: bool = True) -> Iterator[str]:
        """Every line available now; stops at the end without blocking. `final`:
        a file's last line counts even without a newline (following, it may
        still be being written)."""
        read = 0
        while read < MAX_PASS_BYTES:
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
                if final:
                    yield from self._lines.finish()
                return
            read += len(chunk)
            self._offset += len(chunk)
            yield from self._lines.feed(chunk)
            self.cut = self._lines.cut
        self.bounded += 1

    def _rotated(self) -> bool:
        """A followed regular file was renamed away or truncated (log rotation)."""
        if self.is_device:
            return False
        try:
            st = os.stat(self.path)
        except OSError:
            return False  # gone for now: keep reading the old one until it comes back
        return (st.st_dev, st.st_ino) != self._identity or st.st_size < self._offset

    def _reopen(self) -> None:
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            return
        os.close(self._fd)
        self._fd = fd
        st = os.fstat(fd)
        self._identity, self._offset = (st.st_dev, st.st_ino), 0
        self._lines = LineSplitter()
        self.reopened += 1

    def wait(self, timeout: float) -> None:
        """Sleep until new records may be there (at most `timeout` seconds)."""
        if self.is_device:
            select.select([self._fd], [], [], timeout)
        else:
            time.sleep(min(timeout, FILE_POLL_S))

    def follow(self, idle: float = 1.0) -> Iterator[str]:
        """read_available(), then every new line as it arrives, until interrupted;
        like `tail -F`, a file rotated away or truncated is opened again."""
        while True:
            yield from self.read_available(final=False)
            if self._rotated():
                yield from self.read_available(final=True)  # what the old file still had
                self._reopen()
                continue
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
