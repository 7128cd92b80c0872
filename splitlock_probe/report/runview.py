"""`run -- CMD` for people (a table per thread), programs (run/v1) and CI (JUnit)."""

from __future__ import annotations

import platform
import shlex
import signal
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING, Any

from splitlock_probe import __version__
from splitlock_probe.host.cost import estimate, estimate_words
from splitlock_probe.host.kmsg.messages import BUS_LOCK, SPLIT_LOCK
from splitlock_probe.run.result import RunResult, Site, sites
from splitlock_probe.run.trace.choose import BREAKPOINT
from splitlock_probe.text import counted, shown

if TYPE_CHECKING:
    from rich.console import Console

    from splitlock_probe.run.trace.sites import TraceResult

RUN_SCHEMA = "splitlock-probe/run/v1"


def _detectors_used(result: RunResult) -> list[str]:
    return list(result.request.detectors)


def notes(result: RunResult) -> list[str]:
    """What the numbers mean, and what could not be seen."""
    out: list[str] = []
    used = _detectors_used(result)
    if not used:
        out.append(
            "no detector on this host can see split locks, so this run proves nothing "
            "about them: "
            + "; ".join(f"{n}: {a.reason}" for n, a in result.detectors.items())
            + ". `run --trace` sees every misaligned locked op on any x86 host, this one "
            "included"
        )
    if result.trap_lines[SPLIT_LOCK]:
        out.append(
            "#AC lines come once per thread: counts are threads that split-locked, "
            "not split locks (hardware counters give true counts)"
        )
    for kind, label in ((SPLIT_LOCK, "split-lock"), (BUS_LOCK, "bus-lock")):
        if result.tally.suppressed[kind]:
            out.append(
                f"the kernel suppressed {result.tally.suppressed[kind]:,} {label} lines while "
                "the command ran (printk ratelimit): some threads may be missing"
            )
    if result.killed_by_agent_trap == signal.SIGBUS:
        out.append(
            "the command died of SIGBUS under the agent: a program that blocks SIGBUS or "
            "installs its handler with raw system calls (not through the C library, which "
            "the agent wraps) dies of the agent's alignment trap, where untraced it would "
            "not; --trace=ptrace handles both (a real bus error looks the same)"
        )
    elif result.killed_by_agent_trap == signal.SIGTRAP:
        out.append(
            "the command died of SIGTRAP under the agent's breakpoints: a program that "
            "blocks SIGTRAP or installs its handler with raw system calls (not through the "
            "C library, which the agent wraps) dies at the first watched locked op, where "
            "untraced it would not; --trace=ptrace handles both"
        )
    if result.fatal_sigbus:
        out.append(
            "fatal mode: the command died of SIGBUS, which is how this kernel stops a "
            "split lock (a real bus error looks the same)"
        )
    if result.tracking_note:
        out.append(f"threads were found by {result.tracking}: {result.tracking_note}")
    if result.tracking_lost:
        out.append(f"the kernel dropped {result.tracking_lost:,} task records (a ring was full)")
    if result.overwritten:
        out.append(f"{result.overwritten:,} kernel log records were overwritten before being read")
    if result.counter_error:
        out.append(f"counters: {result.counter_error}")
    if result.counters_scaled:
        out.append("counters were multiplexed; counts are scaled estimates")
    if result.descendants_left:
        why = "--exit-with-command" if result.request.exit_with_command else "interrupted"
        ac = ""
        if result.trace is not None and result.trace.mechanism == "agent":
            kept = (
                "the alignment check on"
                if result.trace.method == "alignment"
                else ("their breakpoints, and images they load later go unwatched")
            )
            ac = f"; they keep {kept} (the agent lives in them)"
        out.append(
            f"{result.descendants_left:,} descendants of the command were still alive when "
            f"run stopped following ({why}): what they do after that is not seen{ac}"
        )
    if result.trace is not None and result.trace.split:
        out.append(estimate_words(estimate(result.trace.split, result.lock_cost)))
    if result.request.fail_on != "none" and not result.split and (gaps := result.log_gaps()):
        out.append(
            f"--fail-on cannot pass on this log ({'; '.join(gaps)}): a split lock of the "
            "command's may be among the lines lost, so exit 4 (--trace does not depend on "
            "the log)"
        )
    if result.trace is not None:
        out.extend(f"trace: {n}" for n in result.trace.notes())
        gaps = result.trace.gaps()
        if gaps and result.request.fail_on != "none" and not result.trace.split:
            out.append(
                f"--fail-on cannot pass on this trace ({'; '.join(gaps)}): exit 4 unless "
                "something forbidden was found"
            )
    return out


