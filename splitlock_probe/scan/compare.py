"""What changed between two scans (two kernels, two hosts, two builds).

Cases are layout x field x primitive x placement, as in JUnit; `--by
placement` drops the primitive from the key, so a scan of the legacy op can
be held against one of the patched op (how the seed's fix is reviewed). A
case split when any of its probes split. A regression is a case that was
clean and now splits, or one that splits in the new scan and is absent from
the old (unless only the common cases are asked for). Latencies are
compared per primitive (its split ops and its aligned baseline); a change
counts only beyond the noise both scans show (the spread between their
fastest and median batches) and at least 15%.

Both inputs are checked against the scan schema first: a document this
module cannot read is a usage error naming the path and the place.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from splitlock_probe.errors import ExitStatus, UsageError
from splitlock_probe.model.layouts import layout_label
from splitlock_probe.scan.plan import fold_ranges, format_ranges, parse_bits
from splitlock_probe.scan.verdict import VERDICTS

# v1 differs only in what v2 adds: the faulted verdict, null bits for ops without one.
SCAN_SCHEMAS = ("splitlock-probe/scan/v2", "splitlock-probe/scan/v1")
MIN_CHANGE = 0.15
MAX_DOCUMENT_BYTES = 1 << 30  # a page-wide scan is ~14 MB; refuse what cannot be one
BY_CASE, BY_PLACEMENT = "case", "placement"
# Settings whose difference changes what the two scans measured.
COMPARED_SETTINGS = ("layouts", "fields", "primitives", "bits", "align", "span", "detectors")

Case = tuple[str, str, str, int]  # layout, field, primitive ("*" with --by placement), placement


@dataclass
class CaseState:
    verdict: str  # split | clean | faulted | inconclusive
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
    by: str = BY_CASE
    only_common: bool = False
    newly_split: list[tuple[Case, CaseState, CaseState]] = field(default_factory=list)
    fixed: list[tuple[Case, CaseState, CaseState]] = field(default_factory=list)
    changed: list[tuple[Case, CaseState, CaseState]] = field(default_factory=list)
    split_only_new: list[tuple[Case, CaseState]] = field(default_factory=list)
    common: int = 0
    only_old: int = 0
    only_new: int = 0
    settings_differ: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    latency: list[LatencyChange] = field(default_factory=list)
    detectors_gained: list[str] = field(default_factory=list)
    detectors_lost: list[str] = field(default_factory=list)
    new_complete: bool = True  # the new scan measured all it planned (no --budget, no Ctrl-C)

    @property
    def regressions(self) -> int:
        return len(self.newly_split) + (0 if self.only_common else len(self.split_only_new))

    @property
    def regression(self) -> bool:
        return self.regressions > 0

    def exit_status(self) -> ExitStatus:
        """`compare`'s policy: a placement that newly splits is a finding; a new
        scan cut short (by --budget or Ctrl-C) never passes, since what it did
        not measure may have regressed, unless --only-common asks for the
        cases both measured."""
        if self.regression:
            return ExitStatus.FINDING
        if not self.new_complete and not self.only_common:
            return ExitStatus.UNSUPPORTED
        return ExitStatus.OK


class _Invalid(Exception):
    def __init__(self, where: str, what: str) -> None:
        super().__init__(f"{where}: {what}")


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number JSON allows")


def load(path: str) -> dict[str, Any]:
    """A scan document, checked against the schema; UsageError (exit 2) otherwise."""
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_DOCUMENT_BYTES + 1)
    except OSError as exc:
        raise UsageError(f"{path}: {exc.strerror}") from None
    if len(raw) > MAX_DOCUMENT_BYTES:
        raise UsageError(f"{path}: larger than any scan document ({MAX_DOCUMENT_BYTES:,} bytes)")
    try:
        doc = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except UnicodeDecodeError:
        raise UsageError(f"{path}: not a `scan --json` document (not UTF-8 text)") from None
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path}: not JSON ({exc.msg} at line {exc.lineno})") from None
    except (ValueError, RecursionError) as exc:
        raise UsageError(f"{path}: not a `scan --json` document ({exc})") from None
    if not isinstance(doc, dict) or doc.get("schema") not in SCAN_SCHEMAS:
        got = doc.get("schema") if isinstance(doc, dict) else type(doc).__name__
        raise UsageError(
            f"{path}: not a `scan --json` document ({SCAN_SCHEMAS[0]}); got {str(got)[:80]!r}"
        )
    try:
        validate(doc)
    except _Invalid as exc:
        raise UsageError(f"{path}: not a valid scan document: {exc}") from None
    return doc


def _need(value: Any, kind: type | tuple[type, ...], where: str) -> Any:
    # bool is an int to Python, never to a schema
    if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        raise _Invalid(where, f"expected {_name(kind)}, got a boolean")
    if not isinstance(value, kind):
        raise _Invalid(where, f"expected {_name(kind)}, got {type(value).__name__}")
    return value


def _key_of(obj: dict[str, Any], key: str, where: str) -> Any:
    if key not in obj:
        raise _Invalid(f"{where}.{key}", "missing")
    return obj[key]


def _name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {dict: "an object", list: "a list", str: "a string", int: "an integer",
             float: "a number", type(None): "null", bool: "a boolean"}  # fmt: skip
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def _number(value: Any, where: str) -> float:
    number = float(_need(value, (int, float), where))
    if not math.isfinite(number):
        raise _Invalid(where, "not a finite number")
    return number


def _evidence(items: Any, where: str) -> None:
    for i, e in enumerate(_need(items, list, where)):
        at = f"{where}[{i}]"
        _need(e, dict, at)
        _need(_key_of(e, "detector", at), str, f"{at}.detector")
        for key in ("min_cycles", "median_cycles"):
            if key in e:
                _number(e[key], f"{at}.{key}")


def validate(doc: dict[str, Any]) -> None:
    """Every part of a scan document that compare reads, with the types it needs."""
    _need(doc.get("host", {}), dict, "host")
    settings = _need(doc.get("settings", {}), dict, "settings")
    _need(settings.get("detectors", []), list, "settings.detectors")
    for i, p in enumerate(_need(_key_of(doc, "probes", "document"), list, "probes")):
        at = f"probes[{i}]"
        _need(p, dict, at)
        for key in ("layout", "field", "primitive"):
            _need(_key_of(p, key, at), str, f"{at}.{key}")
        _need(_key_of(p, "placement", at), int, f"{at}.placement")
        _need(p.get("abi"), (str, type(None)), f"{at}.abi")  # older scans have none
        if _key_of(p, "verdict", at) not in VERDICTS:
            raise _Invalid(f"{at}.verdict", f"expected one of {', '.join(VERDICTS)}")
        bits = _need(_key_of(p, "bits", at), (str, type(None)), f"{at}.bits")
        if bits is not None and p["verdict"] == "split":
            try:
                parse_bits(bits)
            except ValueError as exc:
                raise _Invalid(f"{at}.bits", str(exc)) from None
        measurement = _need(_key_of(p, "measurement", at), dict, f"{at}.measurement")
        _need(_key_of(measurement, "id", f"{at}.measurement"), int, f"{at}.measurement.id")
        _evidence(_key_of(p, "evidence", at), f"{at}.evidence")
    baselines = _need(doc.get("baselines") or {}, dict, "baselines")
    for prim, evidence in baselines.items():
        if evidence is not None:
            _evidence(evidence, f"baselines.{prim}")


def _ranges(bits: set[int]) -> str:
    return format_ranges(fold_ranges(sorted(bits)))


def _key(p: dict[str, Any], by: str) -> Case:
    prim = p["primitive"] if by == BY_CASE else "*"
    return (layout_label(p["layout"], p.get("abi")), p["field"], prim, p["placement"])


def cases(doc: dict[str, Any], by: str = BY_CASE) -> dict[Case, CaseState]:
    verdicts: dict[Case, set[str]] = {}
    split_bits: dict[Case, set[int]] = {}
    for p in doc["probes"]:
        key = _key(p, by)
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


def _timings(evidence: list[dict[str, Any]]) -> Iterator[tuple[float, float]]:
    for e in evidence:
        if e["detector"] == "timing" and "min_cycles" in e and "median_cycles" in e:
            yield float(e["min_cycles"]), float(e["median_cycles"])


def _latencies(doc: dict[str, Any]) -> dict[tuple[str, str], tuple[float, float]]:
    """(primitive, split|aligned) -> (typical fastest cycles, relative noise)."""
    samples: dict[tuple[str, str], list[tuple[float, float]]] = {}
    seen: set[tuple[str, int]] = set()
    for p in doc["probes"]:
        if p["verdict"] != "split" or (p["primitive"], p["measurement"]["id"]) in seen:
            continue
        seen.add((p["primitive"], p["measurement"]["id"]))
        samples.setdefault((p["primitive"], "split"), []).extend(_timings(p["evidence"]))
    for prim, evidence in (doc.get("baselines") or {}).items():
        samples.setdefault((prim, "aligned"), []).extend(_timings(evidence or []))
    out = {}
    for key, pairs in samples.items():
        positive = [(lo, med) for lo, med in pairs if lo > 0]
        if positive:
            fastest = statistics.median(lo for lo, _ in positive)
            noise = statistics.median((med - lo) / lo for lo, med in positive)
            out[key] = (fastest, noise)
    return out


def _detectors(doc: dict[str, Any]) -> set[str]:
    return {str(d) for d in doc.get("settings", {}).get("detectors", [])}


def _settings_differ(old: dict[str, Any], new: dict[str, Any], by: str) -> dict[str, Any]:
    a, b = old.get("settings", {}), new.get("settings", {})
    keys = [k for k in COMPARED_SETTINGS if not (by == BY_PLACEMENT and k == "primitives")]
    return {k: (a.get(k), b.get(k)) for k in keys if a.get(k) != b.get(k)}


def compare(
    old_path: str, new_path: str, by: str = BY_CASE, only_common: bool = False
) -> Comparison:
    old, new = load(old_path), load(new_path)
    result = Comparison(
        old_path, new_path, old.get("host", {}), new.get("host", {}), by, only_common
    )
    before, after = cases(old, by), cases(new, by)
    common = sorted(before.keys() & after.keys())
    if not common:
        hint = "" if by == BY_PLACEMENT else "; --by placement compares across primitives"
        raise UsageError(
            "nothing to compare: the two scans share no case (layout, field, primitive, "
            f"placement){hint}"
        )
    result.common = len(common)
    for key in common:
        a, b = before[key], after[key]
        if a.verdict == b.verdict and a.split_bits == b.split_bits:
            continue
        entry = (key, a, b)
        if b.verdict == "split" and a.verdict in ("clean", "faulted"):
            result.newly_split.append(entry)
        elif a.verdict == "split" and b.verdict in ("clean", "faulted"):
            result.fixed.append(entry)
        else:
            result.changed.append(entry)
    only_new = sorted(after.keys() - before.keys())
    result.split_only_new = [(k, after[k]) for k in only_new if after[k].verdict == "split"]
    result.only_old = len(before.keys() - after.keys())
    result.only_new = len(only_new)
    result.settings_differ = _settings_differ(old, new, by)
    lat_old, lat_new = _latencies(old), _latencies(new)
    for prim, what in sorted(lat_old.keys() & lat_new.keys()):
        (o, noise_o), (n, noise_n) = lat_old[prim, what], lat_new[prim, what]
        threshold = max(MIN_CHANGE, noise_o, noise_n)
        if o > 0 and n > 0 and abs(math.log(n / o)) > math.log(1 + threshold):
            result.latency.append(LatencyChange(prim, what, o, n, threshold))
    result.new_complete = new.get("summary", {}).get("complete") is not False
    result.detectors_gained = sorted(_detectors(new) - _detectors(old))
    result.detectors_lost = sorted(_detectors(old) - _detectors(new))
    return result
