"""Text from the outside world (log lines, /proc, ELF symbols, argv, JSON
inputs, paths) made safe to print: data, never terminal control.

Every C0 control character (but tab), DEL and every C1 control character is
shown escaped, as `\\x1b`, and a backslash as `\\\\`, so the escaped form
cannot be mistaken for an escape. Everything else, non-ASCII letters
included, is kept. Rich markup is not interpreted anywhere (every Console is
made with markup=False), so brackets need nothing.
"""

from __future__ import annotations

import re

_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\\]")
# What XML 1.0 forbids in a document, even escaped (tab, LF and CR are allowed).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


def _escaped(match: re.Match[str]) -> str:
    ch = match.group()
    return "\\\\" if ch == "\\" else f"\\x{ord(ch):02x}"


def escape(text: str) -> str:
    """`text` with control characters (and backslashes) escaped."""
    return _CONTROL.sub(_escaped, text)


_CONTROL_ONLY = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def inert(text: str) -> str:
    """`text` with control characters but tab and newline escaped, backslashes
    kept: a last guard for a message made of parts escaped already (or not)."""
    return _CONTROL_ONLY.sub(_escaped, text)


def ascii_int(text: str, digits: int) -> int | None:
    """`text` as a number when it is 1 to `digits` ASCII digits, else None.
    str.isdigit alone also takes '²' (which int() refuses), and int() refuses
    more than 4,300 digits: outside text is checked before it is converted."""
    if text.isascii() and text.isdigit() and len(text) <= digits:
        return int(text)
    return None


def clip(text: str, limit: int = 200) -> str:
    """At most `limit` characters, saying how many were cut."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… (+{len(text) - limit:,} chars)"


def shown(text: str, limit: int = 200) -> str:
    """Escaped and clipped: what a table cell or a message shows of outside text."""
    return clip(escape(text), limit)


def xml_safe(text: str) -> str:
    """`text` with what XML 1.0 cannot hold escaped (ElementTree escapes the rest)."""
    return _NOT_XML.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def counted(n: int, word: str) -> str:
    """'1 thread', '2 threads', '1,024 processes': separators and singulars right."""
    if n == 1:
        return f"1 {word}"
    return f"{n:,} {word}{'es' if word.endswith(('s', 'sh', 'ch', 'x')) else 's'}"


def size_text(n: int | None) -> str:
    """'1 byte', '192 bytes', or 'size unknown' (a member DWARF gives no size)."""
    return "size unknown" if n is None else counted(n, "byte")
