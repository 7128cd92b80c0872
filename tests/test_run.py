"""`run -- CMD` for real: a C program that really split-locks, its threads,
a fork and an exec, its exit status, signals, stdin/stdout passthrough.

This VM cannot trap split locks, so the kernel's side is played by the
program itself (--kmsg): it appends the line a warn-mode kernel writes,
naming its real thread id and the real address of its locked op, to the
dev/kmsg file of a recorded Intel host tree, which `run` reads through the
same code as the live /dev/kmsg.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from splitlock_probe.host.paths import ROOT_ENV
from tests.conftest import DATA, REPO

XSD = etree.XMLSchema(etree.parse(str(DATA / "junit" / "junit.xsd")))


@pytest.fixture
def warn_root(tmp_path: Path) -> Path:
    tree = tmp_path / "host"
    shutil.copytree(DATA / "hosts" / "intel-adl-client-warn", tree)
    return tree


def site_offset(program: Path, symbol: str) -> int:
    """The file offset of `symbol`: what /proc/PID/maps and perf's records map an
    address to. Worked out from readelf, not from our own code."""
    nm = subprocess.run(["nm", str(program)], capture_output=True, text=True, check=True).stdout
    (vaddr,) = [int(line.split()[0], 16) for line in nm.splitlines() if line.endswith(symbol)]
    heads = subprocess.run(["readelf", "-lW", str(program)], capture_output=True, text=True,
                           check=True).stdout  # fmt: skip
    for line in heads.splitlines():
        parts = line.split()
        if parts[:1] == ["LOAD"]:
            offset, start, size = int(parts[1], 16), int(parts[2], 16), int(parts[5], 16)
            if start <= vaddr < start + size:
                return vaddr - start + offset
    raise AssertionError(f"{symbol} is in no LOAD segment")


def run_tool(*args: str, root: Path | None = None, **kw: Any) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "100"}
    env.pop(ROOT_ENV, None)
    if root is not None:
        env[ROOT_ENV] = str(root)
    return subprocess.run(
        [sys.executable, "-m", "splitlock_probe", "run", *args],
        capture_output=True, text=True, cwd=REPO, env=env, check=False, **kw,
    )  # fmt: skip


def test_every_thread_of_a_forking_execing_tree_is_found(
    programs: Path, warn_root: Path, tmp_path: Path
) -> None:
    splitter = programs / "splitter"
    out = tmp_path / "run.json"
    kmsg = warn_root / "dev" / "kmsg"
    junit = tmp_path / "run.xml"
    r = run_tool("--fail-on", "split", "--json", "-o", str(out), "--junit", str(junit), "--",
                 str(splitter), "--threads", "3", "--fork", "--kmsg", str(kmsg),
                 root=warn_root)  # fmt: skip
    assert r.returncode == 1, r.stderr  # the command succeeded; the gate found split locks
    # The command's stdout is its own, untouched: the child's line, then the parent's.
    assert r.stdout == "splitter: 2 split locks done\nsplitter: 4 split locks done\n"
    doc = json.loads(out.read_text())
    assert doc["schema"] == "splitlock-probe/run/v1"
    assert doc["exit"] == {"code": 0, "signal": None, "status": 0, "text": "exit 0"}
    threads = doc["threads"]
    # main + 3 threads; the exec'd copy (named "exe" by execv(/proc/self/exe)) + 1 thread
    assert sorted(t["comm"] for t in threads) == sorted(
        ["splitter", "splitter-0", "splitter-1", "splitter-2", "exe", "splitter-0"]
    )
    assert all(t["split_lock"] == 1 and t["bus_lock"] == 0 for t in threads)
    assert len({t["tgid"] for t in threads}) == 2  # two processes
    where = f"splitter+{site_offset(splitter, 'splitter_site'):#x}"
    assert [s["location"] for s in doc["sites"]] == [where]
    assert doc["sites"][0]["count"] == 6
    assert doc["log"]["other_tasks"] == 0
    assert doc["tracking"]["method"].startswith("perf task records")
    assert doc["summary"]["split"] is True and doc["summary"]["exit_status"] == 1
    assert doc["summary"]["penalty_ms_at_least"] == 60.0  # warn + mitigate: 10 ms a trap
    tree = etree.parse(str(junit))
    XSD.assertValid(tree)
    cases = tree.findall(".//testcase")
    assert [c.get("name") for c in cases][1:] == [f"split lock at {where}"]
    assert all(c.find("failure") is not None for c in cases)


def test_lines_of_tasks_outside_the_tree_are_not_the_commands(
    programs: Path, warn_root: Path, tmp_path: Path
) -> None:
    kmsg = warn_root / "dev" / "kmsg"
    stranger = subprocess.Popen(["sleep", "30"])
    try:
        line = f"4,999999,1,-;#AC: sleep/{stranger.pid} took a split_lock trap at address: 0x1\n"
        r = run_tool("--json", "--", "sh", "-c", f"printf '{line}' >> {kmsg}", root=warn_root)
    finally:
        stranger.kill()
        stranger.wait()
    doc = json.loads(r.stderr)  # the report goes to stderr: stdout is the command's
    assert r.returncode == 0
    assert doc["threads"] == [] and doc["log"]["other_tasks"] == 1
    assert doc["summary"]["split"] is False


def test_a_gate_over_a_log_that_lost_lines_does_not_pass(warn_root: Path, tmp_path: Path) -> None:
    """The kernel's ratelimit suppressed trap lines while the command ran (its
    own may be among them): `--fail-on split` said 0 on the log alone."""
    kmsg = warn_root / "dev" / "kmsg"
    line = "4,999998,1,-;split_lock_warn: 7 callbacks suppressed\n"
    out = tmp_path / "run.json"
    r = run_tool("--fail-on", "split", "--json", "-o", str(out), "--", "sh", "-c",
                 f"printf '{line}' >> {kmsg}", root=warn_root)  # fmt: skip
    doc = json.loads(out.read_text())
    assert r.returncode == 4, (r.returncode, doc["notes"])
    assert any("--fail-on cannot pass on this log" in n for n in doc["notes"]), doc["notes"]
    r = run_tool("--", "sh", "-c", f"printf '{line}' >> {kmsg}", root=warn_root)
    assert r.returncode == 0  # no gate asked for: the note says it, the status does not


def test_the_commands_own_failure_wins(programs: Path, warn_root: Path) -> None:
    kmsg = warn_root / "dev" / "kmsg"
    r = run_tool("--fail-on", "split", "--", str(programs / "splitter"), "--exit", "3",
                 "--kmsg", str(kmsg), root=warn_root)  # fmt: skip
    assert r.returncode == 3
    said = " ".join(r.stderr.split())
    assert "exit 3" in said and "SPLIT LOCKS: 1 thread(s)" in said


def test_death_by_signal_is_reported_as_a_shell_would() -> None:
    r = run_tool("--json", "--", "sh", "-c", "kill -TERM $$")
    assert r.returncode == 128 + signal.SIGTERM
    doc = json.loads(r.stderr)
    assert doc["exit"]["signal"] == signal.SIGTERM and doc["exit"]["text"] == "killed by SIGTERM"


@pytest.mark.parametrize(
    ("name", "mode", "status", "words"),
    [
        ("no-such-command-xyz", None, 127, "No such file or directory"),
        ("not-a-program", 0o755, 126, "Exec format error"),
        ("a-directory", "dir", 126, "Permission denied"),
    ],
)
def test_a_command_that_cannot_run(
    tmp_path: Path, name: str, mode: Any, status: int, words: str
) -> None:
    path = tmp_path / name
    if mode == "dir":
        path.mkdir()
    elif mode is not None:
        path.write_bytes(b"\x00\x01 not an executable")
        path.chmod(mode)
    command = str(path) if mode is not None else name
    r = run_tool("--", command)
    assert r.returncode == status
    assert r.stderr == f"splitlock-probe: cannot run {command}: {words}\n"


def test_stdin_and_stdout_pass_through() -> None:
    r = run_tool("--json", "--", "cat", input="hello\nworld\n")
    assert r.returncode == 0 and r.stdout == "hello\nworld\n"


def test_signals_sent_to_us_reach_the_command(tmp_path: Path) -> None:
    marker = tmp_path / "got"
    ready = tmp_path / "ready"
    script = (
        f"trap 'echo USR1 > {marker}; exit 7' USR1; touch {ready}; while :; do sleep 0.05; done"
    )
    env = {**os.environ}
    env.pop(ROOT_ENV, None)
    p = subprocess.Popen(
        [sys.executable, "-m", "splitlock_probe", "run", "--json", "--", "sh", "-c", script],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 20
    while not ready.exists() and time.monotonic() < deadline:  # the shell has its trap
        time.sleep(0.02)
    p.send_signal(signal.SIGUSR1)
    _, err = p.communicate(timeout=20)
    assert p.returncode == 7, err
    assert marker.read_text() == "USR1\n"
    doc = json.loads(err)
    assert doc["signals_forwarded"] == ["SIGUSR1"]


def test_require_detector_refuses_before_running(tmp_path: Path, warn_root: Path) -> None:
    flag = tmp_path / "ran"
    r = run_tool("--require-detector", "any", "--", "touch", str(flag))
    assert r.returncode == 4 and not flag.exists()  # this VM: no detector sees split locks
    assert "no detector can see split locks here" in r.stderr
    r = run_tool("--require-detector", "kmsg", "--", "touch", str(flag), root=warn_root)
    assert r.returncode == 0 and flag.exists()  # a recorded warn-mode host: kmsg can


def test_here_it_says_plainly_that_nothing_can_be_seen(programs: Path) -> None:
    amd_vm = DATA / "hosts" / "amd-zen3-vm"  # no split-lock detection, no PMU
    r = run_tool("--", str(programs / "splitter"), root=amd_vm)
    assert r.returncode == 0  # no gate: nothing seen is reported, not judged
    said = " ".join(r.stderr.split())  # as read, whatever the wrapping
    assert "split locks: not observable on this host" in said
    assert "no detector on this host can see split locks" in said
    assert "`run --trace` sees every misaligned locked op" in said
    # A gate that saw nothing does not pass.
    r = run_tool("--fail-on", "split", "--", str(programs / "splitter"), root=amd_vm)
    assert r.returncode == 4


def test_the_trace_detector_can_be_required(programs: Path) -> None:
    r = run_tool("--require-detector", "trace", "--", "true")
    assert r.returncode == 2 and "--require-detector trace needs --trace" in r.stderr
    r = run_tool("--trace", "--require-detector", "trace", "--", "true")
    assert r.returncode == 0, r.stderr
    r = run_tool("--require-detector", "timing", "--", "true")
    assert r.returncode == 2 and "choose from: kmsg, perf, trace" in r.stderr


def test_counters_are_inherited_by_the_whole_tree(programs: Path) -> None:
    """Real perf_event_open plumbing: software events counted over every
    thread and child, the way the split-lock event is where there is a PMU."""
    r = run_tool("--json", "--event", "task-clock", "--", str(programs / "splitter"),
                 "--threads", "4", "--fork")  # fmt: skip
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stderr)
    assert doc["detectors"]["perf"]["used"] is True
    assert doc["counters"]["events"]["task-clock"] > 0
    assert doc["counters"]["kinds"] == {"task-clock": "other"}
    assert doc["summary"]["counted"] is None  # a software event is never a split lock
    assert doc["tracking"]["tasks"] == 1 + 4 + 1 + 1  # main, 4 threads, the exec'd copy + 1


def test_polling_finds_threads_when_perf_is_refused(
    programs: Path, warn_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    from splitlock_probe import native
    from splitlock_probe.detectors.availability import detector_availability
    from splitlock_probe.host import state as host
    from splitlock_probe.run import session
    from splitlock_probe.run.result import RunRequest

    def refused(pid: int) -> Any:
        raise native.PerfOpenError("perf task records", errno.EACCES)

    monkeypatch.setattr(session, "RingTracker", refused)
    monkeypatch.setenv(ROOT_ENV, str(warn_root))
    state = host.state()
    argv = (str(programs / "splitter"), "--threads", "2", "--sleep-ms", "300",
            "--kmsg", str(warn_root / "dev" / "kmsg"))  # fmt: skip
    result = session.run_command(RunRequest(argv, ("kmsg",)), state, detector_availability(state))
    assert result.tracking.startswith("polling /proc")
    assert "perf_event_paranoid" in (result.tracking_note or "")
    # The two threads sleep after their line, so polling sees them alive.
    names = sorted(t.comm for t in result.threads.values())
    assert {"splitter-0", "splitter-1"} <= set(names)


def test_unprivileged_run_follows_its_own_tree(programs: Path, run_unprivileged: Any) -> None:
    shared = Path(tempfile.mkdtemp(prefix="splitlock-run-"))
    try:
        shared.chmod(0o755)
        shutil.copy2(programs / "splitter", shared / "splitter")
        r = run_unprivileged("run", "--json", "--", str(shared / "splitter"), "--threads", "2")
    finally:
        shutil.rmtree(shared)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stderr)
    # perf_event_paranoid=2 lets a user follow their own children.
    assert doc["tracking"]["tasks"] == 3, doc["tracking"]
    assert doc["exit"]["status"] == 0


@pytest.mark.parametrize("trace", [[], ["--trace=agent"], ["--trace=ptrace"]])
def test_ctrl_c_ends_the_command_and_still_reports(tmp_path: Path, trace: list[str]) -> None:
    env = {**os.environ}
    env.pop(ROOT_ENV, None)
    out = tmp_path / "run.json"
    p = subprocess.Popen(
        [sys.executable, "-m", "splitlock_probe", "run", *trace, "--json", "-o", str(out), "--",
         "sleep", "30"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # wait for the command to be running
        kids = Path(f"/proc/{p.pid}/task/{p.pid}/children").read_text().split()
        if kids and Path(f"/proc/{kids[0]}/comm").read_text().strip() == "sleep":
            break
        time.sleep(0.02)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=30)
    assert p.returncode == 128 + signal.SIGINT, err
    doc = json.loads(out.read_text())  # the report was written all the same
    assert doc["interrupted"] is True and doc["exit"]["signal"] == signal.SIGINT
    if trace:
        assert doc["trace"]["mechanism"] == trace[0].split("=")[1]


@pytest.mark.parametrize(("trace", "extra"), [([], 0), (["--trace=ptrace"], 0),
                                             (["--trace=agent"], 1)])  # fmt: skip
def test_the_command_inherits_none_of_our_descriptors(trace: list[str], extra: int) -> None:
    """Only stdin, stdout, stderr (and, for the agent, its trace buffer) reach it."""
    r = run_tool(*trace, "--", "ls", "/proc/self/fd")
    assert r.returncode == 0, r.stderr
    fds = sorted(int(fd) for fd in r.stdout.split())
    assert fds == list(range(4 + extra))  # 0-2, the buffer, and the one ls opened to list them
