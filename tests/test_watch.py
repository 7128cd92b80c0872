"""`watch`: snapshots from a recorded log, new lines as they come, the
Prometheus text (checked by prometheus_client's own parser), the /metrics
server, per-CPU counters for real (software events), bounded memory."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from splitlock_probe.host.kmsg.messages import TrapEvent
from splitlock_probe.host.kmsg.tally import LogTally
from splitlock_probe.host.paths import ROOT_ENV
from splitlock_probe.watch.table import OTHER, BoundedCounts
from tests.conftest import DATA, REPO, cli_json

STORY = DATA / "kmsg" / "kmsg-raw.txt"  # 6 #AC, 1 #DB, suppressed 7 and 3, 1 malformed


@pytest.fixture
def story_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An Intel host in warn mode whose dev/kmsg holds the story of tests/data/kmsg."""
    tree = tmp_path / "host"
    shutil.copytree(DATA / "hosts" / "intel-adl-client-warn", tree)
    shutil.copy(STORY, tree / "dev" / "kmsg")
    monkeypatch.setenv(ROOT_ENV, str(tree))
    return tree


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus text page, parsed by prometheus_client."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_once_since_boot_counts_the_whole_log(run_cli, story_root: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    prom = tmp_path / "splitlock.prom"
    r = run_cli("watch", "--once", "--since-boot", "--interval", "0.05", "--json",
                "--prometheus-file", str(prom))  # fmt: skip
    assert r.exit_code == 0, r.stderr
    doc = cli_json(r)
    assert doc["schema"] == "splitlock-probe/watch/v2"
    assert doc["totals"] == {"split_lock": 6, "bus_lock": 1}
    assert doc["suppressed"] == {"split_lock": 7, "bus_lock": 3}
    assert doc["log"]["malformed"] == 1
    assert doc["kernel"]["effective_mode"] == "warn" and doc["kernel"]["penalty"] is True
    # The same counts per process as `log` finds in the same file.
    tally = LogTally()
    tally.feed(STORY.read_text().splitlines())
    expected = {(p.comm, p.pid): (p.split_lock, p.bus_lock) for p in tally.ranked()}
    got = {(p["comm"], p["pid"]): (p["split_lock"], p["bus_lock"]) for p in doc["processes"]}
    assert got == expected
    metrics = samples(prom.read_text())
    by_comm: dict[str, tuple[int, int]] = {}
    for (comm, _pid), (split, bus) in expected.items():  # metrics are per name, not per thread
        old = by_comm.get(comm, (0, 0))
        by_comm[comm] = (old[0] + split, old[1] + bus)
    for comm, (split, bus) in by_comm.items():
        assert metrics[("splitlock_traps_total", (("comm", comm), ("kind", "split_lock")))] == split
        assert metrics[("splitlock_traps_total", (("comm", comm), ("kind", "bus_lock")))] == bus
    assert metrics[("splitlock_trap_lines_suppressed_total", (("kind", "split_lock"),))] == 7
    assert metrics[("splitlock_probe_parse_errors_total", ())] == 1
    assert metrics[("splitlock_mitigate", ())] == 1
    assert metrics[("splitlock_penalty_active", ())] == 1
    mode = [k for k in metrics if k[0] == "splitlock_mode_info"]
    assert len(mode) == 1 and ("mode", "warn") in mode[0][1]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("splitlock.prom.")]


def test_without_since_boot_only_new_lines_count(run_cli, story_root: Path) -> None:  # type: ignore[no-untyped-def]
    kmsg = story_root / "dev" / "kmsg"

    def kernel_writes() -> None:
        time.sleep(0.3)
        with kmsg.open("a") as f:
            f.write("4,90001,99000001,-;#AC: late one/4242 took a split_lock trap at "
                    "address: 0x401000\n")  # fmt: skip

    writer = threading.Thread(target=kernel_writes)
    writer.start()
    try:
        r = run_cli("watch", "--once", "--interval", "1.0", "--json")
    finally:
        writer.join()
    doc = cli_json(r)
    assert doc["totals"] == {"split_lock": 1, "bus_lock": 0}  # the story before it: not new
    assert doc["processes"] == [
        {"comm": "late one", "pid": 4242, "guest": False, "split_lock": 1, "bus_lock": 0,
         "new": 1, "last_ip": "0x401000", "vm": None}
    ]  # fmt: skip


