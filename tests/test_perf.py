"""Hardware counters: sysfs formats and event resolution through recorded
trees; the perf_event_open plumbing for real, with software events."""

from __future__ import annotations

import errno
import os
import threading
import time
from typing import Any

import pytest

from splitlock_probe import native
from splitlock_probe.detectors import counters as perf_detector
from splitlock_probe.errors import UsageError
from splitlock_probe.host import cpu as host_cpu
from splitlock_probe.host import state as host
from splitlock_probe.host.paths import ROOT_ENV
from splitlock_probe.host.perf.counters import CounterGroup, by_pmu
from splitlock_probe.host.perf.events import OTHER, PERF_TYPE_SOFTWARE, SOFTWARE
from splitlock_probe.host.perf.resolve import Counter, parse_spec, split_specs
from splitlock_probe.host.perf.state import explain
from splitlock_probe.host.perf.sysfs import discover, parse_format
from splitlock_probe.native import perf as native_perf
from tests.conftest import DATA, cli_json

HOSTS = DATA / "hosts"


def software(name: str) -> Counter:
    return Counter(name, OTHER, "software", PERF_TYPE_SOFTWARE, SOFTWARE[name])


# --- sysfs formats --------------------------------------------------------------------------


def test_formats_spread_values_over_their_ranges() -> None:
    assert parse_format("config:0-7").place(0xF4) == 0xF4
    assert parse_format("config:8-15").place(0x10) == 0x1000
    assert parse_format("config:18").place(1) == 1 << 18
    amd_event = parse_format("config:0-7,32-35")  # AMD's 12-bit event select
    assert amd_event.width == 12
    assert amd_event.place(0x1D4) == (0x1 << 32) | 0xD4
    assert parse_format("config1:0-63").word == "config1"
    with pytest.raises(ValueError, match="does not fit"):
        parse_format("config:8-15").place(0x100)
    with pytest.raises(ValueError):
        parse_format("bogus:1-2")
    for hostile in ("config:0-99999999999999", "config:64", "config:9-3", "config:" + "9" * 5000):
        with pytest.raises(ValueError):  # a recorded sysfs: never a 10^14-bit integer
            parse_format(hostile)


def test_recorded_pmus_are_discovered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ROOT_ENV, str(HOSTS / "intel-rpl-client-hybrid"))
    pmus = discover()
    assert (pmus["cpu_core"].type, pmus["cpu_atom"].type) == (4, 10)
    assert pmus["cpu_core"].formats["umask"].ranges == ((8, 15),)
    assert pmus["software"].type == 1 and not pmus["software"].formats


# --- resolution from the CPU and from --event -------------------------------------------------

# tree -> [(name, pmu, type, config)]
RESOLVED = {
    "intel-skx-server": [("sq_misc.split_lock", "cpu", 4, 0x10F4)],
    "intel-icx-server": [("sq_misc.bus_lock", "cpu", 4, 0x10F4)],
    "intel-spr-server-fatal": [("sq_misc.bus_lock", "cpu", 4, 0x102C)],
    "intel-rpl-client-hybrid": [("sq_misc.bus_lock", "cpu_core", 4, 0x102C)],
    "intel-arl-client-hybrid": [
        ("sq_misc.bus_lock", "cpu_core", 4, 0x102C),
        ("bus_lock.split_locks", "cpu_atom", 10, 0x0863),
    ],
    "amd-zen3-server": [("ls_locks.bus_lock", "cpu", 4, 0x0125)],
    "amd-zen3-vm": [],
}


@pytest.mark.parametrize("tree", sorted(RESOLVED))
def test_events_resolve_per_recorded_host(tree: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ROOT_ENV, str(HOSTS / tree))
    pmu = host.state().pmu
    got = [(c.name, c.pmu, c.type, c.config) for c in pmu.counters]
    assert got == RESOLVED[tree]
    assert pmu.available is False  # a recorded host's counters are never opened
    if tree == "amd-zen3-vm":
        assert "no core PMU" in pmu.reason and "virtual machine" in pmu.reason
    else:
        assert "recorded host" in pmu.reason


def test_a_hybrid_core_type_without_an_event_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ROOT_ENV, str(HOSTS / "intel-rpl-client-hybrid"))
    (note,) = host.state().pmu.notes
    assert note.startswith("cpu_atom:") and "--event cpu_atom/" in note


def test_unknown_cpu_asks_for_an_event(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ROOT_ENV, str(HOSTS / "intel-adl-client-warn"))
    state = host.state()
    assert [c.pmu for c in state.pmu.counters] == ["cpu_core"]
    cpu = host_cpu.Cpu("GenuineIntel", 6, 0x01, "Pentium Pro", read=True)
    from splitlock_probe.host.perf.resolve import for_cpu

    assert for_cpu(cpu, discover()).counters == ()


