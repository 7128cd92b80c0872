"""Names from the outside world are data, never terminal control: thread
names, ELF symbols, argv, log lines, a recorded CPU name and JSON inputs
with escape sequences come out escaped in text, and every XML output made
from them (JUnit, SVG) parses."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from splitlock_probe.host.paths import ROOT_ENV
from splitlock_probe.text import escape, xml_safe
from tests.conftest import DATA, REPO

CLI = [sys.executable, "-m", "splitlock_probe"]
# What a terminal obeys: C0 but newline and tab, DEL, C1.
RAW_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def tool(*args: str, root: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    env.pop(ROOT_ENV, None)
    if root is not None:
        env[ROOT_ENV] = str(root)
    return subprocess.run([*CLI, *args], capture_output=True, text=True, cwd=REPO, env=env,
                          check=False, timeout=120)  # fmt: skip


def assert_inert(text: str) -> None:
    assert not RAW_CONTROL.search(text), repr(RAW_CONTROL.search(text))


def assert_xml(path: Path) -> None:
    etree.parse(str(path))  # raises on anything XML 1.0 forbids


@pytest.mark.parametrize("tracer", ["agent", "ptrace"])
def test_a_hostile_thread_name_and_symbol_under_run_trace(
    programs: Path, tmp_path: Path, tracer: str
) -> None:
    junit, svg = tmp_path / "run.xml", tmp_path / "run.svg"
    done = tool("run", f"--trace={tracer}", "--junit", str(junit), "--export-svg", str(svg),
                "--", str(programs / "hostile"), "\x01arg\x1b[5m")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert_inert(done.stderr)
    assert "\\x1b[2J" in done.stderr and "PWN" in done.stderr  # shown, escaped
    assert_xml(junit)
    assert_xml(svg)
    doc = tool("run", f"--trace={tracer}", "--json", "--", str(programs / "hostile"))
    site = json.loads(doc.stderr)["trace"]["sites"][0]
    assert site["symbol"] == "evil\x1b[31msite"  # JSON keeps the data itself, escaped by JSON


def test_hostile_comm_names_in_a_log(tmp_path: Path) -> None:
    log = tmp_path / "kern.log"
    log.write_text(
        "[  1.000000] x86/split lock detection: #AC: \x1b[2J\x1b]0;x\x07/42 took a split_lock "
        "trap at address: 0x401000\n"
        "[  2.000000] x86/split lock detection: #AC: a\x9bb/43 took a split_lock trap at "
        "address: 0x401000\n"
    )
    svg = tmp_path / "log.svg"
    done = tool("log", "--file", str(log), "--export-svg", str(svg))
    assert done.returncode == 0, done.stderr
    assert_inert(done.stdout)
    assert "\\x1b[2J" in done.stdout and "\\x9b" in done.stdout
    assert_xml(svg)


def test_a_hostile_cpu_name_in_a_recorded_tree(tmp_path: Path) -> None:
    root = tmp_path / "host"
    shutil.copytree(DATA / "hosts" / "amd-zen3-vm", root)
    info = root / "proc" / "cpuinfo"
    info.write_text(
        re.sub(r"model name\t: .*", "model name\t: \x1b]0;PWN\x07EPYC", info.read_text())
    )
    for args in (
        ["host"],
        ["watch", "--once"],
        ["host", "--export-html", str(tmp_path / "h.html")],
    ):
        done = tool(*args, root=root)
        assert done.returncode == 0, (args, done.stderr)
        assert_inert(done.stdout + done.stderr)


def test_hostile_names_in_compared_json(tmp_path: Path) -> None:
    scan = tool("scan", "--layout", "compat_vcpu_info", "-p", "legacy", "--json")
    doc = json.loads(scan.stdout)
    for p in doc["probes"]:
        p["field"] = "evtchn\x1b[2J"
    doc["host"]["model_name"] = "\x1b]0;PWN\x07"
    old = tmp_path / "old.json"
    old.write_text(json.dumps(doc))
    for p in doc["probes"]:
        if p["placement"] == 0:
            p["verdict"] = "split"
    new = tmp_path / "new.json"
    new.write_text(json.dumps(doc))
    done = tool("compare", str(old), str(new))
    assert done.returncode == 1
    assert_inert(done.stdout + done.stderr)
    assert "evtchn\\x1b[2J" in done.stdout


@settings(max_examples=150, deadline=None)
@given(st.text())
def test_escaping_leaves_nothing_a_terminal_obeys_and_keeps_xml_valid(text: str) -> None:
    import xml.etree.ElementTree as ET

    assert_inert(escape(text))
    el = ET.Element("case", name=xml_safe(text))
    el.text = xml_safe(text)
    etree.fromstring(ET.tostring(el))  # what XML 1.0 forbids is gone, the rest is escaped


def test_every_message_on_stderr_has_its_control_characters_escaped(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The last guard: a message a caller built from outside text without
    escaping it still reaches the terminal inert; escaped parts stay as they are."""
    from splitlock_probe.cli.options import say

    say("no struct \x1b[2J\x9b\x07 in a\\x1b.h\tnext")
    assert (
        capsys.readouterr().err
        == "splitlock-probe: no struct \\x1b[2J\\x9b\\x07 in a\\x1b.h\tnext\n"
    )