def run_document(result: RunResult) -> dict[str, Any]:
    from splitlock_probe.report.jsondoc import tool

    k = result.host.kernel
    return {
        "schema": RUN_SCHEMA,
        "tool": tool(),
        "command": list(result.request.argv),
        "pid": result.pid,
        "started": result.started,
        "elapsed_s": round(result.elapsed_s, 6),
        "exit": None
        if result.exit is None
        else {
            "code": result.exit.code,
            "signal": result.exit.signal,
            "status": result.exit.status,
            "text": result.exit.describe(),
        },
        "host": {**result.host.cpu.as_dict(), "machine": platform.machine()},
        "kernel": {
            "effective_mode": k.effective_mode,
            "mode_source": k.mode_source,
            "split_lock_mitigate": k.split_lock_mitigate,
            "penalty": k.misery,
        },
        "detectors": {
            n: {**a.as_dict(), "used": n in _detectors_used(result)}
            for n, a in result.detectors.items()
        },
        "tracking": {
            "method": result.tracking,
            "note": result.tracking_note,
            "tasks": result.tasks_seen,
            "processes": result.processes_seen,
            "records_lost": result.tracking_lost,
        },
        "log": {
            "lines": result.tally.lines,
            "trap_lines": result.trap_lines,
            "other_tasks": result.others,
            "suppressed": dict(result.tally.suppressed),
            "malformed": result.tally.malformed,
            "overwritten": result.overwritten,
        },
        "counters": {
            "events": dict(result.counters),
            "kinds": dict(result.counter_kinds),
            "scaled": result.counters_scaled,
            "error": result.counter_error,
        },
        "rusage": result.rusage,
        "threads": [
            {
                "tid": t.tid,
                "tgid": t.tgid,
                "comm": t.comm,
                SPLIT_LOCK: t.split_lock,
                BUS_LOCK: t.bus_lock,
                "sites": [
                    {"ip": f"{ip:#x}", "count": n, "location": where}
                    for ip, (n, where) in t.sites.items()
                ],
            }
            for t in sorted(result.threads.values(), key=lambda t: t.tid)
        ],
        "sites": [_site_dict(s) for s in sites(result)],
        "trace": None if result.trace is None else trace_section(result),
        "signals_forwarded": result.forwarded,
        "interrupted": result.interrupted,
        "notes": notes(result),
        "summary": {
            "split": result.split,
            "hazard": result.hazard,
            "threads": result.thread_count,
            "counted": result.counted,
            "penalty_ms_at_least": result.penalty_ms,
            "fail_on": result.request.fail_on,
            "descendants_left": result.descendants_left,
            "exit_status": result.exit_status(),
        },
    }


def trace_section(result: RunResult) -> dict[str, Any]:
    t = result.trace
    assert t is not None
    return {
        "mechanism": t.mechanism,
        "reason": t.reason,
        "method": t.method,
        "breakpoints": t.breakpoints(),
        "alignment_traps": t.counters["traps"],
        "locked_traps": t.counters["locked"],
        "unlocked_traps": t.unlocked,
        "dropped": t.counters["dropped"],
        "signals_passed_on": t.counters["passed_on"],
        "images": t.counters["images"],
        "programs": t.programs,
        "untraced_programs": t.untraced,
        "buffer_tampered": t.tampered,
        "privileges_dropped": t.privileges_dropped,
        "estimated_cost": estimate(t.split, result.lock_cost) if t.split else None,
        "ac_rearmed": t.counters["lost_ac"],
        "undecodable": t.undecodable,
        "split": t.split,
        "hazard": t.hazard,
        "sites": [site.as_dict() for site in t.sites],
        "notes": t.notes(),
    }


def _site_dict(s: Site) -> dict[str, Any]:
    return {
        "ip": f"{s.ip:#x}",
        "location": s.location,
        "count": s.count,
        "threads": [{"tid": tid, "comm": comm} for tid, comm in s.threads],
    }


