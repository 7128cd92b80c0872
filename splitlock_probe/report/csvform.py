"""The CSV form of a command's main table (`--csv`), for spreadsheets and awk.

One row per item of the table's JSON list, so the CSV can never say other
than the JSON: nested objects become dotted columns (`access.line_offset`),
an evidence list keyed by detector becomes `evidence.timing.says`, and any
other list is kept whole as compact JSON in its cell. Columns are the union
over all rows, in first-seen order; a missing value is an empty cell.
Numbers are written raw (no separators, no units), booleans as true/false,
as in JSON. Text from outside is escaped as everywhere (text.py).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from splitlock_probe.text import escape

_KEYED_BY = ("detector", "name")  # a list of objects with one of these flattens by it


def _keyed_list(values: list[Any]) -> str | None:
    """The key that names every object of `values` uniquely, if one does."""
    if not values or not all(isinstance(v, dict) for v in values):
        return None
    for key in _KEYED_BY:
        names = [v.get(key) for v in values]
        if all(isinstance(n, str) and n for n in names) and len(set(names)) == len(names):
            return key
    return None


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return json.dumps(value)
    if isinstance(value, str):
        return escape(value)
    return escape(json.dumps(value, separators=(",", ":"), ensure_ascii=False))


def flatten(item: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, str]]:
    """(column, cell) pairs of one JSON object."""
    for key, value in item.items():
        column = f"{prefix}{key}"
        if isinstance(value, dict) and value and not all(k.isdigit() for k in value):
            yield from flatten(value, column + ".")
        elif isinstance(value, list) and (by := _keyed_list(value)) is not None:
            for entry in value:
                rest = {k: v for k, v in entry.items() if k != by}
                yield from flatten(rest, f"{column}.{entry[by]}.")
        else:
            yield column, _cell(value)


def nested(items: Iterable[Mapping[str, Any]], child: str, parent: str) -> list[dict[str, Any]]:
    """The objects of each item's `child` list, each with the item's plain
    fields under `parent.` (audit's sites under their file, layout's fields
    under their struct)."""
    out: list[dict[str, Any]] = []
    for item in items:
        own = {f"{parent}.{k}": v for k, v in item.items() if not isinstance(v, (dict, list))}
        out.extend({**own, **entry} for entry in item.get(child) or [])
    return out


def _record(cells: Iterable[str]) -> str:
    """One CSV line, quoted where a cell needs it."""
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(cells)
    return out.getvalue()


def csv_text(rows: Iterable[Mapping[str, Any]]) -> str:
    """The rows as CSV with one header line; nothing at all when there are no
    rows (their columns are not known, and an empty file reads as no rows)."""
    flat = [dict(flatten(row)) for row in rows]
    if not flat:
        return ""
    columns: dict[str, None] = {}
    for row in flat:
        columns.update(dict.fromkeys(row))
    return _record(columns) + "".join(_record(row.get(c, "") for c in columns) for row in flat)


class CsvStream:
    """Rows written as they come (log --follow): the columns are the first row's."""

    def __init__(self, write: Any) -> None:
        self.write = write
        self.columns: list[str] | None = None

    def row(self, item: Mapping[str, Any]) -> None:
        flat = dict(flatten(item))
        head = ""
        if self.columns is None:
            self.columns = list(flat)
            head = _record(self.columns)
        self.write(head + _record(flat.get(c, "") for c in self.columns))
