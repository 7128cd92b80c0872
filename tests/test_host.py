"""Host identity through SPLITLOCK_PROBE_ROOT: the live code path, driven by recorded trees."""

from __future__ import annotations

import pytest

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
