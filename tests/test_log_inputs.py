"""`log` on what the world hands it: compressed logs, files that are no log,
invalid UTF-8, endless lines, absurd numbers, a recorded dev/kmsg that never
ends or is a FIFO, rotation while following, and hosts that can never log."""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from splitlock_probe.host.kmsg.lines import unwrap
from splitlock_probe.host.kmsg.messages import Malformed, TrapEvent, classify
from splitlock_probe.host.kmsg.split import LineSplitter
from splitlock_probe.host.paths import ROOT_ENV
from tests.conftest import DATA, REPO, cli_json

CLI = [sys.executable, "-m", "splitlock_probe"]
SYSLOG = (DATA / "kmsg" / "syslog.txt").read_bytes()


def tool(*args: str, root: Path | None = None, **kw: object) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "100"}
    env.pop(ROOT_ENV, None)
    if root is not None:
        env[ROOT_ENV] = str(root)
    return subprocess.run([*CLI, *args], capture_output=True, text=True, cwd=REPO, env=env,
                          check=False, timeout=60, **kw)  # type: ignore[call-overload]  # fmt: skip


@pytest.mark.parametrize(
    ("suffix", "pack"),
    [(".gz", gzip.compress), (".xz", lzma.compress), (".bz2", bz2.compress), ("", gzip.compress)],
)
def test_compressed_logs_are_read_by_their_magic(run_cli, tmp_path: Path, suffix, pack) -> None:  # type: ignore[no-untyped-def]
    plain = cli_json(run_cli("log", "--file", str(DATA / "kmsg" / "syslog.txt"), "--json"))
    packed = tmp_path / f"kern.log.2{suffix}"  # "" : a gzip file with no telling name
    packed.write_bytes(pack(SYSLOG))
    doc = cli_json(run_cli("log", "--file", str(packed), "--json"))
    assert doc["counts"] == plain["counts"] and doc["lines"] == plain["lines"]


