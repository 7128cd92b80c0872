"""The host side of a VM: a vCPU thread in a host's log names its VM, from a
real (fake) QEMU process that lives while the log is read."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from splitlock_probe.host.paths import ROOT_ENV
from splitlock_probe.host.vm import vm_name
from tests.conftest import REPO


@pytest.mark.parametrize(
    ("argv", "cgroup", "name"),
    [
        (["qemu-system-x86_64", "-name", "guest=web1,debug-threads=on"], None, "qemu guest web1"),
        (["/usr/bin/qemu-kvm", "-name", "db2"], None, "qemu guest db2"),
        (["qemu-system-x86_64"], "0::/machine.slice/machine-qemu\\x2d3\\x2dlab.scope/vcpu0",
         "libvirt domain lab"),
        (["firecracker", "--id", "vm-7", "--api-sock", "/tmp/fc.sock"], None, "firecracker vm-7"),
        (["cloud-hypervisor", "--api-socket", "path=/run/ch/edge.sock"], None,
         "cloud-hypervisor edge"),
        (["bash"], "0::/user.slice", None),
    ],
)  # fmt: skip
def test_monitors_name_their_vms(argv: list[str], cgroup: str | None, name: str | None) -> None:
    assert vm_name(argv, cgroup) == name


def test_log_names_the_vm_behind_a_vcpu_thread(programs: Path, tmp_path: Path) -> None:
    qemu = subprocess.Popen(  # a QEMU-like argv, argv[0] as QEMU's own
        ["qemu-system-x86_64", "-name", "guest=testvm,debug-threads=on"],
        executable=str(programs / "fakeqemu"), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert qemu.stdout is not None
        tid = int(qemu.stdout.readline())
        log = tmp_path / "kern.log"
        log.write_text(
            f"[ 1.000000] x86/split lock detection: #AC: CPU 0/KVM/{tid} took a split_lock "
            "trap at address: 0x7f0000001000\n"
        )
        env = {k: v for k, v in os.environ.items() if k != ROOT_ENV}
        done = subprocess.run([sys.executable, "-m", "splitlock_probe", "log", "--file",
                               str(log), "--json"], capture_output=True, text=True, cwd=REPO,
                              env=env, check=False)  # fmt: skip
        (proc,) = json.loads(done.stdout)["processes"]
        assert proc["guest"] is True and proc["pid"] == tid
        assert proc["task"]["vm"] == "qemu guest testvm"
        text = subprocess.run([sys.executable, "-m", "splitlock_probe", "log", "--file", str(log)],
                              capture_output=True, text=True, cwd=REPO, env={**env, "COLUMNS":
                              "200"}, check=False).stdout  # fmt: skip
        assert "guest vCPU of qemu guest testvm" in text
    finally:
        assert qemu.stdin is not None and qemu.stdout is not None
        qemu.stdin.close()
        qemu.wait(timeout=10)
        qemu.stdout.close()
