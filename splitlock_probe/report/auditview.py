"""`audit`: a table of sites per file and a summary for people; audit/v1 for
programs; a JUnit case per site."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING, Any

from splitlock_probe import __version__
from splitlock_probe.audit.files import AuditResult
from splitlock_probe.audit.sites import CLEAN, HAZARD, KINDS, SPLIT, UNRESOLVED, AuditSite
from splitlock_probe.text import shown, xml_safe

if TYPE_CHECKING:
    from rich.console import Console

AUDIT_SCHEMA = "splitlock-probe/audit/v1"
STYLE = {SPLIT: "bold red", HAZARD: "yellow", CLEAN: "green", UNRESOLVED: "dim"}


def audit_document(result: AuditResult) -> dict[str, Any]:
    from splitlock_probe.report.jsondoc import tool

    return {
        "schema": AUDIT_SCHEMA,
        "tool": tool(),
        "fail_on": result.fail_on,
        "complete": not result.interrupted,
        "summary": {
            "files": len(result.files),
            "sites": result.sites,
            **{k: result.count(k) for k in KINDS},
        },
        "files": [
            {
                "path": f.path,
                "abi": f.abi,
                "type": f.type,
                "debug": f.debug,
                "error": f.error,
                "counts": {k: f.count(k) for k in KINDS},
                "sites": [s.as_dict() for s in f.sites],
            }
            for f in result.files
        ],
    }


def _site_name(s: AuditSite) -> str:
    return shown(s.symbol) if s.symbol else f"{s.section}+{s.address:#x}"


def draw_audit(result: AuditResult, console: Console, every: bool = False) -> None:
    from rich.text import Text

    from splitlock_probe.report.siteblock import site_grid, site_lines

    for f in result.files:
        if f.error:
            console.print(Text(f"{shown(f.path)}: {f.error}", style="yellow"))
            continue
        head = f"{shown(f.path)} ({f.abi}, {f.type})"
        counts = ", ".join(f"{f.count(k):,} {k}" for k in KINDS)
        console.print(Text(f"{head}: {len(f.sites):,} locked instructions: {counts}"))
        if f.debug is None:
            console.print(Text("  no DWARF (nor a debug file by build-id): no source lines or "
                               "members", style="dim"))  # fmt: skip
        shown_sites = [s for s in f.sites if every or s.kind in (SPLIT, HAZARD)]
        if not shown_sites:
            continue
        t = site_grid()
        for s in shown_sites:
            where = _site_name(s) + (f" ({shown(s.source)})" if s.source else "")
            lines = site_lines(where, s.instruction, s.data)
            if s.hint is not None:
                lines.append(f"  {shown(s.hint.words())}")
            t.add_row(Text(s.kind, style=STYLE[s.kind]), "\n".join(lines))
        console.print(t)
    hidden = sum(f.count(CLEAN) + f.count(UNRESOLVED) for f in result.files)
    if hidden and not every:
        console.print(Text(f"{hidden:,} clean or unresolved sites not listed (--all lists them; "
                           "--json has every one)", style="dim"))  # fmt: skip
    if result.interrupted:
        console.print(Text("interrupted: the files above were audited, the rest were not",
                           style="bold yellow"))  # fmt: skip


def audit_junit(result: AuditResult) -> str:
    from splitlock_probe.report.junit import document

    suite = ET.Element("testsuite")
    props = ET.SubElement(suite, "properties")
    ET.SubElement(props, "property", name="tool", value=f"splitlock-probe {__version__}")
    ET.SubElement(props, "property", name="fail_on", value=result.fail_on)
    failures = skipped = tests = 0
    for f in result.files:
        for s in f.sites:
            tests += 1
            case = ET.SubElement(suite, "testcase", name=xml_safe(
                f"{s.kind}: {s.instruction} at {s.symbol or hex(s.address)}"),
                classname=xml_safe(f"splitlock_probe.audit.{f.path}"))  # fmt: skip
            failing = s.kind == SPLIT and result.fail_on in (SPLIT, HAZARD)
            failing |= s.kind == HAZARD and result.fail_on == HAZARD
            words = f"{s.why}; {s.data.words() if s.data else s.operand}"
            if failing:
                failures += 1
                ET.SubElement(case, "failure", type=s.kind, message=xml_safe(words))
            elif s.kind == UNRESOLVED:
                skipped += 1
                ET.SubElement(case, "skipped", message=xml_safe(words))
            out = f"{s.source or '-'}: {words}"
            ET.SubElement(case, "system-out").text = xml_safe(out)
    return document(suite, "splitlock-probe audit", tests, failures, skipped, result.seconds,
                    result.started)  # fmt: skip
