"""Audit the files a user names: each an ELF (executable, shared object,
object file, kernel module, vmlinux), or an error said for that file alone."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone

from splitlock_probe.audit.sites import HAZARD, SPLIT, FileAudit, audit
from splitlock_probe.binary.debuginfo import debuginfo
from splitlock_probe.binary.image import ElfImage
from splitlock_probe.errors import ExitStatus
from splitlock_probe.text import shown

X86_MACHINES = ("EM_X86_64", "EM_386")


@dataclass
class AuditResult:
    files: list[FileAudit] = field(default_factory=list)
    fail_on: str = "none"  # "none" | "split" | "hazard"
    interrupted: bool = False
    seconds: float = 0.0
    started: str = ""  # ISO 8601, for JUnit's timestamp

    def count(self, kind: str) -> int:
        return sum(f.count(kind) for f in self.files)

    @property
    def sites(self) -> int:
        return sum(len(f.sites) for f in self.files)

    def exit_status(self) -> ExitStatus:
        if self.interrupted:
            return ExitStatus.INTERRUPTED
        if self.fail_on in (SPLIT, HAZARD) and self.count(SPLIT):
            return ExitStatus.FINDING
        if self.fail_on == HAZARD and self.count(HAZARD):
            return ExitStatus.FINDING
        if any(f.error for f in self.files):
            # a file named and not audited: a gate that saw only part never passes
            return ExitStatus.USAGE
        return ExitStatus.OK


def audit_file(path: str) -> FileAudit:
    if not os.path.isfile(path):  # a FIFO or a device would block or never end
        what = "no such file" if not os.path.exists(path) else "not a regular file"
        return FileAudit(path, "?", "?", error=what)
    try:
        img = ElfImage(path)
    except Exception as exc:
        return FileAudit(
            path, "?", "?", error=f"not an ELF file we can read ({type(exc).__name__})"
        )
    out = FileAudit(path, img.abi, img.type)
    if img.machine not in X86_MACHINES:
        out.error = f"not x86 code ({img.machine})"
        return out
    out.debug = debuginfo(img).path
    try:
        out.sites = list(audit(img))
    except (KeyboardInterrupt, MemoryError):
        raise
    except Exception as exc:  # a damaged file is its own error, not ours
        out.error = f"damaged or truncated ELF ({type(exc).__name__}: {shown(str(exc), 120)})"
        out.sites = []
    return out


def audit_files(
    paths: Sequence[str], fail_on: str, progress: Callable[[str], None] | None = None
) -> AuditResult:
    result = AuditResult(
        fail_on=fail_on, started=datetime.now(timezone.utc).isoformat(timespec="seconds")
    )
    begun = time.monotonic()
    try:
        for path in paths:
            if progress is not None:
                progress(path)
            result.files.append(audit_file(path))
    except KeyboardInterrupt:
        result.interrupted = True  # what was audited is reported
    result.seconds = time.monotonic() - begun
    return result
