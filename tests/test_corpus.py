"""Real programs nobody here wrote, traced: the same exit status and the
same output as untraced, in bounded time (issue: never break them). Small
workloads, since every misaligned access of theirs is a trap."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

TIMEOUT_S = 240
SQL = (
    "create table t(a, b); with recursive c(x) as (select 1 union all select x + 1 from c "
    "where x < 2000) insert into t select x, x * x from c; select count(*), sum(b) from t;"
)
PERL = 'my %h; $h{$_} = $_ * 2 for 1..5000; my $s = 0; $s += $h{$_} for keys %h; print "$s\\n"'
PYTHON = ("import hashlib, json, zlib; d = json.dumps([{'k': i} for i in range(1500)]); "
          "print(hashlib.sha256(zlib.compress(d.encode())).hexdigest())")  # fmt: skip


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
    }


NAMES = ("python3", "perl", "sqlite3", "xz", "zstd", "gzip", "git")
# python3 under ptrace: ~20 s of its start-up's misaligned accesses alone; the agent covers it.
CASES = [(n, m) for n in NAMES for m in ("agent", "ptrace") if (n, m) != ("python3", "ptrace")]


@pytest.mark.parametrize(("name", "mechanism"), CASES)
def test_traced_like_untraced(name: str, mechanism: str, sample: Path, tmp_path: Path) -> None:
    argv = programs(sample)[name]
    if shutil.which(argv[0]) is None:
        pytest.skip(f"{argv[0]} is not installed (.ci/run installs it from Debian)")
    env = {k: v for k, v in os.environ.items() if k != "SPLITLOCK_PROBE_ROOT"}
    plain = subprocess.run(argv, capture_output=True, timeout=TIMEOUT_S, env=env, check=False)
    report = tmp_path / "run.json"
    traced = subprocess.run(
        [sys.executable, "-m", "splitlock_probe", "run", f"--trace={mechanism}", "--json", "-o",
         str(report), "--", *argv],
        capture_output=True, timeout=TIMEOUT_S, env=env, cwd=REPO, check=False,
    )  # fmt: skip
    assert traced.returncode == plain.returncode, traced.stderr[-2000:]
    assert traced.stdout == plain.stdout
    assert report.exists() and b'"mechanism": "' + mechanism.encode() in report.read_bytes()
