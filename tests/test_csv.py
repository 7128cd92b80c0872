"""`--csv`: each command's main table as CSV, one row per item of the JSON
list it comes from, so the two forms cannot disagree."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from splitlock_probe.host.paths import ROOT_ENV
from splitlock_probe.report.csvform import csv_text, flatten, nested
from tests.conftest import DATA, REPO

CLI = [sys.executable, "-m", "splitlock_probe"]
RAW_CONTROL = "\x1b\x07\x9b"


def tool(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "80"}
    env.pop(ROOT_ENV, None)
    return subprocess.run([*CLI, *args], capture_output=True, text=True, cwd=cwd, env=env,
                          check=False, timeout=120)  # fmt: skip


def rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_flatten_dots_objects_keys_evidence_by_detector_and_keeps_other_lists() -> None:
    item = {
        "a": {"b": 1, "c": {"d": None}},
        "evidence": [{"detector": "timing", "says": "split"}, {"detector": "actrap", "ok": True}],
        "threads": [{"tid": 7}],
        "line_offsets": {"60": 3},
        "name": "x\x1b[2J",
    }
    assert dict(flatten(item)) == {
        "a.b": "1",
        "a.c.d": "",
        "evidence.timing.says": "split",
        "evidence.actrap.ok": "true",
        "threads": '[{"tid":7}]',
        "line_offsets": '{"60":3}',
        "name": "x\\x1b[2J",
    }


def test_columns_are_the_union_in_first_seen_order() -> None:
    text = csv_text([{"a": 1}, {"b": 2, "a": 3}])
    assert text == "a,b\n1,\n3,2\n"
    assert csv_text([]) == ""
    assert nested([{"path": "f", "n": [1], "sites": [{"x": 1}]}], "sites", "file") == [
        {"file.path": "f", "x": 1}
    ]


def test_scan_csv_has_a_row_per_probe_of_the_json() -> None:
    args = ("scan", "-p", "btsq,btsl", "--align", "4")
    doc = json.loads(tool(*args, "--json").stdout)
    done = tool(*args, "--csv")
    assert done.returncode == 0, done.stderr
    table = rows(done.stdout)
    assert len(table) == len(doc["probes"]) > 0
    for row, probe in zip(table, doc["probes"], strict=True):
        assert row["primitive"] == probe["primitive"]
        assert int(row["placement"]) == probe["placement"]
        assert row["access.line_offset"] == str(probe["access"]["line_offset"])
        assert row["predicted.splits_line"] == str(probe["predicted"]["splits_line"]).lower()
        assert row["evidence.timing.says"] in ("split", "clean", "unsure", "")


def test_log_csv_and_its_stream_escape_hostile_names(tmp_path: Path) -> None:
    log = tmp_path / "kern.log"
    log.write_text(
        "[  1.000000] x86/split lock detection: #AC: \x1b]0;x\x07/42 took a split_lock "
        "trap at address: 0x401000\n"
        "[  2.000000] x86/split lock detection: #AC: a\x9bb/43 took a split_lock trap at "
        "address: 0x401000\n"
    )
    done = tool("log", "--file", str(log), "--csv")
    assert done.returncode == 0, done.stderr
    assert not any(c in done.stdout for c in RAW_CONTROL)
    table = rows(done.stdout)
    assert [r["comm"] for r in table] == ["\\x1b]0;x\\x07", "a\\x9bb"]
    assert [r["pid"] for r in table] == ["42", "43"]


def test_every_command_has_a_csv_form(tmp_path: Path, programs: Path) -> None:
    checks: list[tuple[tuple[str, ...], Any]] = [
        (("primitives",), lambda t: {"btsq", "btsl"} <= {r["name"] for r in t}),
        (("host",), lambda t: {"timing", "actrap"} <= {r["detector"] for r in t}),
        (("log", "--file", str(DATA / "kmsg" / "dmesg.txt")), lambda t: len(t) > 3),
        (
            ("audit", str(programs / "hazards")),
            lambda t: {"split", "hazard"} <= {r["kind"] for r in t},
        ),
        (
            ("probe", "--op", "btsq", "--offset", "60"),
            lambda t: {"baseline", "evidence"} == {r["role"] for r in t},
        ),
        (("watch", "--once", "--interval", "0.1"), lambda t: isinstance(t, list)),
    ]
    for args, ok in checks:
        done = tool(*args, "--csv")
        assert done.returncode in (0, 1), (args, done.stderr)
        assert ok(rows(done.stdout)), (args, done.stdout[:500])


def test_run_trace_csv_lists_the_sites(programs: Path, tmp_path: Path) -> None:
    out = tmp_path / "sites.csv"
    done = tool("run", "--trace", "--csv", "-o", str(out), "--",
                str(programs / "hazards"), "split", "3", "hazard", "2", cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    table = {r["symbol"]: r for r in rows(out.read_text())}
    assert table["site_split"]["split"] == "3" and table["site_split"]["kind"] == "split"
    assert table["site_hazard"]["hazard"] == "2"


@pytest.mark.parametrize(("args", "why"), [
    (("scan", "--json", "--csv"), "give one"),
    (("watch", "--csv"), "--once"),
])  # fmt: skip
def test_csv_usage_errors(args: tuple[str, ...], why: str) -> None:
    done = tool(*args)
    assert done.returncode == 2 and why in done.stderr
