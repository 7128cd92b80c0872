"""What the kernel says about split locks and bus locks (docs/reference.md §4).

Source: arch/x86/kernel/cpu/bus_lock.c (intel.c before 6.12), whose pr_fmt is
"x86/split lock detection: ". The messages recognised here:

  #AC: <comm>/<tid> took a split_lock trap at address: 0x<ip>     warn, user space
  #AC: <comm>/<tid> fatal split_lock trap at address: 0x<ip>      KVM guest, fatal
  #AC: <comm>/<tid> bogus split_lock trap at address: 0x<ip>      KVM guest, bogus
  #DB: <comm>/<tid> took a bus_lock trap at address: 0x<ip>       #DB warn/ratelimit
  <function>: N callbacks suppressed                              printk ratelimit
  #AC: crashing the kernel ... and <action> on user-space split_locks   boot banner
  #DB: <action> on user-space bus_locks                                 boot banner
  #DB: setting system wide bus lock rate limit to N/sec                 boot banner
  warning about user-space split_locks          5.7-5.18 banners (no "#AC: ")
  sending SIGBUS on user-space split_locks
  disabled

comm is the task's name: up to 15 bytes that may hold spaces, '/' and ':'; the
pid printed is the thread id. A line that names a split or bus lock but does
not parse is Malformed: counted, never fatal.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from splitlock_probe.host.kmsg.lines import LogLine

SPLIT_LOCK = "split_lock"
BUS_LOCK = "bus_lock"
KINDS = (SPLIT_LOCK, BUS_LOCK)

_PREFIX = r"(?:x86/split lock detection: )?"
# The kernel's own bounds: a comm is at most 15 bytes (a vCPU thread's name
# too: "CPU 123/KVM"), a pid at most PID_MAX_LIMIT, an address 64 bits. A line
# beyond them is malformed, never an event: no 4,300-digit pid reaches int().
PID_MAX_LIMIT = 4_194_304
_TRAP = re.compile(
    _PREFIX + r"#(?:AC|DB): (?P<comm>.{1,64})/(?P<pid>\d{1,7}) (?P<action>took a|fatal|bogus) "
    r"(?P<kind>split_lock|bus_lock) trap at address: 0x(?P<ip>[0-9a-fA-F]{1,16})\s*$"
)
_MARKER = re.compile(r"(?:split_lock|bus_lock) trap at address")
# The ratelimit's summary names the function that printed; older kernels
# warned from handle_user_split_lock, newer from split_lock_warn.
_SUPPRESSED_BY = {
    "split_lock_warn": SPLIT_LOCK,
    "handle_user_split_lock": SPLIT_LOCK,
    "handle_guest_split_lock": SPLIT_LOCK,
    "handle_bus_lock": BUS_LOCK,
}
_SUPPRESSED = re.compile(r"(?P<func>\w+): (?P<count>\d{1,12}) callbacks suppressed\s*$")
_BANNER_AC = re.compile(
    _PREFIX + r"#AC: crashing the kernel on kernel split_locks and "
    r"(?P<action>warning|sending SIGBUS) on user-space split_locks"
)
_BANNER_DB = re.compile(
    _PREFIX + r"#DB: (?P<action>warning|sending SIGBUS) on user-space bus_locks"
)
_BANNER_RATE = re.compile(
    _PREFIX + r"#DB: setting system wide bus lock rate limit to (?P<n>\d{1,4})/sec"
)
_BANNER_OLD = re.compile(
    r"x86/split lock detection: (?P<action>warning about|sending SIGBUS on) user-space split_locks"
)
_BANNER_OFF = re.compile(r"x86/split lock detection: disabled\s*$")
_ACTION_MODE = {
    "warning": "warn",
    "warning about": "warn",
    "sending SIGBUS": "fatal",
    "sending SIGBUS on": "fatal",
}

# Threads of virtual machine monitors: their split locks are a guest's.
_VCPU_THREAD = re.compile(
    r"CPU \d+/KVM"  # QEMU
    r"|fc_vcpu ?\d+"  # Firecracker
    r"|crosvm_vcpu\d+"  # crosvm
    r"|vcpu\d+"  # cloud-hypervisor
)


@dataclass(frozen=True)
class TrapEvent:
    kind: str  # SPLIT_LOCK | BUS_LOCK
    comm: str
    pid: int  # the thread id
    ip: int
    guest: bool  # a VMM's vCPU thread, or KVM's fatal/bogus guest line
    action: str  # "took" | "fatal" | "bogus"
    time: str | None
    seq: int | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "comm": self.comm,
            "pid": self.pid,
            "ip": f"{self.ip:#x}",
            "guest": self.guest,
            "action": self.action,
            "time": self.time,
            "seq": self.seq,
        }


@dataclass(frozen=True)
class Suppressed:
    kind: str
    count: int


@dataclass(frozen=True)
class Banner:
    mode: str  # "off" | "warn" | "fatal" | "ratelimit:N"
    text: str


@dataclass(frozen=True)
class Malformed:
    text: str


Message = TrapEvent | Suppressed | Banner | Malformed


def classify(line: LogLine) -> Message | None:
    """What a kernel line says about split or bus locks; None for anything else."""
    if not line.kernel:
        return None
    text = line.text
    if (m := _TRAP.match(text)) and 0 < int(m["pid"]) <= PID_MAX_LIMIT:
        action = "took" if m["action"] == "took a" else m["action"]
        comm = m["comm"]
        return TrapEvent(
            m["kind"],
            comm,
            int(m["pid"]),
            int(m["ip"], 16),
            action != "took" or bool(_VCPU_THREAD.fullmatch(comm)),
            action,
            line.time,
            line.seq,
        )
    if _MARKER.search(text):
        return Malformed(text)
    if (m := _SUPPRESSED.match(text)) and m["func"] in _SUPPRESSED_BY:
        return Suppressed(_SUPPRESSED_BY[m["func"]], int(m["count"]))
    if m := _BANNER_AC.match(text) or _BANNER_DB.match(text) or _BANNER_OLD.match(text):
        return Banner(_ACTION_MODE[m["action"]], text)
    if m := _BANNER_RATE.match(text):
        return Banner(f"ratelimit:{int(m['n'])}", text)
    if _BANNER_OFF.match(text):
        return Banner("off", text)
    return None
