"""Host identity through SPLITLOCK_PROBE_ROOT: the live code path, driven by recorded trees."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from splitlock_probe.host import cpu as host
from splitlock_probe.host.paths import ROOT_ENV
from tests.conftest import DATA, cli_json

HOSTS = DATA / "hosts"


def test_parse_recorded_amd_vm(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ROOT_ENV, str(HOSTS / "amd-zen3-vm"))
    cpu = host.cpu()
    assert (cpu.vendor, cpu.family, cpu.model) == ("AuthenticAMD", 0x19, 0x11)
    assert cpu.hypervisor and "split_lock_detect" not in cpu.flags


def test_parse_recorded_intel_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ROOT_ENV, str(HOSTS / "intel-icx-server"))
    cpu = host.cpu()
    assert (cpu.vendor, cpu.family, cpu.model) == ("GenuineIntel", 6, 106)
    assert not cpu.hypervisor and "split_lock_detect" in cpu.flags


def test_missing_cpuinfo_is_unknown_not_fatal(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv(ROOT_ENV, str(tmp_path))
    assert host.cpu() == host.Cpu(None, None, None, None, read=False)


def test_scan_reports_the_host_it_reads(run_cli, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv(ROOT_ENV, str(HOSTS / "intel-icx-server"))
    doc = cli_json(run_cli("scan", "-p", "btsl", "--layout", "compat_vcpu_info", "--json"))
    assert doc["host"]["vendor"] == "GenuineIntel" and doc["host"]["model"] == 106
    assert doc["host"]["hypervisor"] is False


def test_a_cpu_family_that_is_no_number_is_unknown(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import shutil
    import subprocess
    import sys

    from tests.conftest import REPO

    root = tmp_path / "host"
    shutil.copytree(HOSTS / "intel-adl-client-warn", root)
    info = root / "proc" / "cpuinfo"
    info.write_text(info.read_text().replace("cpu family\t: 6", "cpu family\t: six"))
    env = {"PATH": "/usr/bin:/bin", ROOT_ENV: str(root), "COLUMNS": "100"}
    outputs = {}
    for args in (["host", "--json"], ["scan", "--json"], ["watch", "--once", "--json"]):
        done = subprocess.run([sys.executable, "-m", "splitlock_probe", *args], env=env,
                              cwd=REPO, capture_output=True, text=True, check=False)  # fmt: skip
        assert done.returncode == 0, (args, done.stderr)
        outputs[args[0]] = done.stdout
    assert json.loads(outputs["host"])["cpu"]["family"] is None


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=400))
def test_any_cpuinfo_text_parses(text: str) -> None:
    c = host.parse_cpuinfo(text)
    assert c.identity is None or c.identity.startswith("family ")