def test_memory_stays_bounded_and_totals_stay_true() -> None:
    counts = BoundedCounts(limit=50)
    for i in range(10_000):
        kind = "split_lock" if i % 3 else "bus_lock"
        event = TrapEvent(kind, f"task{i % 700}", 10_000 + i, 0x1000, False, "took", None, i)
        counts.add(event, float(i))
    assert len(counts.rows) == 50 and counts.aged_out == 10_000 - 50
    series = counts.comm_counts()
    assert len(series) == 51 and series[-1][0] == OTHER
    assert sum(c["split_lock"] for _, c in series) == counts.totals["split_lock"]
    assert sum(c["bus_lock"] for _, c in series) == counts.totals["bus_lock"]
    assert counts.totals["split_lock"] + counts.totals["bus_lock"] == 10_000
    kept = {r.comm for r in counts.rows.values()}
    assert kept == {f"task{i % 700}" for i in range(10_000 - 50, 10_000)}  # the latest


def test_per_cpu_counters_for_real(run_cli, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """Software events counted per CPU through the same code as a PMU's bus-lock event."""
    if os.geteuid() != 0:
        pytest.skip("per-CPU counting needs root (or perf_event_paranoid <= 0)")
    monkeypatch.delenv(ROOT_ENV, raising=False)
    r = run_cli("watch", "--once", "--interval", "0.2", "--json", "--event", "task-clock")
    doc = cli_json(r)
    assert doc["pmu_error"] is None
    cpus = doc["pmu"]["cpus"]
    online = Path("/sys/devices/system/cpu/online").read_text().strip()
    assert len(cpus) == len(_expand(online))
    assert all(v["task-clock"] > 0 for v in cpus.values())  # each CPU's clock ran


def _expand(ranges: str) -> list[int]:
    out: list[int] = []
    for part in ranges.split(","):
        lo, _, hi = part.partition("-")
        out.extend(range(int(lo), int(hi or lo) + 1))
    return out


def test_listen_serves_metrics_and_ctrl_c_writes_the_last_file(story_root: Path,
                                                               tmp_path: Path) -> None:  # fmt: skip
    prom = tmp_path / "m.prom"
    env = {**os.environ, ROOT_ENV: str(story_root)}
    p = subprocess.Popen(
        [sys.executable, "-m", "splitlock_probe", "watch", "--since-boot", "--interval", "0.2",
         "--listen", "127.0.0.1:0", "--prometheus-file", str(prom), "--json"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert p.stderr is not None and p.stdout is not None
        line = p.stderr.readline()
        assert line.startswith("splitlock-probe: serving metrics on http://127.0.0.1:"), line
        url = line.split()[-1]
        first = json.loads(p.stdout.readline())  # the first interval's snapshot
        assert first["totals"] == {"split_lock": 6, "bus_lock": 1}
        with urllib.request.urlopen(url, timeout=10) as response:
            page = response.read().decode()
        metrics = samples(page)
        assert metrics[("splitlock_traps_total", (("comm", "CPU 0/KVM"), ("kind", "split_lock")))]
        p.send_signal(signal.SIGINT)
        p.communicate(timeout=20)
    finally:
        p.kill() if p.poll() is None else None
    assert p.returncode == 130
    assert samples(prom.read_text())[("splitlock_probe_log_lines_total", ())] > 0


def test_unreadable_log_exits_4_with_the_reason(run_unprivileged: Any) -> None:
    if Path("/proc/sys/kernel/dmesg_restrict").read_text().strip() != "1":
        pytest.skip("needs kernel.dmesg_restrict=1")
    r = run_unprivileged("watch", "--once", "--interval", "0.05")
    assert r.returncode == 4
    assert "dmesg_restrict=1" in r.stderr


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--listen", "localhost"], "give ADDR:PORT"),
        (["--listen", "127.0.0.1:99999"], "give ADDR:PORT"),
        (["--listen", "127.0.0.1:" + "9" * 5000], "give ADDR:PORT"),  # was exit 3 (int())
        (["--listen", "127.0.0.1:\u00b2"], "give ADDR:PORT"),  # '²'.isdigit(): was exit 3
        (["--listen", "[::1:9977"], "give ADDR:PORT"),  # unbalanced
        (["--listen", "::1:9977"], "give ADDR:PORT"),  # IPv6 without brackets
        (["--prometheus-file", "/no/such/dir/x.prom"], "no directory"),
    ],
)
def test_bad_options_are_usage_errors(run_cli, story_root: Path, args: list[str],  # type: ignore[no-untyped-def]
                                      words: str) -> None:  # fmt: skip
    r = run_cli("watch", "--once", *args)
    assert r.exit_code == 2 and words in r.stderr


def test_an_ipv6_listen_address_is_printed_as_a_url_with_brackets() -> None:
    import socket

    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback here")
    done = subprocess.run(
        [sys.executable, "-m", "splitlock_probe", "watch", "--once", "--interval", "0.1",
         "--listen", "[::1]:0"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    url = next(w for w in done.stderr.split() if w.startswith("http://"))
    assert url.startswith("http://[::1]:") and url.endswith("/metrics")
