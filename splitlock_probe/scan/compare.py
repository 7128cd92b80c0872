"""What changed between two scans (two kernels, two hosts, two builds).

Cases are layout x field x primitive x placement, as in JUnit. A case split
when any of its probes split. A regression is a case that was clean and now
splits. Latencies are compared per primitive (its split ops and its aligned
baseline); a change counts only beyond the noise both scans show (the
spread between their fastest and median batches) and at least 15%.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from splitlock_probe.errors import ExitStatus, UsageError

# v1 differs only in what v2 adds: the faulted verdict, null bits for ops without one.
SCAN_SCHEMAS = ("splitlock-probe/scan/v2", "splitlock-probe/scan/v1")
MIN_CHANGE = 0.15

Case = tuple[str, str, str, int]


@dataclass
class CaseState:
    verdict: str  # split | clean | inconclusive
    split_bits: str  # range list, "" when none split

    def as_dict(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "split_bits": self.split_bits}


@dataclass(frozen=True)
class LatencyChange:
    primitive: str
    what: str  # "split" | "aligned"
    old_cycles: float
    new_cycles: float
    threshold: float  # relative change that counts as beyond noise

    @property
    def ratio(self) -> float:
        return self.new_cycles / self.old_cycles

    def as_dict(self) -> dict[str, Any]:
        return {
            "primitive": self.primitive,
            "what": self.what,
            "old_cycles": round(self.old_cycles, 2),
            "new_cycles": round(self.new_cycles, 2),
            "ratio": round(self.ratio, 3),
            "threshold": round(self.threshold, 3),
        }


@dataclass
class Comparison:
    old_path: str
    new_path: str
    old_host: dict[str, Any]
    new_host: dict[str, Any]
    newly_split: list[tuple[Case, CaseState, CaseState]] = field(default_factory=list)
    fixed: list[tuple[Case, CaseState, CaseState]] = field(default_factory=list)
    changed: list[tuple[Case, CaseState, CaseState]] = field(default_factory=list)
    only_old: int = 0
    only_new: int = 0
    latency: list[LatencyChange] = field(default_factory=list)
    detectors_gained: list[str] = field(default_factory=list)
    detectors_lost: list[str] = field(default_factory=list)

    @property
    def regression(self) -> bool:
        return bool(self.newly_split)

    def exit_status(self) -> ExitStatus:
        """`compare`'s policy: a placement that newly splits is a finding."""
        return ExitStatus.FINDING if self.regression else ExitStatus.OK


def load(path: str) -> dict[str, Any]:
    try:
        doc = json.loads(Path(path).read_text())
    except OSError as exc:
        raise UsageError(f"{path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path}: not JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(doc, dict) or doc.get("schema") not in SCAN_SCHEMAS:
        got = doc.get("schema") if isinstance(doc, dict) else type(doc).__name__
        raise UsageError(f"{path}: not a `scan --json` document ({SCAN_SCHEMAS[0]}); got {got}")
    return doc


def _ranges(bits: set[int]) -> str:
    from splitlock_probe.scan.plan import fold_ranges, format_ranges

    return format_ranges(fold_ranges(sorted(bits)))


def cases(doc: dict[str, Any]) -> dict[Case, CaseState]:
    from splitlock_probe.scan.plan import parse_bits

    verdicts: dict[Case, set[str]] = {}
    split_bits: dict[Case, set[int]] = {}
    for p in doc["probes"]:
        key = (p["layout"], p["field"], p["primitive"], int(p["placement"]))
        verdicts.setdefault(key, set()).add(p["verdict"])
        if p["verdict"] == "split":
            bits = split_bits.setdefault(key, set())
            if p["bits"] is not None:
                bits.update(parse_bits(str(p["bits"])))
    out = {}
    for key, seen in verdicts.items():
        if "split" in seen:
            verdict = "split"
        elif seen == {"faulted"}:
            verdict = "faulted"
        elif seen <= {"clean", "faulted"}:
            verdict = "clean"  # no lock split: the op stayed in a line or never ran
        else:
            verdict = "inconclusive"
        out[key] = CaseState(verdict, _ranges(split_bits.get(key, set())))
    return out


def _latencies(doc: dict[str, Any]) -> dict[tuple[str, str], tuple[float, float]]:
    """(primitive, split|aligned) -> (typical fastest cycles, relative noise)."""
    samples: dict[tuple[str, str], list[tuple[float, float]]] = {}
    seen: set[tuple[str, int]] = set()
    for p in doc["probes"]:
        if p["verdict"] != "split" or (p["primitive"], p["measurement"]["id"]) in seen:
            continue
        seen.add((p["primitive"], p["measurement"]["id"]))
        for e in p["evidence"]:
            if e["detector"] == "timing" and "min_cycles" in e:
                samples.setdefault((p["primitive"], "split"), []).append(
                    (e["min_cycles"], e["median_cycles"])
                )
    for prim, evidence in (doc.get("baselines") or {}).items():
        for e in evidence or []:
            if e["detector"] == "timing" and "min_cycles" in e:
                samples.setdefault((prim, "aligned"), []).append(
                    (e["min_cycles"], e["median_cycles"])
                )
    out = {}
    for key, pairs in samples.items():
        fastest = statistics.median(lo for lo, _ in pairs)
        noise = statistics.median((med - lo) / lo for lo, med in pairs if lo > 0)
        out[key] = (fastest, noise)
    return out


def _detectors(doc: dict[str, Any]) -> set[str]:
    return set(doc.get("settings", {}).get("detectors", []))


def compare(old_path: str, new_path: str) -> Comparison:
    old, new = load(old_path), load(new_path)
    result = Comparison(old_path, new_path, old.get("host", {}), new.get("host", {}))
    before, after = cases(old), cases(new)
    for key in sorted(before.keys() & after.keys()):
        a, b = before[key], after[key]
        if a.verdict == b.verdict and a.split_bits == b.split_bits:
            continue
        entry = (key, a, b)
        if b.verdict == "split" and a.verdict == "clean":
            result.newly_split.append(entry)
        elif a.verdict == "split" and b.verdict == "clean":
            result.fixed.append(entry)
        else:
            result.changed.append(entry)
    result.only_old = len(before.keys() - after.keys())
    result.only_new = len(after.keys() - before.keys())
    lat_old, lat_new = _latencies(old), _latencies(new)
    for prim, what in sorted(lat_old.keys() & lat_new.keys()):
        (o, noise_o), (n, noise_n) = lat_old[prim, what], lat_new[prim, what]
        threshold = max(MIN_CHANGE, noise_o, noise_n)
        if o > 0 and abs(math.log(n / o)) > math.log(1 + threshold):
            result.latency.append(LatencyChange(prim, what, o, n, threshold))
    result.detectors_gained = sorted(_detectors(new) - _detectors(old))
    result.detectors_lost = sorted(_detectors(old) - _detectors(new))
    return result
