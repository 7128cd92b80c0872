"""Bytes into lines, in linear time and bounded memory.

A kernel record holds at most 8 KiB of text; a line of more than MAX_LINE
bytes is no log line: it is cut there, the rest of it up to the next
newline is skipped, and the cut is counted. The pieces of a growing line
are kept in a list, not re-joined on every chunk, so a 50 MB line costs
what reading it costs.
"""

from __future__ import annotations

from collections.abc import Iterator

MAX_LINE = 1 << 20  # 1 MiB: generous beside the kernel's 8 KiB records


class LineSplitter:
    def __init__(self, limit: int = MAX_LINE) -> None:
        self.limit = limit
        self.cut = 0  # lines longer than the limit (cut to it)
        self._pieces: list[bytes] = []
        self._held = 0  # bytes in _pieces
        self._skipping = False  # inside a line already cut: drop until its newline

    def feed(self, chunk: bytes) -> Iterator[str]:
        """The whole lines `chunk` completes (without their newline)."""
        start = 0
        while True:
            end = chunk.find(b"\n", start)
            if end < 0:
                self._hold(chunk[start:])
                return
            self._hold(chunk[start:end])
            yield self._take()
            start = end + 1

    def finish(self) -> Iterator[str]:
        """The last line, when the input ended without a newline."""
        if self.pending:
            yield self._take()

    @property
    def pending(self) -> bool:
        return bool(self._pieces) or self._skipping

    def _hold(self, piece: bytes) -> None:
        if self._skipping:
            return
        if not piece:
            return
        room = self.limit - self._held
        if len(piece) > room:
            self._pieces.append(piece[:room])
            self._held += room
            self._skipping = True
            self.cut += 1
            return
        self._pieces.append(piece)
        self._held += len(piece)

    def _take(self) -> str:
        line = b"".join(self._pieces).decode(errors="replace")
        self._pieces, self._held, self._skipping = [], 0, False
        return line
