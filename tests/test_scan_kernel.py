"""Kernel evidence in scans, on hosts this machine can only simulate.

The host is a recorded tree (SPLITLOCK_PROBE_ROOT); its dev/kmsg is a regular
file the scan reads like the device. The worker's test hooks stand in for the
kernel: `kmsg:EA` appends the kernel's warn line for the probe thread that
ran EA, `sleep:EA` sleeps 10 ms inside that thread as misery mode does.
Everything else (the probes, the log position, parsing, attribution by thread
id, the penalty measurement, the verdicts) is the real code.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from splitlock_probe.detectors import kernel_log as kmsg
from splitlock_probe.host.kmsg.messages import TrapEvent
from splitlock_probe.host.paths import ROOT_ENV
from splitlock_probe.scan.pacing import Pacer
from splitlock_probe.scan.plan import PROBE_THREAD_NAME
from splitlock_probe.scan.worker import INJECT_ENV
from tests.conftest import DATA, cli_json

SEED = ("scan", "--layout", "compat_vcpu_info", "-p", "btsq", "--json")
SPLIT_EA = 60  # compat_vcpu_info placement 56 + evtchn_pending_sel at 4: the seed case


@pytest.fixture
def warn_host(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An Intel client in warn mode with the penalty on; its log is ours to append to."""
    tree = tmp_path / "host"
    shutil.copytree(DATA / "hosts" / "intel-adl-client-warn", tree)
    monkeypatch.setenv(ROOT_ENV, str(tree))
    return tree


def evidence(probe: dict[str, Any], detector: str) -> dict[str, Any]:
    (ev,) = [e for e in probe["evidence"] if e["detector"] == detector]
    return ev


