"""`scan` for people: a header, the summary table, the cache-line map, a verdict line."""

from __future__ import annotations

from rich.console import Console
from rich.text import Text

from splitlock_probe.report.aggregate import rows
from splitlock_probe.report.cachemap import cache_map
from splitlock_probe.report.table import summary_tables
from splitlock_probe.scan.request import ScanResult
from splitlock_probe.text import counted, shown


def header(result: ScanResult) -> Text:
    cpu = result.cpu
    parts = [shown(cpu.model_name or cpu.vendor or "unknown CPU")]
    if cpu.identity:
        parts.append(cpu.identity)
    if cpu.hypervisor:
        parts.append("virtual machine")
    if result.run.tsc_hz:
        parts.append(f"TSC {result.run.tsc_hz / 1e9:.2f} GHz")
    text = Text("host: " + ", ".join(parts) + "\n", style="dim")
    k = result.host.kernel
    text.append(f"kernel: split-lock mode {k.effective_mode} ({k.mode_source})", style="dim")
    text.append("; 10 ms penalty per trapped split lock\n" if k.misery else "\n", style="dim")
    for name, avail in result.detectors.items():
        used = name in result.request.settings.detectors
        mark = (
            "used" if used else ("available, not asked for" if avail.available else "unavailable")
        )
        text.append(f"detector {name}: {mark}: {avail.reason}\n", style="dim")
    return text


def _counter_totals(result: ScanResult) -> list[str]:
    """Per event: how much the perf detector counted in split and in clean measurements."""
    totals: dict[str, dict[str, int]] = {}
    for j in result.judgements.values():
        for e in j.evidence:
            if e.detector == "perf" and e.status == "ok":
                for name, value in e.data["counts"].items():
                    by_verdict = totals.setdefault(name, {})
                    by_verdict[j.verdict] = by_verdict.get(j.verdict, 0) + (value or 0)
    return [
        f"{name} "
        + ", ".join(f"{n:,} in {verdict} measurements" for verdict, n in sorted(v.items()))
        for name, v in totals.items()
    ]


def footer(result: ScanResult) -> Text:
    s = result.summary()
    text = Text()
    measured = s["probes_measured"]
    text.append(f"{counted(measured if isinstance(measured, int) else 0, 'probe')} measured: ")
    text.append(f"{s['split']:,} split", style="bold red" if s["split"] else "green")
    text.append(f", {s['clean']:,} clean")
    if s["faulted"]:
        text.append(f", {s['faulted']:,} faulted (#GP)")
    text.append(f", {s['inconclusive']:,} inconclusive. ")
    decided = sum(int(s[k] or 0) for k in ("split", "clean", "faulted"))
    if s["disagreements"]:
        text.append(f"{s['disagreements']:,} disagree with the model.", style="bold red")
    elif not s["probes_measured"]:
        why = {"budget": "--budget ran out first", "interrupted": "interrupted"}.get(
            str(s["stopped"]), "no measurement finished"
        )
        text.append(f"Nothing was measured ({why}): nothing is proven.", style="bold yellow")
    elif not decided:
        text.append(
            "No probe got a verdict: nothing was held against the model.", style="bold yellow"
        )
    elif s["inconclusive"]:
        text.append(
            f"Every decided verdict agrees with the model; {s['inconclusive']:,} could not "
            "be decided.",
            style="yellow",
        )
    else:
        text.append("Every verdict agrees with the model.", style="green")
    text.append(
        f"\n{s['measurements_done']:,} physical measurements "
        f"(probes touching the same bytes with the same op share one)."
    )
    if result.lock_cost is not None:
        klass, reason = result.lock_cost.classification
        text.append(f"\nsplit lock cost here: {klass}: {reason}.")
    elif result.lock_cost_note:
        text.append(f"\nsplit lock cost here: {result.lock_cost_note}.", style="dim")
    if s["measurements_failed"]:
        text.append(
            f"\n{s['measurements_failed']} measurements failed (worker crashed or timed out; "
            f"{s['worker_restarts']} restarts); their probes are inconclusive.",
            style="yellow",
        )
    if result.log is not None:
        log = result.log.as_dict()
        suppressed = sum(log["suppressed"].values())
        text.append(
            f"\nkernel log: {log['attributed']} trap lines matched to probes"
            f", {log['other_tasks']} from other tasks"
            + (f", {suppressed} suppressed by the ratelimit" if suppressed else "")
            + f"; {'paced' if log['paced'] else 'not paced'} ({log['pace_reason']}).",
            style="yellow" if suppressed else "",
        )
    totals = _counter_totals(result)
    if totals:
        text.append("\ncounters: " + "; ".join(totals) + ".")
    penalty = result.penalty_ms()
    if penalty is not None:
        text.append(f"\npenalty active: {penalty:g} ms per split lock.", style="bold yellow")
    if result.run.stopped:
        why = "interrupted" if result.run.interrupted else "--budget spent"
        text.append(
            f"\n{why}: {s['measurements_done']:,} of {s['measurements']:,} "
            "measurements done; this report covers those only.",
            style="bold yellow",
        )
    return text


def draw_scan(result: ScanResult, console: Console, quiet: bool = False) -> None:
    table_rows = rows(result)
    if not quiet:
        console.print(header(result))
    for table in summary_tables(table_rows, console, result.run.tsc_hz):
        console.print(table)
    console.print()
    console.print(cache_map(table_rows, console.width))
    console.print()
    console.print(footer(result))
