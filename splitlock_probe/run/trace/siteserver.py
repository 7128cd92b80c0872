"""Where the agent's breakpoint mode gets the sites of each image it loads:
a Unix socket in a directory of our own (mode 0700), served by one thread
for as long as the command runs (csrc/agent/sitewire.h has the protocol).

Each image is swept once per run, whatever the number of processes that
map it; with a cache directory (`run --site-cache DIR`) once per version
of the file across runs. A file is answered only when the one we open has
the device and inode the agent named, so a path swapped in between gets
nothing rather than another file's sites.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import socket
import stat
import tempfile
import threading
from dataclasses import dataclass, field
from typing import Any

from splitlock_probe.run.trace.sitewire import SITE, SiteTable, reply, site_table

SOCKET_ENV = "SPLITLOCK_AGENT_SITES"
_LINE_MAX = 4200  # "DEV INO PATH\n", PATH at most PATH_MAX
_CACHE_VERSION = 4  # 3: short sites carry the instructions that move with them; 4: hops


def ours_alone(st: os.stat_result) -> bool:
    """Ours, and writable by nobody else: what a cached site list says decides
    where the agent patches code, so neither the cache directory nor a list in
    it may be anyone else's to write (ssh's rule for ~/.ssh)."""
    return st.st_uid == os.geteuid() and not st.st_mode & 0o022


@dataclass
class ImageAnswer:
    path: str
    watched: int | None  # None: no sites given
    found: int = 0
    left: dict[str, int] = field(default_factory=dict)  # not armed (C library), by why
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "watched": self.watched,
            "locked": self.found,
            "not_armed": self.left,
            "error": self.error,
        }


def _identity(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


class SiteServer:
    def __init__(self, cache_dir: str | None = None) -> None:
        self.dir = tempfile.mkdtemp(prefix="splitlock-probe-sites-")
        self.path = os.path.join(self.dir, "socket")
        self.cache_dir = cache_dir
        self.tables: dict[tuple[int, int, int, int], SiteTable] = {}
        self.answers: dict[str, ImageAnswer] = {}
        self._lock = threading.Lock()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.sock.bind(self.path)
            self.sock.listen(64)
        except BaseException:
            self.close()
            raise
        self.thread = threading.Thread(target=self._serve, name="site-server", daemon=True)
        self.thread.start()

    def env(self) -> dict[str, str]:
        return {SOCKET_ENV: self.path}

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return  # closed: the run is over
            with conn:
                try:
                    conn.settimeout(10)
                    conn.sendall(self._answer(_read_line(conn)))
                except (OSError, ValueError):
                    continue

    def _answer(self, line: bytes) -> bytes:
        dev_text, ino_text, raw_path = line.rstrip(b"\n").split(b" ", 2)
        path = os.fsdecode(raw_path)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        except OSError as exc:
            return self._refuse(path, exc.errno or errno.EIO, exc.strerror or "cannot open")
        try:
            st = os.fstat(fd)
        finally:
            os.close(fd)
        if not stat.S_ISREG(st.st_mode) or (st.st_dev, st.st_ino) != (
            int(dev_text),
            int(ino_text),
        ):
            return self._refuse(path, errno.ESTALE, "not the file the program mapped")
        try:
            table = self._table(path, st)
        except Exception as exc:  # a file we cannot read as x86-64 ELF: that image goes blind
            return self._refuse(path, errno.ENOEXEC, str(exc).splitlines()[0][:200])
        with self._lock:
            self.answers[path] = ImageAnswer(path, table.watched, table.found, table.left)
        return reply(0, table)

    def _refuse(self, path: str, code: int, why: str) -> bytes:
        with self._lock:
            self.answers[path] = ImageAnswer(path, None, error=why)
        return reply(code)

    def _table(self, path: str, st: os.stat_result) -> SiteTable:
        key = _identity(st)
        with self._lock:
            if key in self.tables:
                return self.tables[key]
        table = self._cached(key)
        if table is None:
            table = site_table(path)
            self._store(key, table)
        with self._lock:
            self.tables[key] = table
        return table

    def _cache_file(self, key: tuple[int, int, int, int]) -> str | None:
        if self.cache_dir is None:
            return None
        name = "v{}-{}-{}-{}-{}.sites".format(_CACHE_VERSION, *key)
        return os.path.join(self.cache_dir, name)

    def _cached(self, key: tuple[int, int, int, int]) -> SiteTable | None:
        """A table a past run stored: a JSON line of counts, then the packed sites."""
        path = self._cache_file(key)
        if path is None:
            return None
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
        except OSError:
            return None
        with os.fdopen(fd, "rb") as f:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or not ours_alone(st):  # only a table we wrote
                return None
            return self._parse(f)

    @staticmethod
    def _parse(f: Any) -> SiteTable | None:
        try:
            head = json.loads(f.readline(4096))
            packed = f.read(64 << 20)
            table = SiteTable(
                packed, int(head["watched"]), int(head["found"]), dict(head["left"]),
                bool(head["c_library"]),
            )  # fmt: skip
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return table if len(packed) == table.watched * SITE.size else None

    def _store(self, key: tuple[int, int, int, int], table: SiteTable) -> None:
        path = self._cache_file(key)
        if path is None:
            return
        head = {
            "watched": table.watched,
            "found": table.found,
            "left": table.left,
            "c_library": table.c_library,
        }
        temp = f"{path}.{os.getpid()}.tmp"
        try:
            # 0600 whatever the umask: a table others could write would not be read back
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(json.dumps(head).encode() + b"\n" + table.packed)
            os.replace(temp, path)  # whole or not at all: readers never see half a table
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(temp)  # a cache that cannot be written only costs time

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the accept() of the thread
        self.sock.close()
        if getattr(self, "thread", None) is not None:
            self.thread.join(timeout=5)
        shutil.rmtree(self.dir, ignore_errors=True)


def _read_line(conn: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = conn.recv(_LINE_MAX - len(data))
        if not chunk or len(data) + len(chunk) >= _LINE_MAX:
            raise ValueError("no request line")
        data += chunk
    return data
