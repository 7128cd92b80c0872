"""`log`'s times as dmesg users read them: the last events under the table
with their stamps, and -T turning since-boot stamps into dates with the boot
time of the live log (here a recorded tree's /proc/stat)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from splitlock_probe.host.boottime import ctime, since_boot
from splitlock_probe.host.paths import ROOT_ENV
from tests.conftest import DATA, REPO

CLI = [sys.executable, "-m", "splitlock_probe"]
BOOTED = 1764820000  # 2025-12-04 03:46:40 UTC


def tool(*args: str, root: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "80", "TZ": "UTC"}
    env.pop(ROOT_ENV, None)
    if root is not None:
        env[ROOT_ENV] = str(root)
    return subprocess.run([*CLI, *args], capture_output=True, text=True, cwd=REPO, env=env,
                          check=False, timeout=60)  # fmt: skip


def recorded_host(tmp_path: Path, btime: str | None) -> Path:
    root = tmp_path / "host"
    shutil.copytree(DATA / "hosts" / "intel-icx-server", root)
    shutil.copy(DATA / "kmsg" / "kmsg-raw.txt", root / "dev" / "kmsg")
    if btime is not None:
        (root / "proc" / "stat").write_text(f"cpu  1 2 3 4\nbtime {btime}\nprocesses 9\n")
    return root


def test_stamps_and_dates() -> None:
    assert since_boot("5657.175277") == 5657.175277
    assert since_boot("+0.500000") is None and since_boot("Nov 11 03:49:26") is None
    assert since_boot("9" * 40 + ".1") is None  # no huge numbers
    os.environ["TZ"] = "UTC"
    time.tzset()
    assert ctime("5657.175277", BOOTED) == "Thu Dec  4 05:20:57 2025"  # dmesg -T's form
    assert ctime("5657.175277", None) is None
    assert ctime("9999999999.0", 1e17) is None  # past the C library's calendar: no date


def test_the_text_lists_the_last_events_with_their_stamps() -> None:
    done = tool("log", "--file", str(DATA / "kmsg" / "kmsg-raw.txt"))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    events = lines[lines.index("events:") + 1 :]
    assert events[0] == "[5657.175277] split_lock stress-ng/12345 at 0x55d0c3a1b2c4"


def test_dash_t_dates_the_live_log_with_its_boot_time(tmp_path: Path) -> None:
    root = recorded_host(tmp_path, str(BOOTED))
    done = tool("log", "-T", root=root)
    assert done.returncode == 0, done.stderr
    assert "[Thu Dec  4 05:20:57 2025] split_lock stress-ng/12345 at 0x55d0c3a1b2c4" in done.stdout
    doc = json.loads(tool("log", "--json", root=root).stdout)
    assert doc["boot_time"] == BOOTED
    assert doc["events"][0]["time"] == "5657.175277"  # the stamp itself stays as written


def test_dash_t_without_a_boot_time_keeps_the_stamps_and_says_why(tmp_path: Path) -> None:
    done = tool("log", "-T", "--file", str(DATA / "kmsg" / "kmsg-raw.txt"))
    assert done.returncode == 0
    assert "[5657.175277] split_lock" in done.stdout and "boot time is not known" in done.stderr
    root = recorded_host(tmp_path, "not-a-number")
    done = tool("log", "-T", root=root)
    assert done.returncode == 0 and "[5657.175277] split_lock" in done.stdout
    assert "no boot time" in done.stderr
    assert json.loads(tool("log", "--json", root=root).stdout)["boot_time"] is None
