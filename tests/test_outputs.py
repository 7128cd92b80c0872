"""Every command against every output format it claims; atomic files; JUnit
against the schema CI servers read; compare; --require-detector."""

from __future__ import annotations

import csv
import io
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from splitlock_probe.report import reports
from splitlock_probe.report.outputs import OutputFormat
from tests.conftest import DATA, REPO, cli_json

XSD = etree.XMLSchema(etree.parse(str(DATA / "junit" / "junit.xsd")))
OPTION = {
    OutputFormat.TEXT: "--output",
    OutputFormat.JSON: "--output",
    OutputFormat.JUNIT: "--junit",
    OutputFormat.SVG: "--export-svg",
    OutputFormat.HTML: "--export-html",
    OutputFormat.CSV: "--output",
}
EXTRA = {OutputFormat.JSON: ["--json"], OutputFormat.CSV: ["--csv"]}


@pytest.fixture(scope="module")
def scans(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two real scan documents: `new` as measured, `old` as a fixed kernel would show it."""
    from click.testing import CliRunner

    from splitlock_probe.cli import cli

    d = tmp_path_factory.mktemp("scans")
    new = d / "new.json"
    result = CliRunner().invoke(cli, ["scan", "--json", "-o", str(new)], catch_exceptions=False)
    assert result.exit_code == 0 and result.stdout == ""
    doc = json.loads(new.read_text())
    for p in doc["probes"]:
        if p["layout"] == "compat_vcpu_info" and p["placement"] == 56:
            p["verdict"], p["agrees"] = "clean", False
    old = d / "old.json"
    old.write_text(json.dumps(doc))
    return {"new": new, "old": old}


def commands(scans: dict[str, Path]) -> dict[str, tuple[Any, list[str]]]:
    return {
        "scan": (reports.ScanReport, ["scan", "--layout", "compat_vcpu_info", "-p", "btsq"]),
        "probe": (reports.ProbeReport, ["probe", "--op", "btsq", "--offset", "60"]),
        "host": (reports.HostReport, ["host"]),
        "log": (reports.LogReport, ["log", "--file", str(DATA / "kmsg" / "syslog.txt")]),
        "compare": (reports.CompareReport, ["compare", str(scans["old"]), str(scans["new"])]),
        "primitives": (reports.PrimitivesReport, ["primitives"]),
        "run": (reports.RunReport, ["run", "--", "true"]),
        "watch": (reports.WatchReport, ["watch", "--once", "--interval", "0.05"]),
        "cost": (reports.CostReport, ["cost", "--quick"]),
        "audit": (reports.AuditReport, ["audit", sys.executable]),
        "layout": (
            reports.LayoutReport,
            [
                "layout",
                "--from",
                str(REPO / "csrc" / "xen_abi.h"),
                "--struct",
                "slp_xen_vcpu_info",
                "--abi",
                "x86-64",
            ],
        ),
    }


def check(fmt: OutputFormat, text: str) -> None:
    if fmt is OutputFormat.TEXT:
        assert text.strip() and "\x1b[" not in text  # plain text in files
    elif fmt is OutputFormat.JSON:
        assert json.loads(text)["schema"].startswith("splitlock-probe/")
    elif fmt is OutputFormat.JUNIT:
        XSD.assertValid(etree.fromstring(text.encode()))
    elif fmt is OutputFormat.SVG:
        assert etree.fromstring(text.encode()).tag == "{http://www.w3.org/2000/svg}svg"
    elif fmt is OutputFormat.HTML:
        page = etree.HTML(text)
        assert page is not None and page.find(".//body") is not None
    elif fmt is OutputFormat.CSV:
        table = list(csv.reader(io.StringIO(text)))  # no rows: nothing at all
        assert not table or (table[0] and all(len(row) == len(table[0]) for row in table))


def test_every_command_writes_every_format_it_claims(run_cli, scans, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from splitlock_probe.cli import cli

    cmds = commands(scans)
    assert set(cmds) == set(cli.commands)  # a new command must join this test
    for name, (report, args) in cmds.items():
        params = {opt for p in cli.commands[name].params for opt in p.opts}
        for fmt in OutputFormat:
            if fmt not in report.formats:
                assert OPTION[fmt] not in params, (name, fmt)  # no option for what it cannot write
                continue
            assert OPTION[fmt] in params, (name, fmt)
            path = tmp_path / f"{name}.{fmt.value}"
            extra = EXTRA.get(fmt, [])
            out = run_cli(*[*args[:1], *extra, OPTION[fmt], str(path), *args[1:]])
            assert out.exit_code in (0, 1), (name, fmt, out.stderr)
            check(fmt, path.read_text())
            if fmt in (OutputFormat.TEXT, OutputFormat.JSON, OutputFormat.CSV):
                assert out.stdout == ""  # --output takes the place of stdout
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left


def test_a_format_a_command_does_not_claim_is_refused() -> None:
    from splitlock_probe.errors import UsageError
    from splitlock_probe.report.outputs import render

    with pytest.raises(UsageError, match="no junit output"):
        render(reports.PrimitivesReport(), OutputFormat.JUNIT)


def test_output_files_replace_old_ones_whole(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    target = tmp_path / "host.json"
    target.write_text("old content that is longer than nothing " * 1000)
    assert run_cli("host", "--json", "-o", str(target)).exit_code == 0
    assert json.loads(target.read_text())["schema"] == "splitlock-probe/host/v1"
    assert oct(target.stat().st_mode & 0o777) == "0o644"


@pytest.mark.parametrize(
    "args",
    [
        ["-o", "{tmp}/no/such/dir/out.json"],
        ["--junit", "{tmp}"],
        ["--export-svg", "{tmp}/missing/x.svg"],
    ],
)
def test_bad_output_paths_fail_before_any_work(run_cli, tmp_path: Path, args: list[str]) -> None:  # type: ignore[no-untyped-def]
    start = time.monotonic()
    out = run_cli("scan", "--span", "page", "--align", "1", *[a.format(tmp=tmp_path) for a in args])
    assert out.exit_code == 2, out.stderr
    assert time.monotonic() - start < 2  # refused before the 3 s page scan ran


def test_junit_cases_failures_and_evidence(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "junit.xml"
    out = run_cli("scan", "--fail-on", "split", "--junit", str(path))
    assert out.exit_code == 1
    root = etree.parse(str(path)).getroot()
    XSD.assertValid(root)
    suite = root.find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("64", "2", "0")
    failed = {c.get("name"): c.find("failure") for c in suite.iter("testcase")}
    failed = {name: f for name, f in failed.items() if f is not None}
    assert set(failed) == {
        "vcpu_info.evtchn_pending_sel btsq at placement 52",
        "compat_vcpu_info.evtchn_pending_sel btsq at placement 56",
    }
    for f in failed.values():
        assert f.get("type") == "split"
        assert "line offset 60" in (f.get("message") or "") and "timing:" in (
            f.get("message") or ""
        )
    outs = [c.findtext("system-out") or "" for c in suite.iter("testcase")]
    assert all("actrap:" in o and "timing:" in o for o in outs)
    # Without --fail-on the same splits are findings for people, not CI failures.
    run_cli("scan", "--junit", str(path))
    assert etree.parse(str(path)).getroot().get("failures") == "0"


def test_junit_reports_disagreements_and_unmeasured_cases() -> None:
    import dataclasses

    from splitlock_probe.report.junit import scan_junit
    from splitlock_probe.report.outputs import OutputFormat as F
    from splitlock_probe.report.outputs import render

    result = _real_scan_result()
    first = result.plan.probes[0].measurement
    result.judgements[first] = dataclasses.replace(result.judgements[first], agrees=False)
    del result.judgements[result.plan.probes[-1].measurement]
    root = etree.fromstring(scan_junit(result).encode())
    XSD.assertValid(root)
    kinds = [f.get("type") for f in root.iter("failure")]
    assert "disagreement" in kinds
    assert any(s.get("message", "").startswith("not measured") for s in root.iter("skipped"))
    assert render(reports.ScanReport(result), F.JUNIT) == scan_junit(result)


def _real_scan_result() -> Any:
    from splitlock_probe.host import state as host
    from splitlock_probe.model.access import primitive
    from splitlock_probe.model.layouts import LAYOUTS, Span
    from splitlock_probe.scan.pipeline import execute, plan_for, prepare
    from splitlock_probe.scan.request import ScanRequest
    from splitlock_probe.scan.runner import Settings

    request = ScanRequest(
        (LAYOUTS["compat_vcpu_info"],),
        ("evtchn_pending_sel",),
        (primitive("btsq"),),
        4,
        Span.LINE,
        None,
        Settings(("timing", "actrap")),
    )
    return execute(prepare(request, plan_for(request), host.state()))


def test_ctrl_c_still_writes_every_file(tmp_path: Path) -> None:
    junit, out = tmp_path / "j.xml", tmp_path / "s.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "splitlock_probe", "scan", "--span", "page", "--align", "1",
         "--batches", "256", "--json", "-o", str(out), "--junit", str(junit)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    time.sleep(3.0)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert json.loads(out.read_text())["summary"]["stopped"] == "interrupted"
    root = etree.parse(str(junit)).getroot()
    XSD.assertValid(root)
    props = {p.get("name"): p.get("value") for p in root.iter("property")}
    assert props["complete"] == "false"
    assert int(root.find("testsuite").get("skipped")) > 0  # type: ignore[union-attr,arg-type]


# --- compare ---------------------------------------------------------------------------------


def test_compare_finds_the_regression(run_cli, scans) -> None:  # type: ignore[no-untyped-def]
    out = run_cli("compare", str(scans["old"]), str(scans["new"]), "--json")
    assert out.exit_code == 1
    doc = cli_json(out)
    assert doc["regression"] is True
    (case,) = doc["newly_split"]
    assert (case["layout"], case["primitive"], case["placement"]) == (
        "compat_vcpu_info",
        "btsq",
        56,
    )
    assert case["new"] == {"verdict": "split", "split_bits": "0-31"}
    human = run_cli("compare", str(scans["old"]), str(scans["new"]))
    assert "newly split" in human.stdout and "regression: 1" in human.stdout


def test_compare_the_other_way_is_a_fix(run_cli, scans) -> None:  # type: ignore[no-untyped-def]
    out = run_cli("compare", str(scans["new"]), str(scans["old"]), "--json")
    assert out.exit_code == 0
    doc = cli_json(out)
    assert len(doc["fixed"]) == 1 and doc["newly_split"] == []


def test_compare_same_scan_changes_nothing(run_cli, scans) -> None:  # type: ignore[no-untyped-def]
    doc = cli_json(run_cli("compare", str(scans["new"]), str(scans["new"]), "--json"))
    assert (doc["newly_split"], doc["fixed"], doc["changed"], doc["latency"]) == ([], [], [], [])


def _edited(src: Path, dst: Path, factor: float, drop_detector: str | None = None) -> Path:
    doc = json.loads(src.read_text())
    for p in doc["probes"]:
        for e in p["evidence"]:
            if e["detector"] == "timing" and "min_cycles" in e and p["verdict"] == "split":
                e["min_cycles"] *= factor
                e["median_cycles"] *= factor
    if drop_detector:
        doc["settings"]["detectors"].remove(drop_detector)
    dst.write_text(json.dumps(doc))
    return dst


def test_compare_latency_beyond_noise_and_detectors(run_cli, scans, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    slower = _edited(scans["new"], tmp_path / "slower.json", 2.0, drop_detector="actrap")
    doc = cli_json(run_cli("compare", str(slower), str(scans["new"]), "--json"))
    (change,) = doc["latency"]
    assert (change["primitive"], change["what"]) == ("btsq", "split")
    assert change["ratio"] == pytest.approx(0.5, rel=0.01)
    assert doc["detectors"] == {"gained": ["actrap"], "lost": []}
    noisy = _edited(scans["new"], tmp_path / "noisy.json", 1.05)
    assert cli_json(run_cli("compare", str(noisy), str(scans["new"]), "--json"))["latency"] == []


@pytest.mark.parametrize(
    ("content", "message"),
    [("not json", "not JSON"), ('{"schema": "splitlock-probe/host/v1"}', "not a `scan --json`")],
)
def test_compare_refuses_what_is_not_a_scan(  # type: ignore[no-untyped-def]
    run_cli, scans, tmp_path: Path, content: str, message: str
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    out = run_cli("compare", str(bad), str(scans["new"]))
    assert out.exit_code == 2 and message in out.stderr


# --- --require-detector ----------------------------------------------------------------------


def test_require_detector(run_cli) -> None:  # type: ignore[no-untyped-def]
    flags = Path("/proc/cpuinfo").read_text()
    if "split_lock_detect" in flags or "bus_lock_detect" in flags:
        pytest.skip("this host has a kernel detector")
    out = run_cli("scan", "--require-detector", "kmsg")
    assert out.exit_code == 4 and "a required detector cannot run here (kmsg:" in out.stderr
    assert run_cli("scan", "--require-detector", "timing,actrap").exit_code == 0
    assert run_cli("scan", "--require-detector", "nonsense").exit_code == 2
