"""Where a report is written, and how, so that nothing at the path is damaged.

- `-` is stdout. A path is checked before any work is done: a directory, a
  missing parent, a name too long, a place we cannot create files in are
  usage errors, not failures after a long scan.
- A character or block device, a FIFO or a socket (also behind a symlink,
  such as /proc/self/fd/1) is written into, never replaced: `-o /dev/null`
  as root must not turn the system's /dev/null into a regular file.
- A regular file is written atomically: a temporary beside the real target
  (a symlink's target, so the link stays), flushed, then renamed over it. A
  new file follows the umask; a replaced one keeps its permission bits, and
  its owner and group where we may set them.
- Temporaries are named `.slp-<hash of the name>.<pid>.tmp`: a later run
  recognises its own stale ones (their pid is gone, after a SIGKILL) and
  removes them before writing.
- Text goes out with os.write in a loop: a partial write to a pipe whose
  reader left must end in EPIPE (exit 141), not in a silent truncation.
- `whole()` holds SIGINT, SIGTERM and SIGHUP while a report is written, so
  a report is written whole or not at all; they are delivered right after.
  A stream can block for ever while they are held (a FIFO nobody opens, a
  pipe nobody reads), so stream writes wait in short polls, and a held
  signal that is pending by then ends the write: Ctrl-C always works, and
  only a reader that stopped reading sees part of a report.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import signal
import stat
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from splitlock_probe.errors import ProbeError, UsageError
from splitlock_probe.text import ascii_int, escape

STDOUT = "-"
NAME_MAX = 255
HELD_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@dataclass(frozen=True)
class Destination:
    shown: str  # the path as the user gave it, for messages
    path: Path | None  # None: stdout
    stream: bool = False  # a device, FIFO or socket: written into, never replaced
    target: Path | None = None  # a regular file's real path (symlinks resolved)


def _stream_kind(mode: int) -> bool:
    return stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


def _temp_prefix(target: Path) -> str:
    digest = hashlib.sha256(os.fsencode(target.name)).hexdigest()[:16]
    return f".slp-{digest}."


def _probe_directory(directory: Path, option: str, shown: str) -> None:
    """Can a file be created (and so renamed) here? Try it, and take it back."""
    try:
        fd = os.open(directory / f".slp-probe.{os.getpid()}.tmp",
                     os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # fmt: skip
    except OSError as exc:
        why = "no file can be created there" if exc.errno == errno.ENOENT else exc.strerror
        raise UsageError(f"{option} {shown}: cannot write in {directory} ({why})") from None
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(directory / f".slp-probe.{os.getpid()}.tmp")


def check(option: str, value: str) -> Destination:
    """The destination an output option names, refused now if it cannot be written."""
    if value == STDOUT:
        return Destination(value, None)
    shown = escape(value)
    if not value or "\0" in value:
        raise UsageError(f"{option}: give a file name, or - for stdout")
    if value.endswith("/"):
        raise UsageError(f"{option} {shown}: names a directory; give a file name")
    path = Path(value)
    if len(os.fsencode(path.name)) > NAME_MAX:
        raise UsageError(f"{option} {shown}: the file name is longer than {NAME_MAX} bytes")
    try:
        st = os.stat(path)  # follows symlinks: what a write would reach
    except FileNotFoundError:
        st = None
        if path.is_symlink():
            raise UsageError(f"{option} {shown}: a symlink to nothing") from None
    except OSError as exc:
        raise UsageError(f"{option} {shown}: {exc.strerror}") from None
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise UsageError(f"{option} {shown}: is a directory")
    if st is not None and _stream_kind(st.st_mode):
        return Destination(shown, path, stream=True)
    target = Path(os.path.realpath(path))
    parent = target.parent
    if not parent.is_dir():
        raise UsageError(f"{option} {shown}: no directory {parent}")
    _probe_directory(parent, option, shown)
    return Destination(shown, path, target=target)


def _umask() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    old = os.umask(0o022)  # no /proc: read it the only other way, and put it back
    os.umask(old)
    return old


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale(target: Path) -> int:
    """Remove temporaries an earlier, killed run left for this target; how many."""
    prefix = _temp_prefix(target)
    removed = 0
    try:
        names = os.listdir(target.parent)
    except OSError:
        return 0
    for name in names:
        if not (name.startswith(prefix) and name.endswith(".tmp")):
            continue
        # Ours name a pid of 1..7 ASCII digits (pid_max is at most 4,194,304);
        # anything else is someone else's file (a pid past 64 bits makes os.kill raise).
        pid = ascii_int(name[len(prefix) : -len(".tmp")], 7)
        if pid is None:
            continue
        if pid > 0 and pid != os.getpid() and not _pid_alive(pid):
            with contextlib.suppress(OSError):
                os.unlink(target.parent / name)
                removed += 1
    return removed


class StuckWrite(Exception):
    """A held signal came while a stream would not take the report."""


POLL_S = 0.1
_CHUNK = 4096  # PIPE_BUF: after POLLOUT, a pipe takes this much without blocking


def _held_signal_pending() -> bool:
    return bool(signal.sigpending() & set(HELD_SIGNALS))


def write_all(fd: int, data: bytes) -> None:
    """Every byte, or the OSError that stopped it (EPIPE: the reader left), or
    StuckWrite when the reader stopped taking it and a held signal came. A
    regular file never blocks: it takes the whole at once, unpolled."""
    import select

    view = memoryview(data)
    if stat.S_ISREG(os.fstat(fd).st_mode):
        while view:
            view = view[os.write(fd, view) :]
        return
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    while view:
        while not poller.poll(int(POLL_S * 1000)):  # until it takes bytes
            if _held_signal_pending():
                raise StuckWrite
        view = view[os.write(fd, view[:_CHUNK]) :]


def _open_stream(path: Path) -> int:
    """A device, FIFO or socket opened for writing. A FIFO's open waits for a
    reader: done without blocking, in short polls, so a held signal ends it."""
    flags = os.O_WRONLY | os.O_CLOEXEC
    if not stat.S_ISFIFO(os.stat(path).st_mode):
        return os.open(path, flags)
    while True:
        try:
            fd = os.open(path, flags | os.O_NONBLOCK)
        except OSError as exc:
            if exc.errno != errno.ENXIO:  # ENXIO: no reader yet
                raise
            if _held_signal_pending():
                raise StuckWrite from None
            time.sleep(POLL_S)
            continue
        os.set_blocking(fd, True)  # our own open file description: the polls pace it
        return fd


def _replace(target: Path, data: bytes) -> None:
    remove_stale(target)
    try:
        old: os.stat_result | None = os.stat(target)
    except FileNotFoundError:
        old = None
    mode = (0o666 & ~_umask()) if old is None else stat.S_IMODE(old.st_mode) & 0o777
    tmp = target.parent / f"{_temp_prefix(target)}{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        try:
            write_all(fd, data)
            os.fsync(fd)
            os.fchmod(fd, mode)
            if old is not None and (old.st_uid, old.st_gid) != (os.geteuid(), os.getegid()):
                with contextlib.suppress(PermissionError):
                    os.fchown(fd, old.st_uid, old.st_gid)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # the rename itself, on disk
        dirfd = os.open(target.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dirfd)
        finally:
            os.close(dirfd)


def write(dest: Destination, text: str) -> None:
    """Write `text` where `dest` says; ProbeError (exit 3) names what failed."""
    data = text.encode("utf-8")
    try:
        if dest.path is None:
            write_stdout(data)
        elif dest.stream:
            fd = _open_stream(dest.path)
            try:
                write_all(fd, data)
            finally:
                os.close(fd)
        else:
            assert dest.target is not None
            _replace(dest.target, data)
    except BrokenPipeError:
        raise
    except OSError as exc:
        where = "stdout" if dest.path is None else dest.shown
        raise ProbeError(f"writing {where}: {exc.strerror or exc}") from None


def _stream_fd(err: bool) -> int:
    stream = sys.stderr if err else sys.stdout
    if stream is None:
        raise ProbeError(f"{'stderr' if err else 'stdout'} is closed: nowhere to write the report")
    with contextlib.suppress(OSError, ValueError):
        stream.flush()
    try:
        return stream.fileno()
    except (OSError, ValueError):  # not a real file (a test's capture): write through it
        return -1


def write_stdout(data: bytes, err: bool = False) -> None:
    """All of `data` on stdout (stderr with err), below Python's buffers."""
    fd = _stream_fd(err)
    if fd < 0:
        stream = sys.stderr if err else sys.stdout
        assert stream is not None
        stream.write(data.decode("utf-8"))
        stream.flush()
        return
    write_all(fd, data)


def usable_stdout(err: bool = False) -> None:
    """ProbeError (exit 3) now, before any work, when the stream is closed."""
    fd = _stream_fd(err)
    if fd >= 0:
        try:
            os.fstat(fd)
        except OSError as exc:
            if exc.errno == errno.EBADF:
                raise ProbeError(
                    f"{'stderr' if err else 'stdout'} is closed: nowhere to write the report"
                ) from None
            raise


@contextlib.contextmanager
def whole() -> Iterator[None]:
    """Hold Ctrl-C, SIGTERM and SIGHUP while a report is written (main thread)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, HELD_SIGNALS)
    try:
        yield
    except StuckWrite:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)  # the pending signal is taken here
        raise KeyboardInterrupt from None  # should its handler not have raised
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
