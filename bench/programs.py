"""`run --trace` on real programs (the issue's corpus), each against itself
untraced in the same run: the command's own wall time under `run` (JSON
`elapsed_s`, the tool's start-up left out), best of `repeat`.

Breakpoint mode is measured warm (site lists in a --site-cache filled by one
run first: what a CI job that keeps its cache sees) and cold (every image
swept in the run, the first run of a job). The goals are for warm runs:
python3, gcc, sqlite3, perl and git at most 2x; zstd and xz (-T2) at most 3x.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "splitlock_probe"]
PYTHON = (
    "import hashlib, json, zlib; d = json.dumps([{'k': i, 'v': str(i) * 3} for i in "
    "range(2000)]); print(hashlib.sha256(zlib.compress(d.encode())).hexdigest())"
)
SQL = (
    "create table t(a, b); with recursive c(x) as (select 1 union all select x + 1 from c "
    "where x < 20000) insert into t select x, x * x from c; select count(*), sum(b) from t;"
)
PERL = 'my %h; $h{$_} = $_ * 2 for 1..200000; my $s = 0; $s += $h{$_} for keys %h; print "$s\\n"'
GOALS = {
    "python3": 2.0,
    "gcc": 2.0,
    "sqlite3": 2.0,
    "perl": 2.0,
    "git": 2.0,
    "zstd": 3.0,
    "xz": 3.0,
}


def _inputs(out: Path) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    small, big = out / "sample-1m.txt", out / "sample-50m.txt"
    if not small.exists():
        small.write_text("".join(f"line {i} {i * i} {'x' * (i % 37)}\n" for i in range(30000)))
    if not big.exists():
        chunk = small.read_bytes()
        with big.open("wb") as f:
            while f.tell() < 50 << 20:
                f.write(chunk)
    return {"small": small, "big": big}


def commands(out: Path) -> dict[str, list[str]]:
    files = _inputs(out)
    return {
        "python3": [sys.executable, "-c", PYTHON],
        "gcc": ["gcc", "-O2", "-c", "-o", str(out / "hazards.o"),
                str(REPO / "tests" / "progs" / "hazards.c")],
        "sqlite3": ["sqlite3", ":memory:", SQL],
        "perl": ["perl", "-e", PERL],
        "git": ["git", "-C", str(REPO), "log", "--stat", "-n", "1500"],
        "zstd": ["zstd", "-T2", "-3", "-q", "-c", str(files["big"])],
        "xz": ["xz", "-T2", "-3", "-c", str(files["small"])],
    }  # fmt: skip


def _elapsed(args: list[str]) -> tuple[float, dict[str, Any]]:
    # The program's output is binary for zstd and xz, and not what is measured.
    r = subprocess.run([*CLI, "run", "--json", *args], stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, check=False)  # fmt: skip
    doc = json.loads(r.stderr.decode(errors="replace"))
    if doc["exit"]["code"] != 0:
        raise RuntimeError(f"{args[-1]}: exit {doc['exit']}")
    return float(doc["elapsed_s"]), doc


def _best(args: list[str], repeat: int) -> tuple[float, dict[str, Any]]:
    runs = [_elapsed(args) for _ in range(repeat)]
    return min(runs, key=lambda r: r[0])


def real_programs(out: Path, repeat: int = 3) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for name, argv in commands(out).items():
        if shutil.which(argv[0]) is None:
            results[name] = {"skipped": f"{argv[0]} is not installed"}
            continue
        with tempfile.TemporaryDirectory(prefix="slp-bench-sites-") as cache:
            bare, _ = _best(["--", *argv], repeat)
            cold, doc = _elapsed(["--trace=agent", "--site-cache", cache, "--", *argv])
            warm, doc = _best(["--trace=agent", "--site-cache", cache, "--", *argv], repeat)
        results[name] = {
            "untraced_s": bare,
            "cold_s": cold,
            "warm_s": warm,
            "cold_ratio": cold / bare,
            "warm_ratio": warm / bare,
            "breakpoint_hits": doc["trace"]["breakpoints"]["hits"],
            "hits_trapped": doc["trace"]["breakpoints"]["trapped"],  # the rest ran through jumps
            "jump_sites": doc["trace"]["breakpoints"]["jumps"],
            "hop_sites": doc["trace"]["breakpoints"]["hops"],  # of the jumps, short sites
            "sites_armed": doc["trace"]["breakpoints"]["armed"],
            "sites": len(doc["trace"]["sites"]),
            "goal": GOALS[name],
        }
    return results


def checks(results: dict[str, Any]) -> list[tuple[str, float, bool, str]]:
    out = []
    for name, r in results.items():
        if "warm_ratio" not in r:
            continue
        out.append((f"trace {name}, warm site cache: traced / untraced", r["warm_ratio"],
                    r["warm_ratio"] <= r["goal"], f"<= {r['goal']:g}"))  # fmt: skip
        out.append((f"trace {name}, first run (sweeps every image): traced / untraced (reported)",
                    r["cold_ratio"], True, "reported"))  # fmt: skip
    return out


if __name__ == "__main__":
    found = real_programs(REPO / "bench" / "out")
    for check in checks(found):
        print(f"{check[0]}: {check[1]:.2f} ({check[3]})")
    print(json.dumps(found, indent=2))
