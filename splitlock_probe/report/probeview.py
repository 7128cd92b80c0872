"""`probe` for people and for programs."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from splitlock_probe.host.cost import as_dict
from splitlock_probe.report.words import evidence_text, model_words
from splitlock_probe.scan.request import SingleProbe

PROBE_SCHEMA = "splitlock-probe/probe/v1"


def probe_document(result: SingleProbe) -> dict[str, Any]:
    from splitlock_probe.report.jsondoc import tool

    j = result.judgement
    return {
        "schema": PROBE_SCHEMA,
        "tool": tool(),
        "primitive": result.primitive.name,
        "instruction": result.primitive.description,
        "width": result.primitive.width,
        "offset": result.offset,
        "bit": result.bit,
        "access": {
            "offset": result.access_offset,
            "size": result.primitive.width,
            "line_offset": result.access_offset % 64,
        },
        "predicted": result.predicted.as_dict(),
        "tsc_hz": result.run.tsc_hz,
        "detectors": {k: v.as_dict() for k, v in result.detectors.items()},
        "baseline": None
        if result.baseline is None
        else [e.as_dict() for e in result.baseline.evidence],
        "evidence": [] if j is None else [e.as_dict() for e in j.evidence],
        "verdict": None if j is None else j.verdict,
        "agrees": None if j is None else j.agrees,
        "split_lock_cost": None if result.lock_cost is None else as_dict(result.lock_cost),
        "exit_status": int(result.exit_status()),
    }


def draw_probe(result: SingleProbe, console: Console) -> None:
    j = result.judgement
    t = Table(show_header=False, box=None, pad_edge=False)
    t.add_column(style="bold")
    t.add_column()
    p = result.predicted
    end = result.access_offset + result.primitive.width - 1
    t.add_row("op", f"{result.primitive.description}, bit {result.bit}")
    t.add_row(
        "touches",
        f"bytes {result.access_offset}..{end} of the page "
        f"(line offset {result.access_offset % 64}, {result.primitive.width} bytes)",
    )
    t.add_row(
        "model",
        ("misaligned; " if p.misaligned else "aligned; ") + model_words(p),
    )
    for e in [] if j is None else j.evidence:
        if e.detector == "timing" and "min_cycles" in e.data:
            ns = f" ({e.data['min_ns']:,.1f} ns)" if "min_ns" in e.data else ""
            ratio = f", {e.data['ratio']:,.1f}x aligned" if "ratio" in e.data else ""
            t.add_row(
                "timing",
                f"{e.data['min_cycles']:,.1f} cycles/op min{ns}, median "
                f"{e.data['median_cycles']:,.1f}{ratio} -> {e.says}",
            )
            if "note" in e.data:
                t.add_row("", str(e.data["note"]))
        elif e.detector == "actrap":
            trap = (
                f"{e.data.get('signal')} {e.data.get('si_code')}"
                if e.data["trapped"]
                else "no trap"
            )
            t.add_row("AC trap", f"{trap} -> {e.says}")
        else:
            label, _, text = evidence_text(e).partition(": ")
            t.add_row(label, text)
    if result.lock_cost is not None:
        klass, reason = result.lock_cost.classification
        t.add_row("cost here", f"{klass}: {reason}")
    elif result.lock_cost_note:
        t.add_row("cost here", result.lock_cost_note)
    if j is None:
        t.add_row("verdict", "not measured")
    else:
        agrees = {True: "agrees with the model", False: "DISAGREES with the model", None: ""}
        t.add_row("verdict", f"{j.verdict} {agrees[j.agrees]}".strip())
    console.print(t)
