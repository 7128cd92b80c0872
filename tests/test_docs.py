"""The documented examples keep the shape of what the commands print today."""

from __future__ import annotations

import json
from typing import Any

from tests.conftest import REPO, cli_json

EXAMPLES = REPO / "docs" / "examples"


def shape(value: Any) -> Any:
    """Keys and types, recursively; lists by the shape of their first item."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    if isinstance(value, bool) or value is None:
        return type(value).__name__
    if isinstance(value, int | float):
        return "number"
    return type(value).__name__


def test_scan_example(run_cli) -> None:  # type: ignore[no-untyped-def]
    doc = cli_json(
        run_cli(
            "scan", "--layout", "compat_vcpu_info", "--align", "8", "-p", "legacy,patched", "--json"
        )
    )
    example = json.loads((EXAMPLES / "scan.json").read_text())
    assert shape(doc) == shape(example)
    assert example["schema"] == doc["schema"]
    assert [p["placement"] for p in example["probes"] if p["verdict"] == "split"] == [56]


def test_probe_example(run_cli) -> None:  # type: ignore[no-untyped-def]
    doc = cli_json(run_cli("probe", "--op", "btsq", "--offset", "60", "--bit", "3", "--json"))
    assert shape(doc) == shape(json.loads((EXAMPLES / "probe.json").read_text()))


def test_primitives_example(run_cli) -> None:  # type: ignore[no-untyped-def]
    doc = cli_json(run_cli("primitives", "--json"))
    assert doc == json.loads((EXAMPLES / "primitives.json").read_text())


def test_every_command_is_documented() -> None:
    from splitlock_probe.cli import cli

    usage = (REPO / "docs" / "usage.md").read_text()
    for name in cli.commands:
        assert f"## `{name}`" in usage, name


def test_host_example(run_cli, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(REPO)  # the example records a relative root
    monkeypatch.setenv("SPLITLOCK_PROBE_ROOT", "tests/data/hosts/intel-adl-client-warn")
    doc = cli_json(run_cli("host", "--json"))
    assert doc == json.loads((EXAMPLES / "host.json").read_text())


def test_log_example(run_cli, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(REPO)
    doc = cli_json(run_cli("log", "--file", "tests/data/kmsg/kmsg-raw.txt", "--json"))
    assert doc == json.loads((EXAMPLES / "log.json").read_text())


def test_compare_example(run_cli, tmp_path) -> None:  # type: ignore[no-untyped-def]
    after = tmp_path / "after.json"
    run_cli("scan", "--json", "-o", str(after))
    doc = json.loads(after.read_text())
    for p in doc["probes"]:
        if p["layout"] == "compat_vcpu_info" and p["placement"] == 56:
            p["verdict"] = "clean"
    before = tmp_path / "before.json"
    before.write_text(json.dumps(doc))
    got = cli_json(run_cli("compare", str(before), str(after), "--json"))
    example = json.loads((EXAMPLES / "compare.json").read_text())
    assert shape(got) == shape(example)
    assert got["newly_split"] == example["newly_split"]


def test_usage_shows_real_log_and_host_output(run_cli, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(REPO)
    usage = (REPO / "docs" / "usage.md").read_text()
    log = run_cli("log", "--file", "tests/data/kmsg/syslog.txt").stdout
    monkeypatch.setenv("SPLITLOCK_PROBE_ROOT", "tests/data/hosts/intel-spr-server-fatal")
    host = run_cli("host").stdout
    for line in [*log.splitlines(), *host.splitlines()]:
        assert line.rstrip() in usage, line


def test_run_example(programs, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import os
    import shutil
    import subprocess
    import sys

    from tests.conftest import DATA

    root = tmp_path / "host"
    shutil.copytree(DATA / "hosts" / "intel-adl-client-warn", root)
    out = tmp_path / "run.json"
    subprocess.run(
        [sys.executable, "-m", "splitlock_probe", "run", "--fail-on", "split", "--json", "-o",
         str(out), "--", str(programs / "splitter"), "--threads", "1", "--fork", "--kmsg",
         str(root / "dev" / "kmsg")],
        cwd=REPO, env={**os.environ, "SPLITLOCK_PROBE_ROOT": str(root)}, check=False,
        capture_output=True,
    )  # fmt: skip
    doc = json.loads(out.read_text())
    example = json.loads((EXAMPLES / "run.json").read_text())
    assert shape(doc) == shape(example)
    assert [t["comm"] for t in doc["threads"]] == [t["comm"] for t in example["threads"]]
    assert doc["summary"] == {**example["summary"]}


def test_watch_example(run_cli, monkeypatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import shutil

    from tests.conftest import DATA

    root = tmp_path / "host"
    shutil.copytree(DATA / "hosts" / "intel-adl-client-warn", root)
    shutil.copy(DATA / "kmsg" / "kmsg-raw.txt", root / "dev" / "kmsg")
    monkeypatch.setenv("SPLITLOCK_PROBE_ROOT", str(root))
    doc = cli_json(run_cli("watch", "--once", "--since-boot", "--interval", "0.05", "--json"))
    example = json.loads((EXAMPLES / "watch.json").read_text())
    assert shape(doc) == shape(example)
    for key in ("totals", "suppressed", "log", "processes", "kernel", "notes"):
        assert doc[key] == example[key], key


def test_run_trace_example(programs, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import os
    import subprocess
    import sys

    out = tmp_path / "run.json"
    subprocess.run(
        [sys.executable, "-m", "splitlock_probe", "run", "--trace", "--fail-on", "hazard",
         "--json", "-o", str(out), "--", str(programs / "hazards"), "split", "3", "hazard", "2",
         "unlocked", "50", "threads", "2", "fork"],
        cwd=REPO, env={k: v for k, v in os.environ.items() if k != "SPLITLOCK_PROBE_ROOT"},
        check=False, capture_output=True,
    )  # fmt: skip
    doc = json.loads(out.read_text())
    example = json.loads((EXAMPLES / "run-trace.json").read_text())
    assert shape(doc) == shape(example)
    keep = ("symbol", "kind", "count", "split", "hazard", "width", "line_offsets")
    assert [{k: s[k] for k in keep} for s in doc["trace"]["sites"]] == [
        {k: s[k] for k in keep} for s in example["trace"]["sites"]
    ]