@pytest.mark.skipif(shutil.which("zstd") is None, reason="no zstd program here")
def test_a_zstd_log_is_read(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    src = tmp_path / "kern.log"
    src.write_bytes(SYSLOG)
    subprocess.run(["zstd", "-q", str(src)], check=True)
    doc = cli_json(run_cli("log", "--file", str(src) + ".zst", "--json"))
    assert doc["counts"]["split_lock"] == 6


def test_what_is_no_kernel_log_is_refused(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    shadow = tmp_path / "shadow"
    shadow.write_text("root:$y$j9T$abc:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n")
    for path in (shadow, Path("/usr/bin/ls")):
        out = run_cli("log", "--file", str(path))
        assert out.exit_code == 2 and "does not look like a kernel log" in out.stderr, path
    empty = tmp_path / "empty.log"
    empty.write_text("")
    assert run_cli("log", "--file", str(empty)).exit_code == 0  # empty is not wrong


def test_invalid_utf8_on_stdin_is_shown_replaced() -> None:
    data = SYSLOG.replace(b"splitter", b"spl\xff\xfeter", 1)
    done = subprocess.run([*CLI, "log", "--file", "-", "--json"], input=data, cwd=REPO,
                          capture_output=True, env={**os.environ, "LC_ALL": "C.UTF-8"},
                          check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["counts"]["split_lock"] == 6


def test_absurd_numbers_are_malformed_lines_never_events() -> None:
    huge = "9" * 5000
    lines = [
        f"#AC: evil/{huge} took a split_lock trap at address: 0x1",
        "#AC: evil/4194305 took a split_lock trap at address: 0x1",  # above PID_MAX_LIMIT
        f"#AC: evil/12 took a split_lock trap at address: 0x{'f' * 40}",
        f"4,{huge},1,-;#AC: evil/12 took a split_lock trap at address: 0x1",
    ]
    for raw in lines:
        line = unwrap(raw)
        assert line is not None
        assert isinstance(classify(line), Malformed), raw[:60]
    ok = unwrap("#AC: fine/4194304 took a split_lock trap at address: 0x1")
    assert ok is not None and isinstance(classify(ok), TrapEvent)
    suppressed = unwrap(f"split_lock_warn: {huge} callbacks suppressed")
    assert suppressed is not None and classify(suppressed) is None


def test_a_huge_pid_in_a_recorded_kmsg_reaches_no_command(tmp_path: Path) -> None:
    root = tmp_path / "host"
    shutil.copytree(DATA / "hosts" / "intel-adl-client-warn", root)
    with (root / "dev" / "kmsg").open("a") as f:
        f.write(f"4,99,1,-;x86/split lock detection: #AC: x/{'7' * 5000} took a split_lock "
                "trap at address: 0x1\n")  # fmt: skip
    for args in (["host", "--json"], ["log", "--json"], ["watch", "--once", "--since-boot"]):
        done = tool(*args, root=root)
        assert done.returncode == 0 and "Traceback" not in done.stderr, (args, done.stderr)


def test_line_splitting_is_bounded_and_counts_what_it_cut() -> None:
    s = LineSplitter(limit=10)
    got = [*s.feed(b"short\n" + b"x" * 25), *s.feed(b"y" * 5 + b"\nend"), *s.finish()]
    assert got == ["short", "x" * 10, "end"] and s.cut == 1
    s = LineSplitter()
    assert [*s.feed(b"a\n\nb\n"), *s.finish()] == ["a", "", "b"]


def test_a_50_mb_line_is_cut_not_kept(tmp_path: Path) -> None:
    big = tmp_path / "big.log"
    with big.open("wb") as f:
        f.write(SYSLOG)
        f.write(b"Nov 11 03:49:25 host kernel: " + b"z" * (50 << 20) + b"\n")
        f.write(SYSLOG)
    done = tool("log", "--file", str(big), "--json")
    doc = json.loads(done.stdout)
    assert doc["counts"]["split_lock"] == 12  # both copies; the monster cut, not dropped
    assert any("longer than 1 MiB" in n for n in doc["notes"])


@pytest.mark.skipif(os.geteuid() != 0, reason="mknod needs root")
def test_a_recorded_dev_kmsg_that_never_ends_is_bounded(tmp_path: Path) -> None:
    root = tmp_path / "host"
    shutil.copytree(DATA / "hosts" / "amd-zen3-vm", root)
    (root / "dev" / "kmsg").unlink()
    os.mknod(root / "dev" / "kmsg", 0o644 | 0o020000, os.makedev(1, 5))  # /dev/zero
    done = tool("host", "--json", root=root)
    assert done.returncode == 0, done.stderr
    done = tool("log", "--json", root=root)  # and says where it stopped
    notes = json.loads(done.stdout)["notes"]
    assert any("stopped after 64 MiB" in n for n in notes), notes
    assert "1 line longer than 1 MiB was cut there" in notes


def test_a_recorded_proc_file_that_never_ends_is_not_read(tmp_path: Path) -> None:
    """/proc/cpuinfo as a link to /dev/zero grew `host` by 1.5 GB a second, and
    /proc/cmdline as a FIFO hung it: only regular files are read, and only so much."""
    root = tmp_path / "host"
    shutil.copytree(DATA / "hosts" / "amd-zen3-vm", root)
    (root / "proc" / "cpuinfo").unlink()
    (root / "proc" / "cpuinfo").symlink_to("/dev/zero")
    (root / "proc" / "cmdline").unlink()
    os.mkfifo(root / "proc" / "cmdline")
    done = tool("host", "--json", root=root)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["cpu"]["model_name"] in (None, "")


def test_a_fifo_as_recorded_dev_kmsg_neither_hangs_nor_fails(tmp_path: Path) -> None:
    root = tmp_path / "host"
    shutil.copytree(DATA / "hosts" / "intel-adl-client-warn", root)
    (root / "dev" / "kmsg").unlink()
    os.mkfifo(root / "dev" / "kmsg")
    for args in (["host", "--json"], ["scan", "--json"]):
        done = tool(*args, root=root)
        assert done.returncode == 0 and "Traceback" not in done.stderr, (args, done.stderr)


def test_follow_survives_log_rotation(tmp_path: Path) -> None:
    log = tmp_path / "kern.log"
    line = SYSLOG.splitlines(keepends=True)
    traps = [ln for ln in line if b"split_lock trap" in ln]
    log.write_bytes(b"".join(line[:2]))
    proc = subprocess.Popen([*CLI, "log", "-w", "--file", str(log), "--json"], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    time.sleep(1.0)
    with log.open("ab") as f:
        f.write(traps[0])
    time.sleep(0.8)
    log.rename(tmp_path / "kern.log.1")  # logrotate: rename, then a new file
    log.write_bytes(traps[1])
    time.sleep(1.5)
    log.write_bytes(traps[2])  # copytruncate-style: the same name, shorter
    time.sleep(1.5)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    events = [json.loads(x) for x in out.splitlines() if b"log-event" in x]
    assert len(events) == 3, (out, err)


def test_follow_says_at_once_that_this_host_never_logs(tmp_path: Path) -> None:
    root = DATA / "hosts" / "amd-zen3-vm"
    env = {**os.environ, ROOT_ENV: str(root)}
    proc = subprocess.Popen([*CLI, "log", "-w", "--json"], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    assert proc.stdout is not None
    first = json.loads(proc.stdout.readline())
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=30)
    assert first["schema"] == "splitlock-probe/log-status/v1"
    assert first["host_mode"]["effective_mode"] == "unsupported"
    assert "does not trap split locks" in first["note"]
