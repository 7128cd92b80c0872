"""Shared fixtures: a CLI runner with a fixed width, and the environment for subprocesses."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from splitlock_probe.cli import cli

REPO = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
# The ways `run --trace` can trace: the agent's breakpoints (its default), the
# agent's alignment check, and ptrace (alignment check only).
TRACERS = ["agent", "agent:alignment", "ptrace"]


def tracer_args(tracer: str) -> list[str]:
    """`agent:alignment` -> --trace=agent --method alignment."""
    mechanism, _, method = tracer.partition(":")
    return [f"--trace={mechanism}", *(["--method", method] if method else [])]


def traced_run(*args: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """`run --json ARGS` on the live host (no recorded root): the process and
    its report, which run writes to stderr."""
    env = {**os.environ, "COLUMNS": "100"}
    env.pop("SPLITLOCK_PROBE_ROOT", None)
    r = subprocess.run(
        [sys.executable, "-m", "splitlock_probe", "run", "--json", *args],
        capture_output=True, text=True, cwd=REPO, env=env, check=False,
    )  # fmt: skip
    return r, json.loads(r.stderr)


def tracer_method(tracer: str) -> str:
    mechanism, _, method = tracer.partition(":")
    return method or ("breakpoint" if mechanism == "agent" else "alignment")


@pytest.fixture
def run_cli(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Invoke the CLI in-process at a fixed width; returns the click Result."""
    monkeypatch.setenv("COLUMNS", "100")

    def invoke(*args: str) -> Result:
        runner = CliRunner()
        return runner.invoke(cli, list(args), catch_exceptions=False)

    return invoke


def cli_json(result: Result) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(result.stdout)
    return doc


def run_python(code: str, *flags: str) -> subprocess.CompletedProcess[str]:
    """`python FLAGS -c CODE` from the repository, text output: what a fresh
    interpreter imports or does, away from pytest's own state."""
    return subprocess.run([sys.executable, *flags, "-c", code], capture_output=True, text=True,
                          cwd=REPO, check=False)  # fmt: skip


def run_module(*args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """`python -m splitlock_probe ARGS` in a subprocess, text output."""
    return subprocess.run(
        [sys.executable, "-m", "splitlock_probe", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "COLUMNS": "100"},
        check=False,
        **kwargs,
    )


NOBODY = 65534


def drop_to_nobody() -> None:
    """preexec_fn: become uid/gid 65534 with no supplementary groups."""
    os.setgroups([])
    os.setgid(NOBODY)
    os.setuid(NOBODY)


@cache
def unprivileged_python() -> str | None:
    """An interpreter of this Python's version that uid 65534 can execute.

    The test venv's own interpreter may live where an unprivileged user cannot
    reach it (pyenv under /root); a system CPython of the same minor version
    runs our package and the venv's extension modules (same ABI) unchanged.
    """
    if os.geteuid() != 0:
        return None
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    for candidate in (
        sys.executable,
        f"/usr/bin/python{version}",
        f"/usr/local/bin/python{version}",
    ):
        path = shutil.which(candidate)
        if path is None:
            continue
        try:
            probe = subprocess.run(
                [path, "-c", "import os, sys; print('%d.%d' % sys.version_info[:2], os.getuid())"],
                capture_output=True,
                text=True,
                preexec_fn=drop_to_nobody,
                check=False,
            )
        except PermissionError:
            continue
        if probe.returncode == 0 and probe.stdout.split() == [version, str(NOBODY)]:
            return path
    return None


# What `python -m splitlock_probe` imports at run time, beside the package itself.
RUNTIME_MODULES = ("click", "rich", "pygments", "markdown_it", "mdurl", "cffi", "_cffi_backend",
                   "pycparser", "psutil", "prometheus_client", "capstone",
                   "elftools")  # fmt: skip


def _unprivileged_tree(root: Path) -> None:
    """Fill root with a world-readable copy of the package and its run-time dependencies.

    The checkout or the virtualenv may sit where uid 65534 cannot reach
    (a clone under /root); a copy in a fresh 0755 directory can always be read.
    """
    import importlib.util

    shutil.copytree(
        REPO / "splitlock_probe", root / "splitlock_probe",
        ignore=shutil.ignore_patterns("__pycache__", "*.c", "*.o"),
    )  # fmt: skip
    for name in RUNTIME_MODULES:
        spec = importlib.util.find_spec(name)
        assert spec is not None and spec.origin is not None, name
        origin = Path(spec.origin)
        if spec.submodule_search_locations:  # a package: copy its directory
            shutil.copytree(origin.parent, root / origin.parent.name,
                            ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
        else:  # a single module or extension file
            shutil.copy2(origin, root / origin.name)
    for path in [root, *root.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)


@pytest.fixture(scope="session")
def run_unprivileged() -> Any:
    """Run `python -m splitlock_probe ARGS` as uid 65534; skips where that cannot be done."""
    import tempfile

    python = unprivileged_python()
    if python is None:
        pytest.skip("needs root and a Python interpreter uid 65534 can run")
    root = Path(tempfile.mkdtemp(prefix="splitlock-unpriv-"))
    try:
        _unprivileged_tree(root)
        yield lambda *args: _run_as_nobody(python, root, args)
    finally:
        shutil.rmtree(root)


def _run_as_nobody(
    python: str, root: Path, args: tuple[str, ...]
) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": "/tmp",
        "COLUMNS": "100",
        "PYTHONPATH": str(root),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    return subprocess.run(
        [python, "-m", "splitlock_probe", *args],
        capture_output=True, text=True, cwd="/tmp", env=env,
        preexec_fn=drop_to_nobody, check=False,
    )  # fmt: skip


PROGS = Path(__file__).resolve().parent / "progs"


@pytest.fixture(scope="session")
def programs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tests/progs/*.c compiled with gcc."""
    out = tmp_path_factory.mktemp("progs")
    for source in sorted(PROGS.glob("*.c")):
        subprocess.run(
            ["gcc", "-O2", "-Wall", "-Wextra", "-Werror", "-pthread", "-o",
             str(out / source.stem), str(source)],
            check=True,
        )  # fmt: skip
    return out
