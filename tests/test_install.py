"""A real, non-editable install: `pip install` of a wheel into a fresh venv,
run from inside the checkout (where the source tree could shadow it) and
from another directory. The wheel is built once per test run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

SKIP_PARTS = {".git", ".venv", "build", "dist", "__pycache__", ".mypy_cache", ".ruff_cache",
              ".pytest_cache", ".hypothesis", "bench"}  # fmt: skip


def _copy_tree(dest: Path) -> None:
    """The working tree as it is (uncommitted changes too), without build products."""

    def ignore(folder: str, names: list[str]) -> set[str]:
        return {
            n
            for n in names
            if n in SKIP_PARTS or n.endswith((".so", ".o", ".egg-info")) or n == "_core.c"
        }

    shutil.copytree(REPO, dest, ignore=ignore)


@pytest.fixture(scope="session")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bin/ directory of a fresh venv with the package installed from a wheel;
    its source tree (no compiled core, like a fresh clone) is bin/../../src."""
    root = tmp_path_factory.mktemp("install")
    source, wheels, venv = root / "src", root / "wheels", root / "venv"
    _copy_tree(source)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "-w", str(wheels), str(source)], check=True)
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(venv)], check=True)
    (wheel,) = wheels.glob("splitlock_probe-*.whl")
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "-q",
         "install", str(wheel)],
        check=True,
    )  # fmt: skip
    return venv / "bin"


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run(
        args, capture_output=True, text=True, cwd=cwd, env=env, timeout=300, check=False
    )


@pytest.mark.parametrize("where", ["checkout", "elsewhere"])
def test_scan_and_probe_run_from_an_installed_copy(
    installed: Path, where: str, tmp_path: Path
) -> None:
    cwd = REPO if where == "checkout" else tmp_path
    scan = _run([str(installed / "splitlock-probe"), "scan", "--json"], cwd)
    assert scan.returncode == 0, scan.stderr
    summary = json.loads(scan.stdout)["summary"]
    assert summary["probes_measured"] == summary["probes"] > 0
    probe = _run(
        [str(installed / "splitlock-probe"), "probe", "--op", "btsq", "--offset", "60", "--json"],
        cwd,
    )
    assert probe.returncode == 0, probe.stderr
    assert json.loads(probe.stdout)["verdict"] == "split"


def test_python_m_works_outside_the_checkout(installed: Path, tmp_path: Path) -> None:
    done = _run([str(installed / "python"), "-m", "splitlock_probe", "scan", "--json"], tmp_path)
    assert done.returncode == 0, done.stderr


def clone_of(installed: Path) -> Path:
    return installed.parent.parent / "src"


def test_scan_runs_inside_a_fresh_clone(installed: Path) -> None:
    """The README's "install for use": pip install ., then scan, in the clone."""
    done = _run([str(installed / "splitlock-probe"), "scan", "--json"], clone_of(installed))
    assert done.returncode == 0, done.stderr


def test_python_m_inside_a_fresh_clone_says_what_shadows_what(installed: Path) -> None:
    """`python -m` puts the clone first on sys.path: its uncompiled tree is
    imported, and the advice must name that, not a broken install."""
    done = _run([str(installed / "python"), "-m", "splitlock_probe", "scan"], clone_of(installed))
    assert done.returncode == 4
    assert "shadows the installed copy" in done.stderr


def test_run_trace_from_an_installed_copy(installed: Path, programs: Path, tmp_path: Path) -> None:
    for cwd in (REPO, tmp_path):
        done = _run(
            [str(installed / "splitlock-probe"), "run", "--trace", "--json", "--",
             str(programs / "splitter")],
            cwd,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        doc = json.loads(done.stderr[done.stderr.index("{") :])
        assert doc["trace"]["split"] > 0, doc["trace"]
