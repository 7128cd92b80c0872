"""The package on a machine that is not x86-64: it imports, and probing exits 4.

The core is rebuilt with SLP_FORCE_PORTABLE (the code a non-x86 compiler
takes) next to a copy of the package, and the real CLI runs against it.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO


@pytest.fixture(scope="module")
def portable_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("portable")
    shutil.copytree(
        REPO / "splitlock_probe",
        root / "splitlock_probe",
        ignore=shutil.ignore_patterns("_core*", "__pycache__"),
    )
    spec = importlib.util.spec_from_file_location("ffi_build", REPO / "csrc" / "ffi_build.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.make_builder(portable=True, relative=False).compile(tmpdir=str(root))
    assert list((root / "splitlock_probe").glob("_core*.so"))
    return root


def _run(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root), "COLUMNS": "100"}
    return subprocess.run(
        [sys.executable, "-m", "splitlock_probe", *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def test_imports_and_helps(portable_tree: Path) -> None:
    out = _run(portable_tree, "--help")
    assert out.returncode == 0 and "split-lock" in out.stdout
    assert _run(portable_tree, "primitives").returncode == 0


@pytest.mark.parametrize(
    "args",
    [["scan"], ["scan", "--json"], ["probe", "--op", "btsq", "--offset", "60"]],
)
def test_probing_commands_exit_4(portable_tree: Path, args: list[str]) -> None:
    out = _run(portable_tree, *args)
    assert out.returncode == 4, out.stderr
    assert "not an x86-64 machine" in out.stderr
    assert "Traceback" not in out.stderr
    assert out.stdout == ""
