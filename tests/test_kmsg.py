"""Kernel-log parsing: every wrapper, awkward comm names, guests, suppressed lines, banners."""

from __future__ import annotations

import pytest

from splitlock_probe.host.kmsg.lines import unwrap
from splitlock_probe.host.kmsg.messages import (
    BUS_LOCK,
    SPLIT_LOCK,
    Banner,
    Malformed,
    Suppressed,
    TrapEvent,
    classify,
)
from splitlock_probe.host.kmsg.tally import LogTally
from tests.conftest import DATA

KMSG = DATA / "kmsg"
STORY_FILES = [
    "kmsg-raw.txt",
    "dmesg.txt",
    "dmesg-H.txt",
    "dmesg-T.txt",
    "dmesg-x.txt",
    "syslog.txt",
    "journal-iso.txt",
    "nested.txt",
]
P = "x86/split lock detection: "
USER_WARN = "warning on user-space split_locks"
USER_SIGBUS = "sending SIGBUS on user-space split_locks"
CUT = "#AC: cut/1 took a split_lock trap at address: 0x"


def tally_of(name: str) -> LogTally:
    tally = LogTally()
    tally.feed(KMSG.joinpath(name).read_text().splitlines())
    return tally


@pytest.mark.parametrize("name", STORY_FILES)
def test_every_wrapper_gives_the_same_counts(name: str) -> None:
    t = tally_of(name)
    assert t.counts() == {SPLIT_LOCK: 6, BUS_LOCK: 1}
    assert t.suppressed == {SPLIT_LOCK: 7, BUS_LOCK: 3}
    assert t.malformed == 1
    assert t.mode == "warn"
    assert sum(e.guest for e in t.events) == 2
    comms = {(e.comm, e.pid) for e in t.events}
    assert ("Web Content", 4242) in comms and ("rpc::io/2", 9001) in comms
    assert ("CPU 0/KVM", 3324070) in comms
    assert not any(e.comm == "evil" for e in t.events)  # user space wrote it
    assert all(e.time for e in t.events)


def test_kmsg_records_keep_sequence_numbers_and_uptime() -> None:
    t = tally_of("kmsg-raw.txt")
    first = t.events[0]
    assert (first.comm, first.pid, first.seq, first.time) == (
        "stress-ng",
        12345,
        1202,
        "5657.175277",
    )
    assert first.ip == 0x55D0C3A1B2C4
    assert t.lines == 13  # metadata continuation lines are not lines of the log


def test_the_per_process_table_is_sorted_by_count() -> None:
    t = LogTally()
    t.feed(KMSG.joinpath("ratelimit.txt").read_text().splitlines())
    t.feed(KMSG.joinpath("dmesg.txt").read_text().splitlines())
    ranked = t.ranked()
    assert (ranked[0].comm, ranked[0].pid, ranked[0].bus_lock) == ("lockbus-test", 40112, 2)
    assert ranked[0].ips == {0x401136: 2}
    assert t.mode == "warn"  # the last banner read wins


@pytest.mark.parametrize(
    ("name", "mode", "suppressed"),
    [
        ("ratelimit.txt", "ratelimit:10", {SPLIT_LOCK: 0, BUS_LOCK: 41}),
        ("fatal.txt", "fatal", {SPLIT_LOCK: 0, BUS_LOCK: 0}),
        ("old-kernel.txt", "warn", {SPLIT_LOCK: 2, BUS_LOCK: 0}),
    ],
)
def test_boot_logs_of_other_modes(name: str, mode: str, suppressed: dict[str, int]) -> None:
    t = tally_of(name)
    assert t.mode == mode
    assert t.suppressed == suppressed


def test_a_fatal_guest_line_is_a_guest_event() -> None:
    (event,) = tally_of("fatal.txt").events
    assert (event.comm, event.pid, event.action, event.guest) == ("CPU 1/KVM", 77120, "fatal", True)


