"""The probe worker: a child process that runs measurements and streams results.

Protocol (JSON lines): it first writes {"ready": true, "tsc_hz": F} (or
{"error": "..."}), then answers each request line
{"i", "prim", "ea", "bit", "detect", "batches", "iterations", "target"} with
one result line {"i", "timing", "actrap"}. A crash or hang here costs the
parent one measurement; the parent restarts the worker and goes on.

SPLITLOCK_PROBE_TEST_INJECT="crash:EA,hang:EA" makes the measurement at
effective address EA crash or hang: the test hook for that isolation.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from typing import Any

from splitlock_probe import native
from splitlock_probe.errors import ProbeError
from splitlock_probe.model import primitive
from splitlock_probe.plan import ARENA_PAGES, PROBE_PAGE

INJECT_ENV = "SPLITLOCK_PROBE_TEST_INJECT"


def _fault_dict(fault: native.Fault) -> dict[str, Any]:
    return {
        "signo": fault.signo,
        "si_code": fault.si_code,
        "ac_armed": fault.ac_armed,
        "ip": fault.ip,
    }


def _injections() -> dict[int, str]:
    out: dict[int, str] = {}
    for part in filter(None, os.environ.get(INJECT_ENV, "").split(",")):
        what, _, ea = part.partition(":")
        out[int(ea)] = what
    return out


def execute(arena: native.Arena, req: dict[str, Any]) -> dict[str, Any]:
    prim = primitive(req["prim"])
    address = arena.address(PROBE_PAGE * 4096 + req["ea"])
    bit = req["bit"]
    result: dict[str, Any] = {"i": req["i"]}
    if "timing" in req["detect"]:
        t = native.time_op(prim, address, bit, req["batches"], req["iterations"], req["target"])
        if isinstance(t, native.Fault):
            result["timing"] = {"fault": _fault_dict(t)}
        else:
            result["timing"] = {
                "min_cycles": t.min_cycles,
                "median_cycles": t.median_cycles,
                "iterations": t.iterations,
                "batches": t.batches,
            }
    if "actrap" in req["detect"]:
        fault = native.trap(prim, address, bit)
        result["actrap"] = {
            "trapped": fault is not None,
            "fault": None if fault is None else _fault_dict(fault),
        }
    return result


def main() -> int:
    # The parent owns Ctrl-C; it kills us when it wants us gone.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    out = sys.stdout
    try:
        arena = native.Arena(ARENA_PAGES)
        hz = native.tsc_hz()
    except ProbeError as exc:
        out.write(json.dumps({"error": str(exc)}) + "\n")
        out.flush()
        return 1
    out.write(json.dumps({"ready": True, "tsc_hz": hz, "pid": os.getpid()}) + "\n")
    out.flush()
    inject = _injections()
    for line in sys.stdin:
        req = json.loads(line)
        action = inject.get(req["ea"]) if not req.get("baseline") else None
        if action == "crash":
            os.kill(os.getpid(), signal.SIGSEGV)
        elif action == "hang":
            time.sleep(3600)
        out.write(json.dumps(execute(arena, req)) + "\n")
        out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
