"""The kernel's split-lock mode and `host`, through recorded host trees."""

from __future__ import annotations

import pytest

from splitlock_probe.detectors.availability import detector_availability
from splitlock_probe.host import cpu as host_cpu
from splitlock_probe.host import kernel
from splitlock_probe.host import state as host
from splitlock_probe.host.paths import ROOT_ENV
from tests.conftest import DATA, cli_json

HOSTS = DATA / "hosts"

# tree -> (effective_mode, mode_source starts with, penalty, kmsg available, misery available)
TREES = {
    "amd-zen3-vm": ("unsupported", "no split_lock_detect/bus_lock_detect", False, False, False),
    "intel-adl-client-warn": ("warn", "boot banner", True, True, True),
    "intel-spr-server-fatal": ("fatal", "boot banner", False, True, False),
    "intel-spr-server-ratelimit": ("ratelimit:10", "boot banner", False, True, False),
    "intel-icx-server-off": ("off", "boot parameter split_lock_detect=off", False, False, False),
    "intel-adl-client-clearcpuid": ("warn", "boot banner", False, True, False),
    "intel-icx-server": ("warn", "boot banner", False, True, False),
    "arm64-graviton3": ("unsupported", "not an x86 CPU", False, False, False),
}  # fmt: skip


@pytest.mark.parametrize("tree", sorted(TREES))
def test_each_recorded_host(tree: str, monkeypatch: pytest.MonkeyPatch) -> None:
    mode, source, penalty, kmsg_ok, misery_ok = TREES[tree]
    monkeypatch.setenv(ROOT_ENV, str(HOSTS / tree))
    state = host.state()
    assert state.kernel.effective_mode == mode
    assert state.kernel.mode_source.startswith(source)
    assert state.kernel.misery is penalty
    available = detector_availability(state)
    assert available["kmsg"].available is kmsg_ok, available["kmsg"].reason
    assert available["misery"].available is misery_ok, available["misery"].reason


def test_old_kernel_has_no_mitigate_file_and_no_penalty(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ROOT_ENV, str(HOSTS / "intel-icx-server"))
    k = host.state().kernel
    assert k.split_lock_mitigate is None and k.release == "5.15.0-91-generic"
    assert not k.misery


def test_clearcpuid_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ROOT_ENV, str(HOSTS / "intel-adl-client-clearcpuid"))
    state = host.state()
    assert state.kernel.cleared == ("split_lock_detect",)
    assert not state.kernel.split_lock_detect and state.kernel.bus_lock_detect
    assert "#DB" in detector_availability(state)["kmsg"].reason


AC = "split_lock_detect"
FLAGS = frozenset({AC, "bus_lock_detect"})


@pytest.mark.parametrize(
    ("flags", "cmdline", "banner", "mode", "source"),
    [
        (FLAGS, "ro quiet", None, "warn", "default"),
        (FLAGS, "split_lock_detect=fatal", None, "fatal", "boot parameter"),
        (FLAGS, "split_lock_detect=ratelimit:1000", None, "ratelimit:1000", "boot parameter"),
        (FLAGS, "split_lock_detect=ratelimit:0", None, "warn", "default"),  # out of range: ignored
        (FLAGS, "split_lock_detect=ratelimit:00010", None, "ratelimit:10", "boot parameter"),
        (FLAGS, "split_lock_detect=ratelimit:1000000000005", None, "warn", "default"),
        (FLAGS, "split_lock_detect=ratelimit:" + "9" * 5000, None, "warn", "default"),  # was exit 3
        (FLAGS, "split_lock_detect=ratelimit:\u00b2", None, "warn", "default"),  # '²': was exit 3
        (frozenset({AC}), "split_lock_detect=ratelimit:10", None, "warn", "default"),
        (FLAGS, "split_lock_detect=bogus", None, "warn", "default"),
        (FLAGS, "split_lock_detect=off split_lock_detect=fatal", None, "fatal", "boot parameter"),
        (FLAGS, "ro -- split_lock_detect=fatal", None, "warn", "default"),  # init's argument
        (FLAGS, "split_lock_detect=off", "warn", "warn", "boot banner"),  # the kernel's word wins
        (frozenset(), "clearcpuid=split_lock_detect,514", None, "unsupported", "clearcpuid"),
        (frozenset({"hypervisor"}), "", None, "unsupported", "no split_lock_detect"),
    ],
)  # fmt: skip
def test_decide_mode(
    flags: frozenset[str], cmdline: str, banner: str | None, mode: str, source: str
) -> None:
    got, why, _, _ = kernel.decide_mode(flags, cmdline, banner)
    assert got == mode
    assert source in why


def test_ignored_parameters_say_why() -> None:
    _, why, raw, _ = kernel.decide_mode(
        frozenset({"split_lock_detect"}), "split_lock_detect=ratelimit:10", None
    )
    assert raw == "ratelimit:10" and "ratelimit needs #DB" in why


@pytest.mark.parametrize("tree", sorted(TREES))
def test_host_json(tree: str, run_cli, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv(ROOT_ENV, str(HOSTS / tree))
    result = run_cli("host", "--json")
    doc = cli_json(result)
    assert doc["schema"] == "splitlock-probe/host/v1"
    assert doc["kernel"]["effective_mode"] == TREES[tree][0]
    assert set(doc["detectors"]) == {"timing", "actrap", "kmsg", "misery", "perf"}
    assert all(isinstance(d["reason"], str) and d["reason"] for d in doc["detectors"].values())
    assert result.exit_code == (4 if tree.startswith("arm64") else 0)
    human = run_cli("host")
    assert human.exit_code == result.exit_code
    assert TREES[tree][0] in human.stdout


def test_host_json_fields(run_cli, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv(ROOT_ENV, str(HOSTS / "intel-spr-server-fatal"))
    doc = cli_json(run_cli("host", "--json"))
    assert doc["cpu"] == {
        "vendor": "GenuineIntel",
        "family": 6,
        "model": 0x8F,
        "model_name": "Intel(R) Xeon(R) Platinum 8480+",
        "hypervisor": False,
    }
    assert doc["flags"] == {"split_lock_detect": True, "bus_lock_detect": True}
    k = doc["kernel"]
    assert (k["cmdline_mode"], k["banner_mode"], k["split_lock_mitigate"]) == ("fatal", "fatal", 1)
    assert (k["perf_event_paranoid"], k["release"]) == (1, "6.12.9")
    assert doc["log"]["readable"] is True


def test_host_live(run_cli) -> None:  # type: ignore[no-untyped-def]
    """A VM without detectors (the development machines): the tool says so plainly."""
    flags = host_cpu.cpu().flags
    if "hypervisor" not in flags or flags & {"split_lock_detect", "bus_lock_detect"}:
        pytest.skip("this check describes a virtual machine without split-lock detection")
    doc = cli_json(run_cli("host", "--json"))
    assert doc["kernel"]["effective_mode"] == "unsupported"
    assert doc["detectors"]["kmsg"]["available"] is False
    assert "guests never get #AC" in doc["detectors"]["kmsg"]["reason"]
    assert doc["detectors"]["timing"]["available"] is True
