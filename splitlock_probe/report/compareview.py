"""`compare` for people and for programs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from splitlock_probe.scan.compare import Case, CaseState, Comparison
from splitlock_probe.text import shown

if TYPE_CHECKING:
    from rich.console import Console

COMPARE_SCHEMA = "splitlock-probe/compare/v2"


def _case(key: Case, old: CaseState, new: CaseState) -> dict[str, Any]:
    layout, field, primitive, placement = key
    return {
        "layout": layout,
        "field": field,
        "primitive": primitive,
        "placement": placement,
        "old": old.as_dict(),
        "new": new.as_dict(),
    }


def _new_case(key: Case, new: CaseState) -> dict[str, Any]:
    layout, field, primitive, placement = key
    return {
        "layout": layout,
        "field": field,
        "primitive": primitive,
        "placement": placement,
        "new": new.as_dict(),
    }


def _cases(n: int) -> str:
    return f"{n} case" if n == 1 else f"{n} cases"


def _setting(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(str(v) for v in value) or "-"
    return "-" if value is None else str(value)


def _host(h: dict[str, Any]) -> str:
    return str(h.get("model_name") or h.get("vendor") or "unknown host")


def compare_document(c: Comparison) -> dict[str, Any]:
    from splitlock_probe.report.jsondoc import tool

    return {
        "schema": COMPARE_SCHEMA,
        "tool": tool(),
        "old": {"path": c.old_path, "host": _host(c.old_host)},
        "new": {"path": c.new_path, "host": _host(c.new_host)},
        "by": c.by,
        "only_common": c.only_common,
        "regression": c.regression,
        "regressions": c.regressions,
        "common": c.common,
        "newly_split": [_case(*e) for e in c.newly_split],
        "split_only_new": [_new_case(k, s) for k, s in c.split_only_new],
        "fixed": [_case(*e) for e in c.fixed],
        "changed": [_case(*e) for e in c.changed],
        "only_old": c.only_old,
        "only_new": c.only_new,
        "new_complete": c.new_complete,
        "settings_differ": {k: {"old": a, "new": b} for k, (a, b) in c.settings_differ.items()},
        "latency": [x.as_dict() for x in c.latency],
        "detectors": {"gained": c.detectors_gained, "lost": c.detectors_lost},
        "exit_status": int(c.exit_status()),
    }


def draw_compare(c: Comparison, console: Console) -> None:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    head = Text(
        f"old: {shown(c.old_path)} ({shown(_host(c.old_host))})\n"
        f"new: {shown(c.new_path)} ({shown(_host(c.new_host))})"
    )
    console.print(head, style="dim")
    if c.settings_differ:
        console.print(Text("the scans were asked different things:", style="yellow"))
        for key, (a, b) in c.settings_differ.items():
            said = f"  {key}: old {shown(_setting(a))}, new {shown(_setting(b))}"
            console.print(Text(said, style="yellow"))
    sections = (
        ("newly split (regressions)", c.newly_split, "bold red"),
        ("fixed", c.fixed, "green"),
        ("other changes", c.changed, "yellow"),
    )
    for title, entries, style in sections:
        if not entries:
            continue
        t = Table(box=box.SIMPLE_HEAD, pad_edge=False, title=title, title_justify="left")
        for column in ("struct", "field", "op", "placement", "old", "new"):
            t.add_column(column)
        for (layout, field, prim, placement), old, new in entries:
            t.add_row(
                shown(layout),
                shown(field),
                shown(prim),
                str(placement),
                f"{old.verdict} {old.split_bits}".strip(),
                Text(f"{new.verdict} {new.split_bits}".strip(), style=style),
            )
        console.print(t)
    if c.split_only_new:
        title = "split, and only in the new scan" + (
            " (not counted: --only-common)" if c.only_common else " (regressions)"
        )
        t = Table(box=box.SIMPLE_HEAD, pad_edge=False, title=title, title_justify="left")
        for column in ("struct", "field", "op", "placement", "new"):
            t.add_column(column)
        for (layout, field, prim, placement), new in c.split_only_new:
            t.add_row(
                shown(layout), shown(field), shown(prim), str(placement),
                Text(f"{new.verdict} {new.split_bits}".strip(), style="bold red"),
            )  # fmt: skip
        console.print(t)
    if c.latency:
        t = Table(
            box=box.SIMPLE_HEAD, pad_edge=False, title="latency beyond noise", title_justify="left"
        )
        for column in ("op", "ops", "old cycles", "new cycles", "ratio", "noise"):
            t.add_column(column)
        for x in c.latency:
            t.add_row(
                x.primitive,
                x.what,
                f"{x.old_cycles:,.1f}",
                f"{x.new_cycles:,.1f}",
                f"{x.ratio:.2f}x",
                f"±{x.threshold:.0%}",
            )
        console.print(t)
    if c.detectors_gained or c.detectors_lost:
        console.print(
            f"detectors gained: {', '.join(c.detectors_gained) or '-'}; "
            f"lost: {', '.join(c.detectors_lost) or '-'}"
        )
    if c.only_old or c.only_new:
        console.print(
            Text(
                f"{_cases(c.common)} compared; {_cases(c.only_old)} only in the old scan, "
                f"{_cases(c.only_new)} only in the new one",
                style="dim",
            )
        )
    if not c.new_complete:
        console.print(
            Text(
                "the new scan was cut short (--budget or Ctrl-C): the cases it never measured "
                "may have regressed"
                + ("" if c.only_common else "; --only-common compares only what both measured"),
                style="yellow",
            )
        )
    if c.regression:
        verdict = Text(f"regression: {_cases(c.regressions)} newly split", style="bold red")
    elif c.new_complete or c.only_common:
        verdict = Text(f"no regression; {_cases(len(c.fixed))} fixed", style="green")
    else:
        verdict = Text("no regression in what both measured; not a pass (exit 4)", style="yellow")
    console.print(verdict)
