"""What the host is: CPU identity and flags, read through paths.root()."""

from __future__ import annotations

import platform
from dataclasses import dataclass, field
from typing import Any

from splitlock_probe.paths import read_text


@dataclass(frozen=True)
class Cpu:
    vendor: str | None
    family: int | None
    model: int | None
    model_name: str | None
    flags: frozenset[str] = field(default_factory=frozenset)

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
        return Cpu(None, None, None, None)
    return parse_cpuinfo(text)


def machine() -> str:
    return platform.machine()