def _spec(tree: str, spec: str, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int, int]]:
    monkeypatch.setenv(ROOT_ENV, str(HOSTS / tree))
    return [(c.pmu, c.type, c.config) for c in parse_spec(spec, host_cpu.cpu(), discover())]


@pytest.mark.parametrize(
    ("tree", "spec", "expected"),
    [
        ("intel-skx-server", "r10f4", [("cpu", 4, 0x10F4)]),
        ("intel-skx-server", "cpu/event=0xf4,umask=0x10/", [("cpu", 4, 0x10F4)]),
        ("intel-skx-server", "cpu/event=0x63,edge,name=locks/", [("cpu", 4, 0x40063)]),
        ("intel-skx-server", "SQ_MISC.SPLIT_LOCK", [("cpu", 4, 0x10F4)]),
        ("intel-rpl-client-hybrid", "r102c", [("cpu_core", 4, 0x102C), ("cpu_atom", 10, 0x102C)]),
        ("intel-rpl-client-hybrid", "cpu_atom/event=0x63,umask=0x8/", [("cpu_atom", 10, 0x863)]),
        ("amd-zen3-server", "cpu/event=0x1d4,umask=0x1/", [("cpu", 4, (1 << 32) | 0x1D4 | 0x100)]),
        ("amd-zen3-server", "ls_locks.bus_lock", [("cpu", 4, 0x125)]),
        ("amd-zen3-vm", "task-clock", [("software", 1, 1)]),
    ],
)
def test_event_specs(tree: str, spec: str, expected: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    assert _spec(tree, spec, monkeypatch) == expected


@pytest.mark.parametrize(
    ("tree", "spec", "message"),
    [
        ("intel-skx-server", "cpu/event=0xf4,color=3/", "has no term 'color' (it has: any, cmask"),
        ("intel-skx-server", "gpu/event=1/", "no PMU named gpu"),
        ("intel-skx-server", "cpu/umask=0x100/", "does not fit"),
        ("intel-spr-server-fatal", "sq_misc.split_lock", "not an event of this CPU"),
        ("amd-zen3-vm", "r10f4", "needs a core PMU"),
        ("intel-skx-server", "r1" + "0" * 20, "at most 64 bits"),  # was a 65+ bit config
        ("amd-zen3-vm", "lots-of-locks", "give a raw code"),
    ],
)
def test_bad_event_specs_say_what_would_do(
    tree: str, spec: str, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(UsageError, match=message.replace("(", r"\(")):
        _spec(tree, spec, monkeypatch)


def test_event_lists_split_like_perf() -> None:
    assert split_specs(["r10f4,cpu/event=0xf4,umask=0x10/", "task-clock"]) == [
        "r10f4",
        "cpu/event=0xf4,umask=0x10/",
        "task-clock",
    ]


def test_explanations_name_the_fix() -> None:
    assert "perf_event_paranoid=4" in explain(errno.EACCES, 4)
    assert "sysctl kernel.perf_event_paranoid=2" in explain(errno.EPERM, 3)
    assert "ENOENT" in explain(errno.ENOENT, 2) and "--event" in explain(errno.ENOENT, 2)
    assert "EOPNOTSUPP" in explain(errno.EOPNOTSUPP, 2)


# --- the plumbing, for real -----------------------------------------------------------------


def spin(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def test_a_group_counts_this_threads_work() -> None:
    # Context switches happen in the kernel: a count that excludes the kernel sees none.
    pair = [software("task-clock"), software("context-switches")]
    with CounterGroup(pair, exclude_kernel=False) as group:
        group.enable()
        spin(0.05)
        for _ in range(5):
            time.sleep(0.002)
        group.disable()
        reading = group.read()
    assert reading.counts["task-clock"] is not None
    assert 0.04e9 <= reading.counts["task-clock"] <= 10e9  # ns of this thread's CPU time
    assert reading.counts["context-switches"] >= 5  # type: ignore[operator]
    assert reading.running_ns > 0 and not reading.scaled


def test_a_disabled_group_counts_nothing_and_reset_clears_it() -> None:
    with CounterGroup([software("task-clock")]) as group:
        spin(0.01)  # opened disabled: not counted
        assert group.read().counts["task-clock"] == 0
        group.enable()
        spin(0.01)
        group.disable()
        assert group.read().counts["task-clock"] > 0  # type: ignore[operator]
        group.enable()  # enable resets first
        group.disable()
        assert group.read().counts["task-clock"] < 5_000_000  # type: ignore[operator]


def test_per_thread_counters_ignore_other_threads() -> None:
    stop = threading.Event()
    other = threading.Thread(target=lambda: [spin(0.001) for _ in iter(stop.is_set, True)])
    with CounterGroup([software("task-clock")]) as group:
        group.enable()
        other.start()
        time.sleep(0.1)  # this thread sleeps while the other one spins
        group.disable()
        stop.set()
        other.join()
        mine = group.read().counts["task-clock"]
    assert mine is not None and mine < 0.05e9


@pytest.mark.skipif(os.geteuid() != 0, reason="system-wide counting needs root here")
def test_system_wide_per_cpu_counting() -> None:
    cpu = sorted(os.sched_getaffinity(0))[0]
    os.sched_setaffinity(0, {cpu})
    try:
        with CounterGroup([software("task-clock")], pid=-1, cpu=cpu) as group:
            group.enable()
            spin(0.05)
            group.disable()
            total = group.read().counts["task-clock"]
    finally:
        os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))
    assert total is not None and total >= 0.04e9


def test_a_refused_event_raises_with_its_errno() -> None:
    # No core PMU in this VM; on a host with one, an undefined type is refused the same way.
    with pytest.raises(native.PerfOpenError) as info:
        native_perf.open_event(0xFFFF, 0)
    assert info.value.errno in (errno.ENOENT, errno.EINVAL, errno.EOPNOTSUPP, errno.ENODEV)


def test_groups_split_by_pmu() -> None:
    a = Counter("a", OTHER, "cpu_core", 4, 1)
    b = Counter("b", OTHER, "cpu_atom", 10, 1)
    c = Counter("c", OTHER, "cpu_core", 4, 2)
    assert by_pmu([a, b, c]) == [[a, c], [b]]
    with pytest.raises(ValueError, match="different PMUs"):
        CounterGroup([a, b])


# --- the detector ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("counts", "kinds", "says"),
    [
        ({"sq_misc.bus_lock": 8}, {"sq_misc.bus_lock": "bus_lock"}, "split"),
        ({"sq_misc.split_lock": 0}, {"sq_misc.split_lock": "split_lock"}, "clean"),
        ({"sq_misc.bus_lock": None}, {"sq_misc.bus_lock": "bus_lock"}, None),  # never ran
        ({"task-clock": 12345}, {"task-clock": "other"}, None),  # not a lock count
    ],
)
def test_counts_decide(counts: dict[str, Any], kinds: dict[str, str], says: str | None) -> None:
    raw = {"counts": counts, "kinds": kinds, "running_ns": 1000, "scaled": False}
    assert perf_detector.interpret(raw).says == says


