"""A saved log or stdin as lines: compressed files by their magic, not their
name (gzip, xz, bzip2 with the standard library; zstd with the zstd
program), every line through the same bounded splitter as /dev/kmsg."""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from splitlock_probe.errors import ProbeError, UsageError
from splitlock_probe.host.kmsg.split import LineSplitter

CHUNK = 1 << 16
MAGIC = {
    b"\x1f\x8b": "gzip",
    b"\xfd7zXZ\x00": "xz",
    b"BZh": "bzip2",
    b"\x28\xb5\x2f\xfd": "zstd",
}


def compression(path: Path) -> str | None:
    """The compression a file's first bytes announce, or None."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError:
        return None
    for magic, name in MAGIC.items():
        if head.startswith(magic):
            return name
    return None


def _chunks(stream: IO[bytes]) -> Iterator[bytes]:
    while chunk := stream.read(CHUNK):
        yield chunk


def _zstd(path: Path) -> Iterator[bytes]:
    program = shutil.which("zstd")
    if program is None:
        raise UsageError(f"{path}: zstd-compressed; install zstd, or decompress it first")
    with subprocess.Popen([program, "-dc", "--", str(path)], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE) as proc:  # fmt: skip
        assert proc.stdout is not None and proc.stderr is not None
        yield from _chunks(proc.stdout)
        err = proc.stderr.read().decode(errors="replace").strip()
    if proc.returncode:
        raise UsageError(f"{path}: zstd could not decompress it ({err.splitlines()[-1:]})")


def _open(path: Path, kind: str) -> IO[bytes]:
    if kind == "gzip":
        return gzip.GzipFile(path, "rb")  # type: ignore[return-value]  # a binary file
    if kind == "xz":
        return lzma.open(path, "rb")
    return bz2.open(path, "rb")


def compressed_lines(path: Path, kind: str, splitter: LineSplitter) -> Iterator[str]:
    """Every line of a compressed file; a corrupt one is a usage error."""
    try:
        if kind == "zstd":
            for chunk in _zstd(path):
                yield from splitter.feed(chunk)
        else:
            with _open(path, kind) as f:
                for chunk in _chunks(f):
                    yield from splitter.feed(chunk)
    except (OSError, EOFError, lzma.LZMAError) as exc:
        raise UsageError(f"{path}: not a readable {kind} file ({exc})") from None
    yield from splitter.finish()


def stdin_lines(splitter: LineSplitter) -> Iterator[str]:
    """stdin as bytes: invalid UTF-8 is shown replaced, never an error."""
    stream = sys.stdin.buffer if sys.stdin is not None else None
    if stream is None:
        raise ProbeError("stdin is closed: nothing to read")
    try:
        fd = stream.fileno()
    except (OSError, ValueError):  # not a real file (a test's input): read it as a stream
        fd = -1
    try:
        while True:
            chunk = os.read(fd, CHUNK) if fd >= 0 else stream.read(CHUNK)
            if not chunk:
                break
            yield from splitter.feed(chunk)
    except OSError as exc:
        raise ProbeError(f"reading stdin: {exc.strerror}") from None
    yield from splitter.finish()
