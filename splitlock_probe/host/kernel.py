"""What the running kernel does with split locks (docs/reference.md §4).

The mode comes from the best source there is: the boot banner in the kernel
log (the kernel's own word), else the `split_lock_detect=` boot parameter,
else the default (warn) wherever the CPU flags show a detector. Every read
goes through paths.root(), so a recorded host tree answers like a live host.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from splitlock_probe.host.paths import read_text

OFF, WARN, FATAL, UNSUPPORTED = "off", "warn", "fatal", "unsupported"
RATELIMIT = "ratelimit"
AC_FLAG, DB_FLAG = "split_lock_detect", "bus_lock_detect"


@dataclass(frozen=True)
class KernelState:
    release: str | None
    cmdline_mode: str | None  # the split_lock_detect= value, as given
    cleared: tuple[str, ...]  # detector flags hidden with clearcpuid=
    banner_mode: str | None  # what the boot banner said, when the log was readable
    effective_mode: str  # off | warn | fatal | ratelimit:N | unsupported
    mode_source: str  # how effective_mode was decided, in words
    split_lock_detect: bool  # #AC detection present (cpuinfo flag)
    bus_lock_detect: bool  # #DB detection present (cpuinfo flag)
    split_lock_mitigate: int | None  # None: the file is missing (kernel before 6.2)
    perf_event_paranoid: int | None
    dmesg_restrict: int | None

    @property
    def misery(self) -> bool:
        """Each trapped split lock costs the task a 10 ms sleep: warn mode, #AC
        detection, and the "misery" of Linux 5.19+, which the sysctl
        split_lock_mitigate (6.2+) can turn off."""
        if not (self.split_lock_detect and self.effective_mode == WARN):
            return False
        if self.split_lock_mitigate is not None:
            return self.split_lock_mitigate == 1
        return self.release_at_least(5, 19)

    def release_at_least(self, major: int, minor: int) -> bool:
        try:
            got = tuple(int(p) for p in (self.release or "").split("-")[0].split(".")[:2])
        except ValueError:
            return False
        return got >= (major, minor)

    def as_dict(self) -> dict[str, Any]:
        return {
            "release": self.release,
            "cmdline_mode": self.cmdline_mode,
            "cleared": list(self.cleared),
            "banner_mode": self.banner_mode,
            "effective_mode": self.effective_mode,
            "mode_source": self.mode_source,
            "split_lock_mitigate": self.split_lock_mitigate,
            "perf_event_paranoid": self.perf_event_paranoid,
            "dmesg_restrict": self.dmesg_restrict,
        }


def read_int(path: str) -> int | None:
    """A sysctl-style integer file, or None when missing or not a number."""
    text = read_text(path)
    try:
        return int(text.strip()) if text is not None else None
    except ValueError:
        return None


def parse_cmdline(text: str) -> tuple[str | None, tuple[str, ...]]:
    """(split_lock_detect= value, flags named by clearcpuid=); the last one given wins.

    Words after a bare `--` belong to init, not the kernel.
    """
    mode: str | None = None
    cleared: list[str] = []
    for word in text.split():
        if word == "--":
            break
        key, sep, value = word.partition("=")
        if not sep:
            continue
        if key == "split_lock_detect":
            mode = value
        elif key == "clearcpuid":
            cleared += [v for v in value.split(",") if v in (AC_FLAG, DB_FLAG)]
    return mode, tuple(dict.fromkeys(cleared))


def _cmdline_effect(value: str, has_db: bool) -> tuple[str | None, str]:
    """What the kernel makes of split_lock_detect=value (sld_state_setup())."""
    if value in (OFF, WARN, FATAL):
        return value, f"boot parameter split_lock_detect={value}"
    name, _, rate = value.partition(":")
    # kstrtouint's digits: ASCII only ('²' passes str.isdigit), and bounded before int()
    digits = rate.isascii() and rate.isdigit() and len(rate.lstrip("0")) <= 4
    if name == RATELIMIT and digits and 1 <= int(rate) <= 1000:
        if has_db:
            return f"{RATELIMIT}:{int(rate)}", f"boot parameter split_lock_detect={value}"
        return None, f"split_lock_detect={value} ignored: ratelimit needs #DB bus-lock detection"
    return None, f"split_lock_detect={value} is not a mode the kernel knows; it ignores it"


def decide_mode(
    flags: frozenset[str],
    cmdline: str | None,
    banner_mode: str | None,
    x86: bool = True,
) -> tuple[str, str, str | None, tuple[str, ...]]:
    """(effective_mode, mode_source, cmdline_mode, cleared)."""
    cmdline_mode, cleared = parse_cmdline(cmdline or "")
    has_ac = AC_FLAG in flags and AC_FLAG not in cleared
    has_db = DB_FLAG in flags and DB_FLAG not in cleared
    if not x86:
        return UNSUPPORTED, "not an x86 CPU", cmdline_mode, cleared
    if banner_mode is not None:
        return banner_mode, "boot banner in the kernel log", cmdline_mode, cleared
    if not (has_ac or has_db):
        if cleared:
            why = f"clearcpuid={','.join(cleared)} hides the detector"
        elif "hypervisor" in flags:
            why = "no split_lock_detect/bus_lock_detect flag: guests never get #AC detection"
        else:
            why = "no split_lock_detect/bus_lock_detect flag in /proc/cpuinfo"
        return UNSUPPORTED, why, cmdline_mode, cleared
    note = ""
    if cmdline_mode is not None:
        mode, source = _cmdline_effect(cmdline_mode, has_db)
        if mode is not None:
            return mode, source, cmdline_mode, cleared
        note = f" ({source})"
    return WARN, "default: detector present, no boot parameter" + note, cmdline_mode, cleared


def read(flags: frozenset[str], banner_mode: str | None, x86: bool = True) -> KernelState:
    cmdline = read_text("/proc/cmdline")
    mode, source, cmdline_mode, cleared = decide_mode(flags, cmdline, banner_mode, x86)
    release = read_text("/proc/sys/kernel/osrelease")
    return KernelState(
        release=release.strip() if release else None,
        cmdline_mode=cmdline_mode,
        cleared=cleared,
        banner_mode=banner_mode,
        effective_mode=mode,
        mode_source=source,
        split_lock_detect=AC_FLAG in flags and AC_FLAG not in cleared,
        bus_lock_detect=DB_FLAG in flags and DB_FLAG not in cleared,
        split_lock_mitigate=read_int("/proc/sys/kernel/split_lock_mitigate"),
        perf_event_paranoid=read_int("/proc/sys/kernel/perf_event_paranoid"),
        dmesg_restrict=read_int("/proc/sys/kernel/dmesg_restrict"),
    )
