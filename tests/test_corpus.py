"""Real programs nobody here wrote, traced: the same exit status and the
same output as untraced, in bounded time (issue: never break them), under
the agent's breakpoints (its default), its alignment check and ptrace.
Small workloads, since under the alignment check every misaligned access
of theirs is a trap."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, TRACERS, tracer_args

TIMEOUT_S = 240
SQL = (
    "create table t(a, b); with recursive c(x) as (select 1 union all select x + 1 from c "
    "where x < 2000) insert into t select x, x * x from c; select count(*), sum(b) from t;"
)
PERL = 'my %h; $h{$_} = $_ * 2 for 1..5000; my $s = 0; $s += $h{$_} for keys %h; print "$s\\n"'
PYTHON = ("import hashlib, json, zlib; d = json.dumps([{'k': i} for i in range(1500)]); "
          "print(hashlib.sha256(zlib.compress(d.encode())).hexdigest())")  # fmt: skip
# threads, and a child by posix_spawn/vfork: glibc's blocked-signal windows
PYTHON_THREADS = ("import subprocess, threading; ts = [threading.Thread(target=sum, "
                  "args=(range(20000),)) for _ in range(8)]; [t.start() for t in ts]; "
                  "[t.join() for t in ts]; print(subprocess.run(['true']).returncode)")  # fmt: skip


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "sample.txt"
    path.write_text("".join(f"line {i} {i * i} {'x' * (i % 37)}\n" for i in range(800)))
    return path


def programs(sample: Path) -> dict[str, list[str]]:
    return {
        "python3": [sys.executable, "-c", PYTHON],
        "perl": ["perl", "-e", PERL],
        "sqlite3": ["sqlite3", ":memory:", SQL],
        "xz": ["xz", "-T2", "-3", "-c", str(sample)],
        "zstd": ["zstd", "-T2", "-3", "-q", "-c", str(sample)],  # signal(SIGBUS) via __sysv_signal
        "gzip": ["gzip", "-c", "-n", str(sample)],
        "git": ["git", "-C", str(REPO), "log", "--oneline", "-n", "30"],
        "gcc": ["gcc", "-O2", "-fsyntax-only", str(REPO / "tests" / "progs" / "hazards.c")],
        "python3-threads": [sys.executable, "-c", PYTHON_THREADS],
    }


NAMES = ("python3", "perl", "sqlite3", "xz", "zstd", "gzip", "git", "gcc", "python3-threads")
# Under ptrace, python3's start-up alone is ~20 s of misaligned accesses, and gcc's
# cc1 as much: the agent's alignment check covers what that would show.
SLOW_UNDER_PTRACE = {"python3", "python3-threads", "gcc"}
CASES = [(n, m) for n in NAMES for m in TRACERS if not (m == "ptrace" and n in SLOW_UNDER_PTRACE)]


@pytest.mark.parametrize(("name", "mechanism"), CASES)
def test_traced_like_untraced(name: str, mechanism: str, sample: Path, tmp_path: Path) -> None:
    argv = programs(sample)[name]
    if shutil.which(argv[0]) is None:
        pytest.skip(f"{argv[0]} is not installed (.ci/run installs it from Debian)")
    env = {k: v for k, v in os.environ.items() if k != "SPLITLOCK_PROBE_ROOT"}
    plain = subprocess.run(argv, capture_output=True, timeout=TIMEOUT_S, env=env, check=False)
    report = tmp_path / "run.json"
    traced = subprocess.run(
        [sys.executable, "-m", "splitlock_probe", "run", *tracer_args(mechanism), "--json", "-o",
         str(report), "--", *argv],
        capture_output=True, timeout=TIMEOUT_S, env=env, cwd=REPO, check=False,
    )  # fmt: skip
    assert traced.returncode == plain.returncode, traced.stderr[-2000:]
    assert traced.stdout == plain.stdout
    doc = json.loads(report.read_bytes())
    assert doc["trace"]["mechanism"] == mechanism.partition(":")[0]
    assert doc["trace"]["sites"] == []  # none of them does a misaligned locked op


@pytest.mark.parametrize("mechanism", TRACERS)
def test_stress_ng_lockbus_found_exactly(mechanism: str, tmp_path: Path) -> None:
    """stress-ng's lockbus stressor: 68 locked ops on a buffer 62 bytes into
    a line, each run 300 times: every one found, with its width and offset."""
    if shutil.which("stress-ng") is None:
        pytest.skip("stress-ng is not installed (.ci/run installs it from Debian)")
    report = tmp_path / "run.json"
    traced = subprocess.run(
        [sys.executable, "-m", "splitlock_probe", "run", *tracer_args(mechanism), "--json", "-o",
         str(report), "--", "stress-ng", "--lockbus", "1", "--lockbus-ops", "300"],
        capture_output=True, timeout=TIMEOUT_S, cwd=tmp_path, check=False,
    )  # fmt: skip
    assert traced.returncode == 0, traced.stderr[-2000:]
    trace = json.loads(report.read_bytes())["trace"]
    sites = trace["sites"]
    assert len(sites) == 68
    assert {s["kind"] for s in sites} == {"split"}
    assert all(s["count"] == 300 and s["line_offsets"] == {"62": 300} for s in sites)
    assert trace["split"] == 68 * 300 and trace["hazard"] == 0