def test_an_open_failure_is_evidence_not_a_crash() -> None:
    ev = perf_detector.interpret({"error": "the PMU does not know this event (ENOENT)"})
    assert (ev.status, ev.says) == ("failed", None)


def test_scan_counts_every_probe_for_real(run_cli) -> None:  # type: ignore[no-untyped-def]
    doc = cli_json(run_cli("scan", "--event", "task-clock,cs", "--json"))
    assert doc["detectors"]["perf"]["available"] is True
    assert "perf" in doc["settings"]["detectors"]
    assert [e["name"] for e in doc["settings"]["perf_events"]] == ["task-clock", "cs"]
    for p in doc["probes"]:
        (ev,) = [e for e in p["evidence"] if e["detector"] == "perf"]
        assert ev["counts"]["task-clock"] > 0 and ev["says"] is None
    assert doc["summary"]["disagreements"] == 0


def test_perf_without_a_pmu_is_plainly_unsupported(run_cli) -> None:  # type: ignore[no-untyped-def]
    if discover().get("cpu") or discover().get("cpu_core"):
        pytest.skip("this host has a core PMU")
    out = run_cli("scan", "--detect", "perf")
    assert out.exit_code == 4
    assert "no core PMU" in out.stderr


def test_counting_works_unprivileged(run_unprivileged) -> None:  # type: ignore[no-untyped-def]
    out = run_unprivileged("host", "--event", "task-clock", "--json")
    assert out.returncode == 0, out.stderr
    pmu = cli_json_text(out.stdout)["pmu"]
    assert pmu["available"] is True, pmu["reason"]


def cli_json_text(text: str) -> dict[str, Any]:
    import json

    doc: dict[str, Any] = json.loads(text)
    return doc


def test_the_scan_footer_totals_the_counts(run_cli) -> None:  # type: ignore[no-untyped-def]
    out = run_cli("scan", "--event", "task-clock").stdout
    assert "counters: task-clock" in out and "in split measurements" in out


def test_explain_reads_the_paranoid_level_when_not_told(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ROOT_ENV, str(HOSTS / "intel-adl-client-warn"))  # paranoid 4 recorded
    assert "perf_event_paranoid=4" in explain(errno.EACCES)
