"""Who a logged thread is while it lives: a real child process, its libc, its cgroup."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from splitlock_probe.host import procinfo
from splitlock_probe.host.paths import ROOT_ENV
from tests.conftest import cli_json


@pytest.fixture
def sleeper():  # type: ignore[no-untyped-def]
    proc = subprocess.Popen(["sleep", "60"])
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


def libc_address(pid: int) -> tuple[int, str, int]:
    """An address inside the child's executable libc mapping, its path and file offset.

    Polls: right after fork the child is still Python, not yet `sleep` with libc mapped.
    """
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if Path(f"/proc/{pid}/comm").read_text().strip() == "sleep":
            for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
                parts = line.split()
                if len(parts) == 6 and "x" in parts[1] and "libc" in Path(parts[5]).name:
                    lo = int(parts[0].split("-")[0], 16)
                    return lo + 0x40, parts[5], int(parts[2], 16) + 0x40
        time.sleep(0.01)
    pytest.fail("the child never mapped an executable libc")


def test_a_live_thread_is_named_and_its_trap_mapped(run_cli, sleeper, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    address, lib, offset = libc_address(sleeper.pid)
    log = tmp_path / "kern.log"
    log.write_text(
        f"[  1.000000] x86/split lock detection: #AC: sleep/{sleeper.pid} took a split_lock "
        f"trap at address: {address:#x}\n"
    )
    doc = cli_json(run_cli("log", "--file", str(log), "--json"))
    (proc,) = doc["processes"]
    assert proc["alive"] is True
    assert proc["task"]["tgid"] == sleeper.pid
    assert Path(proc["task"]["exe"]).name == "sleep"
    assert proc["task"]["cmdline"] == ["sleep", "60"]
    assert proc["task"]["cgroup"] is not None
    assert proc["sites"] == [
        {"ip": f"{address:#x}", "count": 1, "location": f"{Path(lib).name}+{offset:#x}"}
    ]


def test_a_reused_thread_id_counts_as_gone(run_cli, sleeper, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    libc_address(sleeper.pid)  # wait until it is `sleep`
    log = tmp_path / "kern.log"
    log.write_text(
        f"[  1.0] x86/split lock detection: #AC: someone else/{sleeper.pid} took a split_lock "
        "trap at address: 0x1000\n"
    )
    (proc,) = cli_json(run_cli("log", "--file", str(log), "--json"))["processes"]
    assert proc["alive"] is False and proc["task"] is None
    assert proc["sites"][0]["location"] is None


def test_containers_from_recorded_cgroups(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    docker = "3f2a9c1b7d4e8f60a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718"
    cases = {
        101: f"0::/system.slice/docker-{docker}.scope\n",
        102: "0::/kubepods.slice/kubepods-besteffort.slice/cri-containerd-0123456789abcdef.scope\n",
        103: "12:pids:/docker/aabbccddeeff00112233445566778899aabbccddeeff00112233445566778899\n"
             "0::/\n",
        104: "0::/user.slice/user-1000.slice/session-2.scope\n",
    }  # fmt: skip
    for pid, text in cases.items():
        (tmp_path / "proc" / str(pid)).mkdir(parents=True)
        (tmp_path / "proc" / str(pid) / "cgroup").write_text(text)
    monkeypatch.setenv(ROOT_ENV, str(tmp_path))
    assert procinfo._cgroup(101) == (f"/system.slice/docker-{docker}.scope", "3f2a9c1b7d4e")
    assert procinfo._cgroup(102)[1] == "0123456789ab"
    assert procinfo._cgroup(103) == ("/", "aabbccddeeff")
    assert procinfo._cgroup(104) == ("/user.slice/user-1000.slice/session-2.scope", None)


def test_a_recorded_task_with_endless_or_odd_files_is_looked_up_safely(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A recorded /proc/PID whose cmdline is a link to /dev/zero (psutil reads
    it whole: memory without end) and whose Tgid is '²' (int() raised: exit 3)."""
    task = tmp_path / "proc" / "4242"
    task.mkdir(parents=True)
    (task / "comm").write_text("victim\n")
    (task / "status").write_text("Name:\tvictim\nTgid:\t\u00b2\n")
    (task / "stat").write_text("4242 (victim) S 1\n")
    (task / "cmdline").symlink_to("/dev/zero")
    (task / "maps").symlink_to("/dev/zero")
    monkeypatch.setenv(ROOT_ENV, str(tmp_path))
    info = procinfo.lookup(4242, "victim")
    assert info is not None and info.tgid == 4242 and info.cmdline == ()
    assert procinfo.maps(4242) == []


def test_maps_locate_files_anonymous_memory_and_specials() -> None:
    mappings = [
        procinfo.Mapping(0x1000, 0x2000, 0x3000, "/usr/lib/libfoo.so.1"),
        procinfo.Mapping(0x5000, 0x6000, 0, ""),
        procinfo.Mapping(0x7000, 0x8000, 0, "[vdso]"),
    ]
    assert procinfo.locate(0x1010, mappings) == "libfoo.so.1+0x3010"
    assert procinfo.locate(0x5008, mappings) == "[anon]+0x8"
    assert procinfo.locate(0x7004, mappings) == "[vdso]+0x4"
    assert procinfo.locate(0x9000, mappings) is None
