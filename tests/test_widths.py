"""Every command's text at 80, 100 and 200 columns (a CI log, a terminal, a
wide one): nothing cut (rich's ellipsis), and the numbers the JSON has
appear whole in the table."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from splitlock_probe.scan.plan import fold_ranges, format_ranges
from tests.conftest import REPO

WIDTHS = (80, 100, 200)
SCAN = ["scan", "--field", "evtchn_pending_sel,arch.cr2", "-p", "btsq,xaddq", "--align", "1"]


def text(width: int, *args: str) -> str:
    env = {**os.environ, "COLUMNS": str(width)}
    done = subprocess.run([sys.executable, "-m", "splitlock_probe", *args], capture_output=True,
                          text=True, cwd=REPO, env=env, check=False)  # fmt: skip
    assert done.returncode in (0, 1), done.stderr[-2000:]
    return done.stdout + done.stderr


@pytest.fixture(scope="module")
def long_named(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("w") / "a-program-with-a-name-much-longer-than-a-table-cell"
    subprocess.run(["gcc", "-O2", "-pthread", "-o", str(out), str(REPO / "tests/progs/hazards.c")],
                   check=True)  # fmt: skip
    return out


@pytest.mark.parametrize("width", WIDTHS)
def test_a_scan_of_several_fields_and_ops_shows_every_number_whole(width: int) -> None:
    shown = text(width, *SCAN)
    assert "…" not in shown
    env = {**os.environ, "COLUMNS": str(width)}
    doc = json.loads(subprocess.run([sys.executable, "-m", "splitlock_probe", *SCAN, "--json"],
                                    capture_output=True, text=True, cwd=REPO, env=env,
                                    check=True).stdout)  # fmt: skip
    rows: dict[tuple[str, str, str], tuple[set[int], int]] = {}
    for p in doc["probes"]:
        placements, agree = rows.get((p["layout"], p["field"], p["primitive"]), (set(), 0))
        if p["verdict"] == "split":
            placements.add(p["placement"] % 64)
        rows[(p["layout"], p["field"], p["primitive"])] = (placements, agree + p["bit_count"])
    for (_layout, _field, _prim), (placements, agree) in rows.items():
        assert f"{format_ranges(fold_ranges(sorted(placements)))} (" in shown
        assert f"✓ {agree:,}" in shown  # a scan here agrees with the model everywhere


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize(
    "args",
    [
        ["scan", "--align", "1"],
        ["probe", "--op", "btsq", "--offset", "60"],
        ["host"],
        ["layout", "--from", "csrc/xen_abi.h", "--struct", "slp_xen_compat_vcpu_info"],
        ["primitives"],
        ["watch", "--once", "--interval", "0.05"],
        ["log", "--file", "tests/data/kmsg/syslog.txt"],
    ],
)
def test_no_command_cuts_a_cell(width: int, args: list[str]) -> None:
    assert "…" not in text(width, *args)


@pytest.mark.parametrize("width", WIDTHS)
def test_run_trace_with_a_long_path_keeps_names_whole(width: int, long_named: Path) -> None:
    shown = text(width, "run", "--trace", "--", str(long_named), "split", "2", "hazard", "1")
    assert "…" not in shown
    lines = shown.splitlines()
    assert any("site_split" in line and f"{long_named.name}+0x" in line for line in lines) or (
        any(line.strip().startswith(f"{long_named.name}+0x") for line in lines)
    )
    assert "lock bts qword ptr [rip + 0x" in shown  # the instruction on one line
