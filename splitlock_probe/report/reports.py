"""Each command's result as a Report (outputs.py): the formats it claims, and
how each format sees it. Drawing imports rich only when it is asked for."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from splitlock_probe.errors import UsageError
from splitlock_probe.report.outputs import OutputFormat

if TYPE_CHECKING:
    from rich.console import Console

    from splitlock_probe.detectors import Availability
    from splitlock_probe.host.cost import Cost
    from splitlock_probe.host.state import HostState
    from splitlock_probe.log.read import LogRead
    from splitlock_probe.run.result import RunResult
    from splitlock_probe.scan.compare import Comparison
    from splitlock_probe.scan.request import ScanResult, SingleProbe
    from splitlock_probe.watch.session import Snapshot

TEXT, JSON, JUNIT, SVG, HTML, CSV = (
    OutputFormat.TEXT,
    OutputFormat.JSON,
    OutputFormat.JUNIT,
    OutputFormat.SVG,
    OutputFormat.HTML,
    OutputFormat.CSV,
)
PEOPLE_AND_PROGRAMS = frozenset({TEXT, JSON, SVG, HTML, CSV})


class _NoJunit:
    """For reports without a JUnit form (render() refuses before asking)."""

    title = "report"

    def junit(self) -> str:
        raise UsageError(f"{self.title} has no junit output")


@dataclass
class ScanReport:
    result: ScanResult
    fold: bool = True
    quiet: bool = False  # --quiet: no header lines before the table
    title = "splitlock-probe scan"
    formats = frozenset({TEXT, JSON, JUNIT, SVG, HTML, CSV})
    list_key = "probes"

    def draw(self, console: Console) -> None:
        from splitlock_probe.report.scanview import draw_scan

        draw_scan(self.result, console, self.quiet)

    def document(self) -> dict[str, Any]:
        from splitlock_probe.report.jsondoc import scan_document

        return scan_document(self.result, fold=self.fold)

    def table(self) -> list[dict[str, Any]]:
        return list(self.document()["probes"])

    def junit(self) -> str:
        from splitlock_probe.report.junit import scan_junit

        return scan_junit(self.result)


@dataclass
class ProbeReport(_NoJunit):
    result: SingleProbe
    title = "splitlock-probe probe"
    formats = PEOPLE_AND_PROGRAMS
    list_key = None

    def draw(self, console: Console) -> None:
        from splitlock_probe.report.probeview import draw_probe

        draw_probe(self.result, console)

    def document(self) -> dict[str, Any]:
        from splitlock_probe.report.probeview import probe_document

        return probe_document(self.result)

    def table(self) -> list[dict[str, Any]]:
        doc = self.document()
        return [{"role": role, **e} for role in ("baseline", "evidence") for e in doc[role]]


@dataclass
class HostReport(_NoJunit):
    state: HostState
    detectors: dict[str, Availability]
    cost: Cost | None = None
    cost_note: str | None = None
    title = "splitlock-probe host"
    formats = PEOPLE_AND_PROGRAMS
    list_key = None

    def draw(self, console: Console) -> None:
        from splitlock_probe.report.hostview import draw_host

        draw_host(self.state, self.detectors, console, self.cost, self.cost_note)

    def document(self) -> dict[str, Any]:
        from splitlock_probe.report.hostview import host_document

        return host_document(self.state, self.detectors, self.cost, self.cost_note)

    def table(self) -> list[dict[str, Any]]:
        return [{"detector": name, **d} for name, d in self.document()["detectors"].items()]


@dataclass
class LogReport(_NoJunit):
    read: LogRead
    wall_clock: bool = False  # -T: since-boot stamps as dates, where the boot time is known
    title = "splitlock-probe log"
    formats = PEOPLE_AND_PROGRAMS
    list_key = "events"

    def draw(self, console: Console) -> None:
        from splitlock_probe.report.logview import draw_log

        draw_log(self.read, console, self.wall_clock)

    def document(self) -> dict[str, Any]:
        from splitlock_probe.report.logview import log_document

        return log_document(self.read)

    def table(self) -> list[dict[str, Any]]:
        return list(self.document()["events"])


@dataclass
class CompareReport(_NoJunit):
    comparison: Comparison
    title = "splitlock-probe compare"
    formats = PEOPLE_AND_PROGRAMS
    list_key = None

    def draw(self, console: Console) -> None:
        from splitlock_probe.report.compareview import draw_compare

        draw_compare(self.comparison, console)

    def document(self) -> dict[str, Any]:
        from splitlock_probe.report.compareview import compare_document

        return compare_document(self.comparison)

    def table(self) -> list[dict[str, Any]]:
        doc = self.document()
        changes = ("newly_split", "split_only_new", "fixed", "changed")
        return [{"change": c, **row} for c in changes for row in doc[c]]


@dataclass
class RunReport:
    result: RunResult
    quiet: bool = False  # --quiet: no header lines before the tables
    title = "splitlock-probe run"
    formats = frozenset({TEXT, JSON, JUNIT, SVG, HTML, CSV})
    list_key = "threads"

    def draw(self, console: Console) -> None:
        from splitlock_probe.report.runview import draw_run

        draw_run(self.result, console, self.quiet)

    def document(self) -> dict[str, Any]:
        from splitlock_probe.report.runview import run_document

        return run_document(self.result)

    def table(self) -> list[dict[str, Any]]:
        """The traced sites with --trace, else the threads that trapped."""
        doc = self.document()
        return list(doc["trace"]["sites"] if doc.get("trace") else doc["threads"])

    def junit(self) -> str:
        from splitlock_probe.report.runview import run_junit

        return run_junit(self.result)


@dataclass
class WatchReport(_NoJunit):
    snapshot: Snapshot
    title = "splitlock-probe watch"
    formats = PEOPLE_AND_PROGRAMS
    list_key = "processes"

    def draw(self, console: Console) -> None:
        from splitlock_probe.report.watchview import draw_watch

        draw_watch(self.snapshot, console)

    def document(self) -> dict[str, Any]:
        from splitlock_probe.report.watchview import watch_document

        return watch_document(self.snapshot)

    def table(self) -> list[dict[str, Any]]:
        return list(self.document()["processes"])


@dataclass
class CostReport(_NoJunit):
    cost: Cost
    title = "splitlock-probe cost"
    formats = PEOPLE_AND_PROGRAMS
    list_key = None

    def draw(self, console: Console) -> None:
        from splitlock_probe.report.costview import draw_cost

        draw_cost(self.cost, console)

    def document(self) -> dict[str, Any]:
        from splitlock_probe.report.costview import cost_document

        return cost_document(self.cost)

    def table(self) -> list[dict[str, Any]]:
        """One row: every measured number of the cost (the histogram stays in JSON)."""
        doc = self.document()
        return [{k: v for k, v in doc.items() if k not in ("tool", "histogram")}]


@dataclass
class LayoutReport(_NoJunit):
    rows: list[Any]  # (structs.types.Struct, [structs.hazards.FieldHazard])
    op: str | None = None
    title = "splitlock-probe layout"
    formats = PEOPLE_AND_PROGRAMS
    list_key = None

    def draw(self, console: Console) -> None:
        from splitlock_probe.report.layoutview import draw_layout

        draw_layout(self.rows, console)

    def document(self) -> dict[str, Any]:
        from splitlock_probe.report.layoutview import layout_document

        return layout_document(self.rows, self.op)

    def table(self) -> list[dict[str, Any]]:
        from splitlock_probe.report.csvform import nested

        return nested(self.document()["structs"], "fields", "struct")


@dataclass
class PrimitivesReport(_NoJunit):
    rows: list[dict[str, Any]] = field(default_factory=list)
    title = "splitlock-probe primitives"
    formats = frozenset({TEXT, JSON, CSV})
    list_key = None

    def __post_init__(self) -> None:
        from splitlock_probe.model.access import PRIMITIVES

        self.rows = [
            {"name": p.name, "width": p.width, "form": p.form.value, "instruction": p.description}
            for p in PRIMITIVES.values()
        ]

    def draw(self, console: Console) -> None:
        from splitlock_probe.model.access import ALIASES

        width = max(len(r["name"]) for r in self.rows)
        for r in self.rows:
            console.print(f"{r['name']:<{width}}  {r['width']:>2} bytes  {r['instruction']}")
        console.print("aliases: " + ", ".join(f"{k} = {v}" for k, v in ALIASES.items()))

    def document(self) -> dict[str, Any]:
        from splitlock_probe.model.access import ALIASES

        return {
            "schema": "splitlock-probe/primitives/v1",
            "primitives": self.rows,
            "aliases": ALIASES,
        }

    def table(self) -> list[dict[str, Any]]:
        return list(self.rows)


@dataclass
class AuditReport:
    result: Any  # audit.files.AuditResult
    every: bool = False  # --all: list clean and unresolved sites too
    title = "splitlock-probe audit"
    formats = frozenset({TEXT, JSON, JUNIT, SVG, HTML, CSV})
    list_key = None

    def draw(self, console: Console) -> None:
        from splitlock_probe.report.auditview import draw_audit

        draw_audit(self.result, console, self.every)

    def document(self) -> dict[str, Any]:
        from splitlock_probe.report.auditview import audit_document

        return audit_document(self.result)

    def table(self) -> list[dict[str, Any]]:
        from splitlock_probe.report.csvform import nested

        return nested(self.document()["files"], "sites", "file")

    def junit(self) -> str:
        from splitlock_probe.report.auditview import audit_junit

        return audit_junit(self.result)
