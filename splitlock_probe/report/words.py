"""Evidence said in words, for the places that cannot show a table: JUnit
messages, system-out, and the probe view's kernel and counter lines."""

from __future__ import annotations

from splitlock_probe.detectors.base import Evidence
from splitlock_probe.model.access import Prediction


def _arrow(e: Evidence) -> str:
    return f" -> {e.says}" if e.says else ""


def evidence_text(e: Evidence) -> str:
    d = e.data
    if e.status == "failed":
        return f"{e.detector} failed: {d.get('detail') or d.get('error') or d.get('failure')}"
    if e.detector == "timing" and "min_cycles" in d:
        ratio = f", {d['ratio']:,.1f}x aligned" if "ratio" in d else ""
        return f"timing: {d['min_cycles']:,.1f} cycles/op{ratio}{_arrow(e)}"
    if "signal" in d and e.detector in ("timing", "actrap"):
        cause = f" ({d['cause']})" if "cause" in d else ""
        return f"{e.detector}: {d['signal']} {d['si_code']}{cause}{_arrow(e)}"
    if e.detector == "actrap":
        return f"actrap: no trap{_arrow(e)}"
    if e.detector == "kmsg":
        if d.get("lines"):
            first = d["lines"][0]
            return (
                f"kernel log: {first['comm']}/{first['pid']} took a {first['kind']} trap at "
                f"{first['ip']}{_arrow(e)}"
            )
        if "note" in d:
            return f"kernel: {d['note']}"
        return f"kernel: {d.get('source', '')}{_arrow(e)}"
    if e.detector == "misery":
        each = f" ({d['sleep_ms_each']:g} ms each)" if "sleep_ms_each" in d else ""
        return (
            f"penalty: {d['off_cpu_ms']:g} ms off-CPU, {d['voluntary_switches']} voluntary "
            f"switches{each}{_arrow(e) or ' -> no penalty seen'}"
        )
    if e.detector == "perf":
        counts = ", ".join(f"{k}={'-' if v is None else f'{v:,}'}" for k, v in d["counts"].items())
        return f"counters: {counts}{' (scaled)' if d.get('scaled') else ''}{_arrow(e)}"
    return f"{e.detector}: {e.status}{_arrow(e)}"


def model_words(p: Prediction) -> str:
    """What the model predicts, in words: where the bytes lie, and what the op does."""
    where = "crosses a cache line" if p.splits_line else "stays in one cache line"
    if p.splits_page:
        where += " and a page"
    if p.faults:
        return where + "; raises #GP (misaligned cmpxchg16b): never runs, takes no lock"
    return where + ("; a split lock" if p.split_lock else "")
