"""Reading the kernel log for real: /dev/kmsg here, a recorded file, stdin,
--follow, and the permission-denied path as an unprivileged user."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from splitlock_probe.host.kmsg.lines import unwrap
from splitlock_probe.host.kmsg.source import KernelLog, KernelLogUnreadable
from splitlock_probe.host.paths import ROOT_ENV
from tests.conftest import DATA, REPO, cli_json

needs_kmsg = pytest.mark.skipif(
    not os.access("/dev/kmsg", os.R_OK | os.W_OK), reason="needs read/write access to /dev/kmsg"
)


@needs_kmsg
def test_live_kmsg_reads_the_whole_ring_buffer_without_blocking() -> None:
    with KernelLog() as log:
        assert log.is_device
        start = time.monotonic()
        lines = list(log.read_available())
        assert time.monotonic() - start < 10  # EAGAIN ended it; it did not block
    records = [unwrap(line) for line in lines]
    seqs = [r.seq for r in records if r is not None]
    assert seqs and all(s is not None for s in seqs)
    assert seqs == sorted(seqs)  # the kernel hands records out in sequence order


# Writing into the machine's real log is seen by its log alerting: only when asked.
LIVE_WRITE_ENV = "SPLITLOCK_PROBE_TEST_WRITE_KMSG"
writes_kmsg = pytest.mark.skipif(
    os.environ.get(LIVE_WRITE_ENV) != "1",
    reason=f"writes a forged trap line into this machine's /dev/kmsg; set {LIVE_WRITE_ENV}=1",
)


@needs_kmsg
@writes_kmsg
def test_seek_end_skips_old_records_and_user_records_are_not_the_kernels() -> None:
    marker = f"splitlock-probe-test {uuid.uuid4()}"
    fake = f"#AC: forger/1 took a split_lock trap at address: 0x1 {marker}"
    with KernelLog() as log:
        log.seek_end()
        assert list(log.read_available()) == []  # nothing new yet
        with open("/dev/kmsg", "w") as kmsg:
            kmsg.write(f"<4>{fake}\n")  # written by user space: facility 1
        new = [unwrap(line) for line in log.read_available()]
    ours = [r for r in new if r is not None and marker in r.text]
    assert len(ours) == 1
    assert ours[0].kernel is False and ours[0].seq is not None


def test_a_recorded_dev_kmsg_is_read_like_the_device(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ROOT_ENV, str(DATA / "hosts" / "intel-adl-client-warn"))
    with KernelLog() as log:
        assert not log.is_device
        lines = list(log.read_available())
    assert any("GameThread/40112" in line for line in lines)


def test_missing_device_is_unreadable_with_a_reason(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(ROOT_ENV, str(tmp_path))
    with pytest.raises(KernelLogUnreadable, match="no such device"):
        KernelLog()


def test_log_from_a_file_and_from_stdin_agree(run_cli) -> None:  # type: ignore[no-untyped-def]
    path = DATA / "kmsg" / "journal-iso.txt"
    from_file = cli_json(run_cli("log", "--file", str(path), "--json"))
    piped = subprocess.run(
        [sys.executable, "-m", "splitlock_probe", "log", "--file", "-", "--json"],
        input=path.read_text(),
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    assert piped.returncode == 0, piped.stderr
    from_stdin = json.loads(piped.stdout)
    assert from_stdin["source"] == "stdin"
    for key in ("counts", "suppressed", "mode", "malformed", "events"):
        assert from_file[key] == from_stdin[key]
    assert from_file["counts"] == {"split_lock": 6, "bus_lock": 1}
    assert [p["comm"] for p in from_file["processes"]][:2] == ["CPU 0/KVM", "CPU 3/KVM"]


def test_log_human_table(run_cli) -> None:  # type: ignore[no-untyped-def]
    out = run_cli("log", "--file", str(DATA / "kmsg" / "dmesg-T.txt"))
    assert out.exit_code == 0
    assert "Web Content" in out.stdout and "rpc::io/2" in out.stdout
    assert "suppressed 7 split-lock lines" in out.stdout


def test_log_missing_file_is_a_usage_error(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = run_cli("log", "--file", str(tmp_path / "nope"))
    assert out.exit_code == 2


def test_follow_streams_new_lines_and_ctrl_c_ends_with_130(tmp_path: Path) -> None:
    log = tmp_path / "kern.log"
    shutil.copy(DATA / "kmsg" / "dmesg.txt", log)
    proc = subprocess.Popen(
        [sys.executable, "-m", "splitlock_probe", "log", "--follow", "--json", "--file", str(log)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        assert proc.stdout is not None
        first = [json.loads(proc.stdout.readline()) for _ in range(7)]  # the file's own events
        assert first[0]["schema"] == "splitlock-probe/log-event/v1"
        with log.open("a") as f:
            f.write("[ 9999.000001] x86/split lock detection: #AC: late one/4321 took a "
                    "split_lock trap at address: 0x4010\n")  # fmt: skip
        late = json.loads(proc.stdout.readline())
        assert (late["comm"], late["pid"], late["ip"]) == ("late one", 4321, "0x4010")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()  # type: ignore[union-attr]
        proc.stderr.close()  # type: ignore[union-attr]


def test_unprivileged_log_names_the_cause(run_unprivileged) -> None:  # type: ignore[no-untyped-def]
    restrict = Path("/proc/sys/kernel/dmesg_restrict").read_text().strip()
    out = run_unprivileged("log")
    assert out.returncode == 4, out.stderr
    assert out.stdout == ""
    if restrict == "1":
        assert "dmesg_restrict=1" in out.stderr and "root" in out.stderr
    else:
        assert "cannot read" in out.stderr
    host = run_unprivileged("host", "--json")
    assert host.returncode == 0, host.stderr
    doc = json.loads(host.stdout)
    assert doc["log"]["readable"] is False


def test_a_last_line_without_a_newline_still_counts(tmp_path: Path) -> None:
    log = tmp_path / "kern.log"
    log.write_text(
        "[ 1.0] x86/split lock detection: #AC: a/1 took a split_lock trap at address: 0x1\n"
        "[ 2.0] x86/split lock detection: #AC: b/2 took a split_lock trap at address: 0x2"
    )
    with KernelLog(log) as reader:
        lines = list(reader.read_available())
    assert len(lines) == 2 and lines[1].endswith("0x2")
