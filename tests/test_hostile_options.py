"""Every option of every command, given what a hostile or careless user
types: nan, inf, a negative, a number of 30 digits, escape codes and a bell,
a digit that is not ASCII, nothing. The answer is a usage error or a run
that works; never an internal error (exit 3), never a traceback, and
nothing on stdout or stderr that a terminal would obey. Each such value
once ended in exit 3 somewhere (--timeout inf, --listen 127.0.0.1:²,
--iterations past 64 bits) or rang the terminal's bell (--layout)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import click
import pytest

from splitlock_probe.cli import cli
from tests.conftest import DATA, REPO

HOSTILE = ("nan", "inf", "-1", "9" * 30, "\x1b[2J\x07", "\u00b2", "")
RAW_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
EXAMPLE_SCAN = str(REPO / "docs" / "examples" / "scan.json")
XEN_ABI = str(REPO / "csrc" / "xen_abi.h")

# What each command needs around the option under test to end quickly: options
# before it (a later one wins in click), arguments after it.
AROUND: dict[str, tuple[list[str], list[str]]] = {
    "audit": ([], ["/bin/true"]),
    "compare": ([], [EXAMPLE_SCAN, EXAMPLE_SCAN]),
    "cost": (["--quick"], []),
    "host": ([], []),
    "layout": (["--from", XEN_ABI, "--struct", "slp_xen_vcpu_info", "--abi", "x86-64"], []),
    "log": (["--file", str(DATA / "kmsg" / "dmesg.txt")], []),
    "primitives": ([], []),
    "probe": (["--op", "btsl", "--offset", "0", "--batches", "1"], []),
    "run": ([], ["--", "true"]),
    "scan": (["--layout", "vcpu_info", "-p", "btsl", "--bits", "0", "--batches", "1"], []),
    "watch": (["--once", "--interval", "0.05"], []),
}


def _valued_options() -> list[tuple[str, str]]:
    out = []
    for name, command in sorted(cli.commands.items()):
        for param in command.params:
            if isinstance(param, click.Option) and not (param.is_flag or param.count):
                out.append((name, param.opts[0]))
    return out


def test_every_command_is_covered() -> None:
    assert set(AROUND) == set(cli.commands)


@pytest.mark.parametrize(("command", "option"), _valued_options())
def test_hostile_values_are_usage_errors_or_work(
    run_cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str, option: str
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)  # an output option taken as a file name writes here
    before, after = AROUND[command]
    for value in HOSTILE:
        result = run_cli(command, *before, option, value, *after)
        said = result.stdout + result.stderr
        assert result.exit_code != 3, (value, said[-600:])
        assert "Traceback" not in said, (value, said[-600:])
        assert not RAW_CONTROL.search(said), (value, repr(said[-300:]))


@pytest.mark.parametrize(
    "args",
    [
        lambda v: ["audit", v],
        lambda v: ["compare", v, EXAMPLE_SCAN],
        lambda v: ["run", "--", v],
        lambda v: ["run", "--trace", "--", v],
        lambda v: ["layout", "--from", v, "--struct", "x"],
        lambda v: ["log", "--file", v],
    ],
    ids=["audit", "compare", "run", "run-trace", "layout", "log"],
)
def test_hostile_arguments_are_errors_shown_escaped(
    run_cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: Any
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    for value in (*HOSTILE, "/dev/zero", str(tmp_path)):
        result = run_cli(*args(value))
        said = result.stdout + result.stderr
        assert result.exit_code != 3, (value, said[-600:])
        assert "Traceback" not in said, (value, said[-600:])
        assert not RAW_CONTROL.search(said), (value, repr(said[-300:]))