@pytest.mark.parametrize(
    ("text", "mode"),
    [
        (P + "#AC: crashing the kernel on kernel split_locks and " + USER_WARN, "warn"),
        (P + "#AC: crashing the kernel on kernel split_locks and " + USER_SIGBUS, "fatal"),
        (P + "#DB: warning on user-space bus_locks", "warn"),
        (P + "#DB: sending SIGBUS on user-space bus_locks", "fatal"),
        (P + "#DB: setting system wide bus lock rate limit to 1000/sec", "ratelimit:1000"),
        (P + "warning about user-space split_locks", "warn"),
        (P + "sending SIGBUS on user-space split_locks", "fatal"),
        (P + "disabled", "off"),
    ],
)  # fmt: skip
def test_banners(text: str, mode: str) -> None:
    line = unwrap(f"[    0.052011] {text}")
    assert line is not None
    msg = classify(line)
    assert isinstance(msg, Banner) and msg.mode == mode


@pytest.mark.parametrize(
    ("comm", "guest"),
    [
        ("a b c", False),
        ("x/y/z", False),
        ("tokio::rt::w", False),
        ("a/1 took a b", False),
        ("CPU 12/KVM", True),
        ("fc_vcpu 0", True),
        ("crosvm_vcpu3", True),
        ("vcpu7", True),
    ],
)
def test_awkward_comm_names(comm: str, guest: bool) -> None:
    line = unwrap(f"<4>[  1.0] {P}#AC: {comm}/777 took a split_lock trap at address: 0xdeadbeef")
    assert line is not None
    msg = classify(line)
    assert isinstance(msg, TrapEvent)
    assert (msg.comm, msg.pid, msg.ip, msg.guest) == (comm, 777, 0xDEADBEEF, guest)


@pytest.mark.parametrize(
    "raw",
    [
        "12,5,100,-;" + P + "#AC: fake/1 took a split_lock trap at address: 0x1",  # facility 1
        "Nov 11 03:49:25 host logger: " + P + "#AC: fake/1 took a split_lock trap at address: 0x1",
        "user  :warn  : #AC: fake/1 took a split_lock trap at address: 0x1",
    ],
)
def test_user_space_cannot_forge_a_trap(raw: str) -> None:
    line = unwrap(raw)
    assert line is not None and not line.kernel
    assert classify(line) is None


def test_non_timestamp_brackets_stay_in_the_message() -> None:
    line = unwrap("[    0.000000] [Firmware Bug]: TSC doesn't count with P0 frequency!")
    assert line is not None and line.text.startswith("[Firmware Bug]")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("split_lock_warn: 12 callbacks suppressed", Suppressed(SPLIT_LOCK, 12)),
        ("handle_guest_split_lock: 1 callbacks suppressed", Suppressed(SPLIT_LOCK, 1)),
        ("handle_bus_lock: 4 callbacks suppressed", Suppressed(BUS_LOCK, 4)),
        ("some_driver_func: 4 callbacks suppressed", None),
        (P + CUT, Malformed(P + CUT)),
        ("an unrelated line", None),
    ],
)  # fmt: skip
def test_suppressed_and_malformed(text: str, expected: object) -> None:
    line = unwrap(text)
    assert line is not None
    assert classify(line) == expected


def test_garbage_never_raises() -> None:
    t = LogTally()
    t.feed(["", "\x00\xff", "[", "4,x,y;", "<99999999999>", " KEY=1", "2026-13-45T99:99:99 x"])
    assert t.counts() == {SPLIT_LOCK: 0, BUS_LOCK: 0}


def test_the_tally_stays_bounded_and_its_totals_stay_true() -> None:
    from splitlock_probe.host.kmsg import tally as t

    tally = LogTally()
    n = t.MAX_EVENTS + t.MAX_PROCESSES + 500
    for i in range(n):
        tally.feed_line(f"#AC: w/{1 + i} took a split_lock trap at address: 0x{0x1000 + i:x}")
    assert len(tally.events) == t.MAX_EVENTS and tally.events_dropped == n - t.MAX_EVENTS
    assert len(tally.processes) == t.MAX_PROCESSES
    assert tally.processes_aged_out == n - t.MAX_PROCESSES
    assert tally.counts()["split_lock"] == n  # the aged-out ones still count
    one = LogTally()
    for i in range(t.MAX_SITES + 10):
        one.feed_line(f"#AC: w/7 took a split_lock trap at address: 0x{0x1000 + i:x}")
    (proc,) = one.processes.values()
    assert len(proc.ips) == t.MAX_SITES and proc.other_ips == 10
