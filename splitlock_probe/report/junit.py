"""JUnit XML for CI: one test case per layout x field x primitive x placement.

The shape Jenkins (xunit's junit-10.xsd) and GitLab read: <testsuites> around
one <testsuite> with name/tests/failures/errors/skipped/time/timestamp/
hostname, <properties>, and <testcase name classname time>. A case fails
where the policy forbids what was found (a split under --fail-on split) or
where the verdict contradicts the model; it is skipped where nothing could
be measured. The evidence is in the failure message and in system-out.
"""

from __future__ import annotations

import socket
import xml.etree.ElementTree as ET
from collections.abc import Iterator

from splitlock_probe import __version__
from splitlock_probe.report.words import evidence_text, model_words
from splitlock_probe.scan.plan import ProbeGroup, format_ranges
from splitlock_probe.scan.request import ScanResult
from splitlock_probe.scan.verdict import SPLIT, Judgement
from splitlock_probe.text import xml_safe

Case = tuple[str, str, str, int]  # layout, field, primitive, placement


def _cases(result: ScanResult) -> Iterator[tuple[Case, list[tuple[ProbeGroup, Judgement | None]]]]:
    cases: dict[Case, list[tuple[ProbeGroup, Judgement | None]]] = {}
    for probe in result.plan.probes:
        key = (probe.layout.label, probe.field, probe.primitive.name, probe.placement)
        cases.setdefault(key, []).append((probe, result.judgements.get(probe.measurement)))
    yield from cases.items()


def _line(probe: ProbeGroup, j: Judgement | None) -> str:
    a = probe.access
    bits = f"bits {format_ranges(probe.bits.ranges)}: " if probe.bits.ranges else ""
    where = f"{bits}bytes {a.offset}..{a.offset + a.size - 1}"
    where += f" (line offset {a.offset % 64})"
    model = model_words(probe.predicted)
    if j is None:
        return f"{where}: not measured; model {model}"
    agrees = {True: "agrees", False: "DISAGREES", None: "inconclusive"}[j.agrees]
    said = "; ".join(evidence_text(e) for e in j.evidence)
    return f"{where}: {j.verdict} ({agrees}; model {model}); {said}"


def _align(result: ScanResult) -> str:
    align = result.request.align_setting
    return "each struct's own" if align is None else str(align)


def _seconds(result: ScanResult, groups: list[tuple[ProbeGroup, Judgement | None]]) -> float:
    total = 0.0
    for m in {p.measurement for p, _ in groups}:
        outcome = result.run.outcomes.get(m)
        if outcome is not None and outcome.usage is not None:
            total += outcome.usage["wall_s"]
    return total


def _unmeasured_reason(result: ScanResult) -> str:
    if result.run.stopped == "interrupted":
        return "not measured: the scan was interrupted"
    if result.run.stopped == "budget":
        return "not measured: --budget ran out"
    return "not measured: no detector observed these probes (see system-out)"


def scan_junit(result: ScanResult) -> str:
    fail_on_split = result.request.fail_on == SPLIT
    suite = ET.Element("testsuite")
    props = ET.SubElement(suite, "properties")
    cpu = result.cpu
    for name, value in (
        ("tool", f"splitlock-probe {__version__}"),
        ("cpu", cpu.model_name or cpu.vendor or "unknown"),
        ("split_lock_mode", result.host.kernel.effective_mode),
        ("detectors", ",".join(result.request.settings.detectors)),
        ("align", _align(result)),
        ("span", result.request.span.value),
        ("fail_on", result.request.fail_on),
        ("complete", str(result.run.stopped is None).lower()),
    ):
        ET.SubElement(props, "property", name=name, value=value)
    tests = failures = skipped = 0
    for (layout, field, prim, placement), groups in _cases(result):
        tests += 1
        case = ET.SubElement(
            suite,
            "testcase",
            name=f"{layout}.{field} {prim} at placement {placement}",
            classname=f"splitlock_probe.scan.{layout}.{field}.{prim}",
            time=f"{_seconds(result, groups):.6f}",
        )
        lines = [_line(p, j) for p, j in groups]
        wrong = [
            line for (_, j), line in zip(groups, lines, strict=True) if j and j.agrees is False
        ]
        split = [
            line for (_, j), line in zip(groups, lines, strict=True) if j and j.verdict == SPLIT
        ]
        measured = any(j is not None and j.measured for _, j in groups)
        if wrong:
            failures += 1
            f = ET.SubElement(case, "failure", type="disagreement")
            f.set("message", "the verdict contradicts the model: " + wrong[0])
            f.text = "\n".join(wrong)
        elif fail_on_split and split:
            failures += 1
            f = ET.SubElement(case, "failure", type="split")
            f.set("message", "split lock: " + split[0])
            f.text = "\n".join(split)
        elif not measured:
            skipped += 1
            ET.SubElement(case, "skipped", message=_unmeasured_reason(result))
        ET.SubElement(case, "system-out").text = "\n".join(lines)
    return document(suite, "splitlock-probe scan", tests, failures, skipped,
                    result.run.elapsed_s, result.run.started)  # fmt: skip


def _xml_safe(root: ET.Element) -> None:
    """What XML 1.0 cannot hold, even escaped, shown as \\xNN: a thread name, a
    symbol or an argument with a control character must not break the file."""
    for el in root.iter():
        el.attrib.update({k: xml_safe(v) for k, v in el.attrib.items()})
        if el.text:
            el.text = xml_safe(el.text)
        if el.tail:
            el.tail = xml_safe(el.tail)


def document(
    suite: ET.Element,
    name: str,
    tests: int,
    failures: int,
    skipped: int,
    seconds: float,
    started: str,
) -> str:
    """The XML text: the suite's counts filled in, inside <testsuites>."""
    suite.attrib.update(
        name=name,
        tests=str(tests),
        failures=str(failures),
        errors="0",
        skipped=str(skipped),
        time=f"{seconds:.3f}",
        timestamp=started,
        hostname=socket.gethostname(),
    )
    root = ET.Element(
        "testsuites",
        name="splitlock-probe",
        tests=str(tests),
        failures=str(failures),
        errors="0",
        time=f"{seconds:.3f}",
    )
    root.append(suite)
    _xml_safe(root)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
