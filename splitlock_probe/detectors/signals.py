"""Naming the signals the core catches, and what each one means."""

from __future__ import annotations

import signal
from typing import Any

BUS_ADRALN = 1  # <asm-generic/siginfo.h>
SI_KERNEL = 0x80

_SIGBUS_CODES = {1: "BUS_ADRALN", 2: "BUS_ADRERR", 3: "BUS_OBJERR", 4: "BUS_MCEERR_AR"}
_SIGSEGV_CODES = {1: "SEGV_MAPERR", 2: "SEGV_ACCERR", SI_KERNEL: "SI_KERNEL"}


def describe(fault: dict[str, Any]) -> dict[str, Any]:
    signo = int(fault["signo"])
    code = int(fault["si_code"])
    codes = _SIGBUS_CODES if signo == signal.SIGBUS else _SIGSEGV_CODES
    return {
        "signal": signal.Signals(signo).name,
        "si_code": codes.get(code, str(code)),
        "ip": f"{int(fault.get('ip', 0)):#x}",
    }


def is_alignment_trap(fault: dict[str, Any]) -> bool:
    return int(fault["signo"]) == signal.SIGBUS and int(fault["si_code"]) == BUS_ADRALN


def is_general_protection(fault: dict[str, Any]) -> bool:
    # #GP reaches user space as SIGSEGV with si_code SI_KERNEL.
    return int(fault["signo"]) == signal.SIGSEGV and int(fault["si_code"]) == SI_KERNEL
