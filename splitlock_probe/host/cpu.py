"""The CPU: identity and flags from /proc/cpuinfo, read through paths.root().
A leaf: the host state, the perf event tables and the detectors all start here."""

from __future__ import annotations

import platform
from dataclasses import dataclass, field
from typing import Any

from splitlock_probe.host.paths import read_text


@dataclass(frozen=True)
class Cpu:
    vendor: str | None
    family: int | None
    model: int | None
    model_name: str | None
    flags: frozenset[str] = field(default_factory=frozenset)
    read: bool = True  # False: there was no /proc/cpuinfo to read

    @property
    def identity(self) -> str | None:
        """The "family 0x6 model 0x9a" of the CPU, or None when either is unknown."""
        if self.family is None or self.model is None:
            return None
        return f"family {self.family:#x} model {self.model:#x}"

    @property
    def hypervisor(self) -> bool:
        return "hypervisor" in self.flags

    def as_dict(self) -> dict[str, Any]:
        return {
            "vendor": self.vendor,
            "family": self.family,
            "model": self.model,
            "model_name": self.model_name,
            "hypervisor": self.hypervisor,
        }


def parse_cpuinfo(text: str) -> Cpu:
    """The first processor block of /proc/cpuinfo (all cores match on x86)."""
    info: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if info:
                break
            continue
        key, sep, value = line.partition(":")
        if sep:
            info.setdefault(key.strip(), value.strip())

    def number(key: str) -> int | None:
        try:
            return int(info[key], 0)
        except (KeyError, ValueError):
            return None

    return Cpu(
        vendor=info.get("vendor_id"),
        family=number("cpu family"),
        model=number("model"),
        model_name=info.get("model name"),
        flags=frozenset(info.get("flags", "").split()),
    )


def cpu() -> Cpu:
    text = read_text("/proc/cpuinfo")
    if text is None:
        return Cpu(None, None, None, None, read=False)
    return parse_cpuinfo(text)


X86_MACHINES = frozenset({"x86_64", "amd64", "i386", "i486", "i586", "i686"})


def machine() -> str:
    return platform.machine()


def is_x86(c: Cpu) -> bool:
    """x86 cpuinfo has vendor_id, so a recorded tree answers for its own host;
    without a cpuinfo to read, the running machine answers."""
    if c.read:
        return c.vendor is not None
    return machine().lower() in X86_MACHINES
