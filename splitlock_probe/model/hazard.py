"""Which placements of a struct make a locked op on one of its fields split a
cache line (docs/reference.md §2, §8). Pure arithmetic.

A struct aligned to A can start at any multiple of A; modulo a 64-byte line
that is every multiple of gcd(A, 64) (a struct aligned to 64 or more sits at
0 only). An op of `width` bytes at struct offset `offset` splits at
placement p when (p + offset) % 64 + width > 64.
"""

from __future__ import annotations

import math

from splitlock_probe.model.access import LINE

LOCKED_WIDTHS = (2, 4, 8, 16)  # the widths a locked op has (1 byte can never split)


def placements_mod_line(align: int) -> range:
    """The struct's possible placements modulo a cache line."""
    step = LINE if align >= LINE else math.gcd(max(1, align), LINE)
    return range(0, LINE, step)


def split_placements(offset: int, width: int, align: int) -> list[int]:
    """The placements (mod 64) at which a `width`-byte op at `offset` splits."""
    return [p for p in placements_mod_line(align) if (p + offset) % LINE + width > LINE]


def natural_width(size: int) -> int | None:
    """The locked op a field of `size` bytes is the natural target of, if any."""
    return size if size in LOCKED_WIDTHS else None