def test_log_lines_are_matched_to_their_probe_by_thread_id(run_cli, warn_host, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv(INJECT_ENV, f"kmsg:{SPLIT_EA}")
    doc = cli_json(run_cli(*SEED))
    log = doc["kernel"]["log"]
    # The recorded GameThread line predates the scan: it never counts.
    assert (log["lines"], log["attributed"], log["other_tasks"]) == (1, 1, 0)
    assert doc["settings"]["detectors"] == ["timing", "actrap", "kmsg", "misery"]
    split = [p for p in doc["probes"] if p["verdict"] == "split"]
    assert split and all(p["access"]["offset"] == SPLIT_EA for p in split)
    tids = set()
    for p in doc["probes"]:
        ev = evidence(p, "kmsg")
        if p["access"]["offset"] == SPLIT_EA:
            assert ev["says"] == "split" and ev["lines"][0]["pid"] == ev["tid"]
            tids.add(ev["tid"])
        else:
            assert ev["says"] is None and "not proof" in ev["note"]
    assert len(tids) == 1
    assert doc["summary"]["disagreements"] == 0


def test_each_measurement_runs_in_its_own_thread(run_cli, warn_host) -> None:  # type: ignore[no-untyped-def]
    doc = cli_json(run_cli(*SEED))
    by_measurement = {p["measurement"]["id"]: evidence(p, "kmsg")["tid"] for p in doc["probes"]}
    assert len(set(by_measurement.values())) == len(by_measurement)
    assert {evidence(p, "kmsg")["comm"] for p in doc["probes"]} == {PROBE_THREAD_NAME}


def test_the_kernel_log_alone_decides_a_split(run_cli, warn_host, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv(INJECT_ENV, f"kmsg:{SPLIT_EA}")
    doc = cli_json(run_cli(*SEED[:-1], "--detect", "kmsg", "--json"))
    verdicts = {p["access"]["offset"]: p["verdict"] for p in doc["probes"]}
    assert verdicts[SPLIT_EA] == "split"
    assert {v for off, v in verdicts.items() if off != SPLIT_EA} == {"inconclusive"}


def test_the_penalty_sleep_is_measured(run_cli, warn_host, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv(INJECT_ENV, f"sleep:{SPLIT_EA}")
    doc = cli_json(run_cli(*SEED))
    for p in doc["probes"]:
        ev = evidence(p, "misery")
        if p["access"]["offset"] == SPLIT_EA:
            assert ev["says"] == "split" and ev["voluntary_switches"] >= 1
            assert ev["sleep_ms_each"] >= 9.5
        else:
            assert ev["says"] is None, ev  # a probe thread that only computes never sleeps
    assert doc["kernel"]["penalty_ms"] >= 9.5
    human = run_cli(*SEED[:-1])
    assert "penalty active:" in human.stdout


def test_probe_reports_kernel_evidence_too(run_cli, warn_host, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv(INJECT_ENV, f"kmsg:{SPLIT_EA}")
    doc = cli_json(run_cli("probe", "--op", "btsq", "--offset", str(SPLIT_EA), "--json"))
    assert doc["verdict"] == "split"
    (ev,) = [e for e in doc["evidence"] if e["detector"] == "kmsg"]
    assert ev["says"] == "split"


def test_budget_stops_with_a_partial_report(run_cli) -> None:  # type: ignore[no-untyped-def]
    result = run_cli("scan", "--align", "1", "--span", "page", "--budget", "0.2", "--json")
    doc = cli_json(result)
    s = doc["summary"]
    assert (s["complete"], s["stopped"]) == (False, "budget")
    assert 0 < s["measurements_done"] < s["measurements"]
    assert doc["settings"]["budget_s"] == 0.2
    assert result.exit_code == 0  # what was measured agrees with the model


def test_a_long_penalty_is_announced_before_the_scan(run_cli, warn_host) -> None:  # type: ignore[no-untyped-def]
    result = run_cli(
        "scan", "--align", "1", "--layout", "compat_vcpu_info", "--span", "page", "-p", "btsq",
        "--budget", "0.5", "--json",
    )  # fmt: skip
    assert "expected kernel-side cost" in result.stderr
    assert "10 ms split-lock penalty" in result.stderr
    cost = cli_json(result)["kernel"]["cost"]
    assert cost["split_measurements"] > 100 and cost["penalty_s"] > 1
    assert cost["paced"] is False and "not paced" in cost["pace_reason"]


def test_attribution_needs_the_thread_id_and_the_probe_name() -> None:
    log = kmsg.ScanLog("warn", False, "")

    def line(comm: str, pid: int) -> TrapEvent:
        return TrapEvent("split_lock", comm, pid, 0x1, False, "took", None, None)

    log.tally.add(line(PROBE_THREAD_NAME, 100))
    log.tally.add(line("other task", 200))  # a probe's thread id, reused by another task
    log.tally.add(line(PROBE_THREAD_NAME, 300))  # not a thread of this scan
    log.attribute({100: PROBE_THREAD_NAME, 200: PROBE_THREAD_NAME})
    assert list(log.ours) == [100]
    assert log.others == 2


@pytest.mark.parametrize(
    ("fault", "says"),
    [
        ({"signo": 7, "si_code": 1, "ac_armed": False, "ip": 0x1000}, "split"),  # fatal's SIGBUS
        ({"signo": 7, "si_code": 1, "ac_armed": True, "ip": 0x1000}, None),  # our own AC trap
        (None, "clean"),
    ],
)
def test_fatal_mode_reads_the_signal(fault: dict[str, Any] | None, says: str | None) -> None:
    raw: dict[str, Any] = {"min_cycles": 6.0} if fault is None else {"fault": fault}
    assert kmsg.interpret(raw, 123, None, "fatal").says == says


def test_pacer_spaces_bursts() -> None:
    pacer = Pacer(burst=3, interval=0.3, gap=0.02)
    start = time.monotonic()
    slept = [pacer.wait() for _ in range(4)]
    assert slept[0] == 0
    assert all(s >= 0.019 for s in slept[1:3])  # the gap
    assert time.monotonic() - start >= 0.3  # the 4th waited for the window


def test_cost_decides_pacing(monkeypatch: pytest.MonkeyPatch) -> None:
    from splitlock_probe.host import state as host
    from splitlock_probe.model.access import primitive
    from splitlock_probe.model.layouts import LAYOUTS, Span
    from splitlock_probe.scan.pipeline import cost_of
    from splitlock_probe.scan.plan import build
    from splitlock_probe.scan.runner import Settings

    monkeypatch.setenv(ROOT_ENV, str(DATA / "hosts" / "intel-adl-client-warn"))
    state = host.state()
    settings = Settings(("timing", "kmsg", "misery"))
    seed = ([LAYOUTS["compat_vcpu_info"]], ["evtchn_pending_sel"], [primitive("btsq")])
    small = build(*seed, 4, Span.LINE, None)
    big = build(*seed, 1, Span.PAGE, None)
    assert cost_of(small, state, settings, "auto").paced is True
    assert cost_of(big, state, settings, "auto").paced is False
    assert cost_of(big, state, settings, "always").paced is True
    assert cost_of(small, state, settings, "never").paced is False
    no_log = Settings(("timing",))
    assert cost_of(small, state, no_log, "always").paced is False


def test_probe_tells_people_what_the_kernel_said(run_cli, warn_host, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv(INJECT_ENV, f"kmsg:{SPLIT_EA},sleep:{SPLIT_EA}")
    out = run_cli("probe", "--op", "btsq", "--offset", str(SPLIT_EA)).stdout
    assert f"{PROBE_THREAD_NAME}/" in out and "took a split_lock trap" in out
    assert "voluntary switches" in out and "-> split" in out