def verdict_line(result: RunResult) -> str:
    command = shown(shlex.join(result.request.argv))
    ended = result.exit.describe() if result.exit else "did not end"
    if not _detectors_used(result):
        seen = "split locks: not observable on this host"
    elif result.split:
        parts = []
        if result.threads:
            parts.append(f"{len(result.threads)} thread(s) trapped by the kernel")
        if result.counted:
            parts.append(f"{result.counted:,} counted by the PMU")
        if result.fatal_sigbus:
            parts.append("killed by the fatal-mode SIGBUS")
        if result.trace is not None and result.trace.split:
            parts.append(_traced(result, "split"))
        seen = "SPLIT LOCKS: " + ", ".join(parts)
        if result.hazard:
            seen += f"; hazards: {_traced(result, 'hazard')}"
    elif result.hazard:
        seen = f"no split locks seen; HAZARDS: {_traced(result, 'hazard')}"
    else:
        seen = "no split locks seen"
        if result.trace is not None:
            seen += f" ({_watched(result.trace)})"
    return f"{command}: {ended} after {result.elapsed_s:.2f} s; {seen}"


def _watched(t: TraceResult) -> str:
    """How much the tracer looked at, in its own terms."""
    if t.method == BREAKPOINT:
        return (
            f"watched {counted(t.counters['armed'], 'locked site')}, which ran "
            f"{counted(t.counters['hits'], 'time')}"
        )
    return f"traced {counted(t.counters['traps'], 'alignment trap')}"


def _traced(result: RunResult, kind: str) -> str:
    t = result.trace
    assert t is not None
    n = t.split if kind == "split" else t.hazard  # the JSON's numbers, from one place
    sites = t.sites_with(kind)
    return f"{n:,} traced at {counted(sites, 'site')}"


def draw_trace(result: RunResult, console: Console) -> None:
    from rich.text import Text

    from splitlock_probe.report.siteblock import site_grid, site_lines

    t = result.trace
    assert t is not None
    if t.method == BREAKPOINT:
        left = sum(t.not_armed.values())
        head = (
            f"trace: {t.mechanism} ({t.reason}), breakpoints: "
            f"{counted(t.counters['armed'], 'locked site')} armed in "
            f"{counted(len(t.images), 'image')} ({t.counters['jumps']:,} as jumps), "
            f"hit {counted(t.counters['hits'], 'time')} ({t.counters['trapped']:,} trapped), "
            f"{t.counters['locked']:,} misaligned"
        )
        if left:
            head += f"; {left:,} C library internals not armed"
    else:
        head = (
            f"trace: {t.mechanism} ({t.reason}): {t.counters['traps']:,} alignment traps, "
            f"{t.counters['locked']:,} of locked ops"
        )
    console.print(Text(head, style="dim"))
    if not t.sites:
        return
    console.print(Text("locked ops with a misaligned operand", style="bold"))
    table = site_grid()
    for s in t.sites:
        offsets = ",".join(str(o) for o in sorted(s.line_offsets))
        threads = ", ".join(f"{shown(c or '?')}/{tid}" for tid, c in list(s.threads.items())[:3])
        if len(s.threads) > 3:
            threads += f", +{len(s.threads) - 3}"
        where = shown(s.symbol or s.name) + (f" ({shown(s.source)})" if s.source else "")
        if s.symbol:
            where += f"  {shown(s.name)}"
        lines = site_lines(where, s.text, s.data)
        times = "once" if s.count == 1 else f"{s.count:,} times"
        lines.append(f"  {counted(s.width, 'byte')}, {times}, at line offset {offsets}")
        lines.append(f"  threads: {threads}")
        style = "bold red" if s.kind == "split" else "yellow"
        table.add_row(Text(s.kind, style=style), "\n".join(lines))
    console.print(table)
    legend = Text()
    kinds = {s.kind for s in t.sites}
    if "split" in kinds:
        legend.append("split", style="bold red").append(": crossed a cache line, a bus lock")
    if "hazard" in kinds:
        legend.append("; " if legend else "")
        legend.append("hazard", style="yellow")
        legend.append(": misaligned, inside one line this time; placed elsewhere it splits")
    console.print(legend, style="dim")


def _draw_head(result: RunResult, console: Console) -> None:
    from rich.text import Text

    k = result.host.kernel
    head = Text(f"kernel: split-lock mode {k.effective_mode} ({k.mode_source})", style="dim")
    head.append("; 10 ms penalty per trapped split lock" if k.misery else "", style="dim")
    for n, a in result.detectors.items():
        used = "used" if n in result.request.detectors else "unavailable"
        head.append(f"\ndetector {n}: {used if a.available else 'unavailable'}: {a.reason}")
    head.append(
        f"\ntree: {counted(result.tasks_seen, 'thread')} in "
        f"{counted(result.processes_seen, 'process')}, by {result.tracking}",
        style="dim",
    )
    console.print(head)


