"""The habits of the tools our users know: --version, --color, --quiet,
shell completion, and the docs an installed copy carries."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

from tests.conftest import REPO, run_python

CLI = [sys.executable, "-m", "splitlock_probe"]


def cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, "COLUMNS": "80", **env}, check=False)  # fmt: skip


def test_version_names_the_core_and_the_libraries() -> None:
    done = cli("--version")
    assert done.returncode == 0
    first, core, libraries = done.stdout.splitlines()
    assert first.startswith("splitlock-probe ")
    assert core.startswith("core: x86-64 core, ") and ("gcc" in core or "clang" in core)
    for name in ("cffi", "capstone", "pyelftools", "click", "rich", "psutil"):
        assert f"{name} " in libraries and f"{name} missing" not in libraries


def test_color_always_never_and_no_color() -> None:
    assert "\x1b[" in cli("--color", "always", "host").stdout  # piped, yet coloured
    assert "\x1b[" not in cli("host").stdout  # piped: plain by default
    assert "\x1b[" not in cli("--color", "never", "host", FORCE_COLOR="1").stdout
    assert "\x1b[" in cli("host", FORCE_COLOR="1").stdout
    assert cli("--color", "sometimes", "host").returncode == 2


def test_quiet_keeps_the_table_and_the_verdict(run_cli: Any) -> None:
    loud = run_cli("scan", "-p", "btsq", "--bits", "0")
    quiet = run_cli("scan", "-q", "-p", "btsq", "--bits", "0")
    assert loud.exit_code == quiet.exit_code == 0
    assert "detector timing" in loud.stdout and "detector" not in quiet.stdout
    assert "host:" not in quiet.stdout
    assert "split-lock scan" in quiet.stdout and "probes measured" in quiet.stdout


def test_completion_scripts_for_each_shell() -> None:
    for shell, marker in (("bash", "complete "), ("zsh", "compdef"), ("fish", "complete ")):
        done = cli(_SPLITLOCK_PROBE_COMPLETE=f"{shell}_source")
        assert done.returncode == 0 and marker in done.stdout, shell


def test_the_root_help_says_where_the_docs_are() -> None:
    text = cli("--help").stdout
    assert "share/doc/splitlock-probe" in text
    for status in ("126", "127", "141"):
        assert status in text


def test_help_loads_neither_rich_nor_the_core_nor_the_elf_readers() -> None:
    """`--help` stays quick (bench: 150 ms): it imports only the command line.
    A top-level import of run's request once pulled in pyelftools and the
    tracer: 129 ms instead of 60."""
    probe = (
        "import sys, contextlib, io\n"
        "from splitlock_probe.cli import main\n"
        "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
        "    main(['--help'])\n"
        "heavy = [m for m in ('rich', 'elftools', 'capstone', 'cffi', 'psutil',\n"
        "         'splitlock_probe._core', 'splitlock_probe.run.result') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    done = run_python(probe)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "", done.stdout
