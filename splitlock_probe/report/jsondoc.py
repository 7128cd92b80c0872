"""JSON documents (docs/json.md). Built from results only; no rich import here.

Large lists are written one item per line: a page-wide scan stays small,
greppable and streamable (`jq -c '.probes[]'`) while still one document.
"""

from __future__ import annotations

import json
import platform
from collections.abc import Iterator
from typing import Any

from splitlock_probe import __version__
from splitlock_probe.scan.plan import ProbeGroup, fold_ranges, format_ranges
from splitlock_probe.scan.request import ScanResult
from splitlock_probe.scan.verdict import Judgement

SCAN_SCHEMA = "splitlock-probe/scan/v2"
PROBE_SCHEMA = "splitlock-probe/probe/v1"


def lock_cost_dict(cost: Any) -> dict[str, Any]:
    from splitlock_probe.host.cost import as_dict

    return as_dict(cost)


def tool() -> dict[str, str]:
    return {"name": "splitlock-probe", "version": __version__}


def host_section(result: ScanResult) -> dict[str, Any]:
    return {**result.cpu.as_dict(), "machine": platform.machine(), "tsc_hz": result.run.tsc_hz}


def kernel_section(result: ScanResult) -> dict[str, Any]:
    """The kernel's mode, what the scan expected to cost, and what its log said."""
    return {
        **result.host.kernel.as_dict(),
        "cost": result.cost.as_dict(),
        "log": None if result.log is None else result.log.as_dict(),
        "penalty_ms": result.penalty_ms(),
    }


def settings_section(result: ScanResult, fold: bool) -> dict[str, Any]:
    req = result.request
    return {
        "layouts": [layout.label for layout in req.layouts],
        "fields": req.field_names,
        "primitives": [p.name for p in req.primitives],
        "bits": None if req.bits is None else format_ranges(fold_ranges(sorted(req.bits))),
        "align": req.align_setting,
        "span": req.span.value,
        "detectors": list(req.settings.detectors),
        "batches": req.settings.batches,
        "iterations": req.settings.iterations,
        "target_cycles": req.settings.target_cycles,
        "timeout_s": req.settings.timeout,
        "pace": req.pace,
        "perf_events": [
            {k: c[k] for k in ("name", "kind", "pmu", "config")} for c in req.settings.perf_counters
        ],
        "budget_s": req.settings.budget,
        "fail_on": req.fail_on,
        "fold_bits": fold,
    }


def probe_record(
    probe: ProbeGroup, j: Judgement, shared_by: int, bit: int | None = None
) -> dict[str, Any]:
    """One probe; bit=None folds the probe group's bits into `bits`."""
    return {
        "layout": probe.layout.name,
        "abi": probe.layout.abi,
        "field": probe.field,
        "primitive": probe.primitive.name,
        "instruction": probe.primitive.description,
        "width": probe.primitive.width,
        # An op with no bit operand has no bit: null, one probe.
        "bit": (probe.bits.first if bit is None else bit) if probe.bits.ranges else None,
        "bits": (format_ranges(probe.bits.ranges) if bit is None else str(bit))
        if probe.bits.ranges
        else None,
        "bit_count": probe.bits.count if bit is None else 1,
        "align": probe.align,
        "placement": probe.placement,
        "access": {
            "offset": probe.access.offset,
            "size": probe.access.size,
            "line_offset": probe.access.offset % 64,
        },
        "predicted": probe.predicted.as_dict(),
        "measurement": {"id": probe.measurement, "shared_by": shared_by},
        # Evidence belongs to the physical measurement, which other probes may share.
        "evidence": [{**e.as_dict(), "measurement": probe.measurement} for e in j.evidence],
        "verdict": j.verdict,
        "agrees": j.agrees,
    }


def probe_records(result: ScanResult, fold: bool = True) -> Iterator[dict[str, Any]]:
    shared = result.shared_by()
    for probe, j in result.measured_probes():
        if fold or not probe.bits.ranges:
            yield probe_record(probe, j, shared[probe.measurement])
        else:
            for lo, hi in probe.bits.ranges:
                for b in range(lo, hi + 1):
                    yield probe_record(probe, j, shared[probe.measurement], b)


def baselines_section(result: ScanResult) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, index in result.plan.baselines.items():
        j = result.judgements.get(index)
        out[name] = None if j is None else [e.as_dict() for e in j.evidence]
    return out


def scan_document(result: ScanResult, fold: bool = True) -> dict[str, Any]:
    return {
        "schema": SCAN_SCHEMA,
        "tool": tool(),
        "host": host_section(result),
        "settings": settings_section(result, fold),
        "detectors": {k: v.as_dict() for k, v in result.detectors.items()},
        "kernel": kernel_section(result),
        "summary": result.summary(),
        "split_lock_cost": None if result.lock_cost is None else lock_cost_dict(result.lock_cost),
        "exit_status": int(result.exit_status()),
        "baselines": baselines_section(result),
        "probes": list(probe_records(result, fold)),
    }


def dumps(doc: dict[str, Any], list_key: str = "probes") -> str:
    """Pretty top level; the items of doc[list_key] one compact line each."""
    items = doc.get(list_key)
    if not isinstance(items, list):
        return json.dumps(doc, indent=2) + "\n"
    head = {k: v for k, v in doc.items() if k != list_key}
    text = json.dumps(head, indent=2)
    lines = ",\n".join("    " + json.dumps(item, separators=(",", ":")) for item in items)
    body = f"[\n{lines}\n  ]" if items else "[]"
    return text[:-2] + f',\n  "{list_key}": {body}\n}}\n'
