"""When this host booted, for turning the kernel log's seconds-since-boot into
wall-clock times (`log -T`, as dmesg -T does).

/proc/stat's btime is the boot in whole seconds since the epoch. Like dmesg
-T, this is only as right as the kernel's clock: printk stamps do not run
during suspend, so after a suspend the times drift early."""

from __future__ import annotations

import re
import time

from splitlock_probe.host.paths import read_text

_BTIME = re.compile(r"^btime\s+(\d{1,12})\s*$", re.MULTILINE)
_SINCE_BOOT = re.compile(r"\s*(\d{1,10})\.(\d{1,9})\s*")


def boot_time() -> float | None:
    """The boot time of the host (or of the recorded tree), or None."""
    text = read_text("/proc/stat")
    found = _BTIME.search(text or "")
    return float(found.group(1)) if found else None


def since_boot(stamp: str | None) -> float | None:
    """A kmsg or dmesg stamp ("5657.175277") as seconds since boot; None for a
    wall-clock or relative (-H "+0.5") stamp."""
    found = _SINCE_BOOT.fullmatch(stamp or "")
    return float(f"{found.group(1)}.{found.group(2)}") if found else None


def ctime(stamp: str | None, booted: float | None) -> str | None:
    """dmesg -T's form ("Tue Nov 11 03:49:26 2025", local time) of a
    since-boot stamp, or None when it cannot be had."""
    seconds = since_boot(stamp)
    if seconds is None or booted is None:
        return None
    try:
        return time.strftime("%a %b %e %H:%M:%S %Y", time.localtime(booted + seconds))
    except (OverflowError, OSError, ValueError):  # a recorded btime past any calendar
        return None