def draw_run(result: RunResult, console: Console, quiet: bool = False) -> None:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    if not quiet:
        _draw_head(result, console)
    if result.threads:
        t = Table(box=box.SIMPLE_HEAD, pad_edge=False, title="threads that trapped",
                  title_justify="left")  # fmt: skip
        for column in ("comm", "tid", "pid", "#AC", "#DB"):
            t.add_column(column, overflow="fold")
        t.add_column("trap sites", overflow="fold", ratio=2)
        for r in sorted(result.threads.values(), key=lambda r: (-r.split_lock - r.bus_lock, r.tid)):
            where = ", ".join(
                f"{loc or f'{ip:#x}'} x{n}" for ip, (n, loc) in list(r.sites.items())[:3]
            )
            t.add_row(shown(r.comm), str(r.tid), str(r.tgid or "?"), str(r.split_lock),
                      str(r.bus_lock), where)  # fmt: skip
        console.print(t)
    if result.trace is not None:
        draw_trace(result, console)
    if result.counters:
        counted = ", ".join(
            f"{name} {'n/a' if v is None else f'{v:,}'}" for name, v in result.counters.items()
        )
        console.print(Text(f"counters (whole tree): {counted}"))
    if result.penalty_ms:
        console.print(Text(f"penalty: at least {result.penalty_ms:,.0f} ms of 10 ms sleeps"))
    for note in notes(result):
        console.print(Text("note: " + note, style="yellow"))
    style = "bold red" if result.split else ("yellow" if result.hazard else "green")
    console.print(Text(verdict_line(result), style=style))


def run_junit(result: RunResult) -> str:
    """A case for the command, and one per trap site (stable across runs: a
    library offset, not a thread id)."""
    from splitlock_probe.report.junit import document

    fail_on = result.request.fail_on
    fail_on_split = fail_on in ("split", "hazard")
    suite = ET.Element("testsuite")
    props = ET.SubElement(suite, "properties")
    for name, value in (
        ("tool", f"splitlock-probe {__version__}"),
        ("command", shlex.join(result.request.argv)),
        ("split_lock_mode", result.host.kernel.effective_mode),
        ("detectors", ",".join(_detectors_used(result))),
        ("fail_on", result.request.fail_on),
    ):
        ET.SubElement(props, "property", name=name, value=value)
    failures = skipped = 0
    case = ET.SubElement(
        suite,
        "testcase",
        name=f"no split locks in {shlex.join(result.request.argv)}",
        classname="splitlock_probe.run",
        time=f"{result.elapsed_s:.6f}",
    )
    if not _detectors_used(result):
        skipped += 1
        ET.SubElement(case, "skipped", message=notes(result)[0])
    elif (result.split and fail_on_split) or (result.hazard and fail_on == "hazard"):
        failures += 1
        kind = "split" if result.split else "hazard"
        ET.SubElement(case, "failure", type=kind, message=verdict_line(result))
    ET.SubElement(case, "system-out").text = "\n".join([verdict_line(result), *notes(result)])
    for s in sites(result):
        site_case = ET.SubElement(
            suite, "testcase", name=f"split lock at {s.name}", classname="splitlock_probe.run.site"
        )
        threads = ", ".join(f"{comm}/{tid}" for tid, comm in s.threads)
        text = f"{s.count} trap line(s) at {s.name} ({s.ip:#x}) from {threads}"
        if fail_on_split:
            failures += 1
            ET.SubElement(site_case, "failure", type="split", message=text)
        ET.SubElement(site_case, "system-out").text = text
    traced = result.trace.sites if result.trace is not None else []
    for t in traced:
        site_case = ET.SubElement(
            suite,
            "testcase",
            name=f"{t.kind} at {t.name}" + (f" ({t.symbol})" if t.symbol else ""),
            classname="splitlock_probe.run.trace",
        )
        offsets = ", ".join(str(o) for o in sorted(t.line_offsets))
        threads = ", ".join(f"{c or '?'}/{tid}" for tid, c in t.threads.items())
        text = (
            f"{t.text} ({counted(t.width, 'byte')}) at {t.name}: {t.count} traps, "
            f"{t.split} split a line, "
            f"{t.hazard} misaligned inside one; operand address mod 64: {offsets}; "
            f"threads {threads}"
        )
        forbidden = (fail_on in ("split", "hazard") and t.split) or fail_on == "hazard"
        if forbidden:
            failures += 1
            ET.SubElement(site_case, "failure", type=t.kind, message=text)
        ET.SubElement(site_case, "system-out").text = text
    tests = 1 + len(sites(result)) + len(traced)
    return document(suite, "splitlock-probe run", tests, failures, skipped, result.elapsed_s,
                    result.started)  # fmt: skip
