"""The probe worker: a child process that runs measurements and streams results.

Protocol (JSON lines): it first writes {"ready": true, "tsc_hz": F} (or
{"error": "..."}), then answers each request line
{"i", "prim", "ea", "bit", "detect", "batches", "iterations", "target", "pace",
"thread"} with one result line {"i", "tid", "usage", "timing", "actrap"}. A
crash or hang here costs the parent one measurement; the parent restarts the
worker and goes on.

With "thread", the measurement runs in a fresh thread named PROBE_THREAD_NAME: the
kernel reports a split lock once per task, and its log line names the thread
id, which the result carries. (A thread costs ~0.1 ms, so only scans that
read the kernel's per-task evidence ask for one.) `usage` is the thread's own
wall time, CPU time and voluntary context switches (getrusage RUSAGE_THREAD:
psutil counts per process, and this process's main thread switches once per
measurement while it waits): the kernel's 10 ms split-lock sleeps show there.
`pace` requests wait for the Pacer, so the kernel's log ratelimit never drops
their lines.

SPLITLOCK_PROBE_TEST_INJECT="crash:EA,hang:EA,sleep:EA,kmsg:EA" makes the
measurement at effective address EA crash, hang, sleep 10 ms inside its
thread the way the kernel's misery does, or append the kernel's warn line for
its thread to <root>/dev/kmsg when that is a recorded file: test hooks for
what this machine cannot produce.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import sys
import threading
import time
from typing import Any

from splitlock_probe import native
from splitlock_probe.errors import ProbeError
from splitlock_probe.host.paths import host_path
from splitlock_probe.model.access import primitive
from splitlock_probe.native import probe as core
from splitlock_probe.scan.pacing import Pacer
from splitlock_probe.scan.plan import ARENA_PAGES, PROBE_PAGE, PROBE_THREAD_NAME

INJECT_ENV = "SPLITLOCK_PROBE_TEST_INJECT"


def _fault_dict(fault: core.Fault) -> dict[str, Any]:
    return {
        "signo": fault.signo,
        "si_code": fault.si_code,
        "ac_armed": fault.ac_armed,
        "ip": fault.ip,
    }


def _timing_dict(t: core.Timing | core.Fault) -> dict[str, Any]:
    if isinstance(t, core.Fault):
        return {"fault": _fault_dict(t)}
    return {
        "min_cycles": t.min_cycles,
        "median_cycles": t.median_cycles,
        "iterations": t.iterations,
        "batches": t.batches,
    }


def _injections() -> dict[int, frozenset[str]]:
    out: dict[int, frozenset[str]] = {}
    for part in filter(None, os.environ.get(INJECT_ENV, "").split(",")):
        what, _, ea = part.partition(":")
        out[int(ea)] = out.get(int(ea), frozenset()) | {what}
    return out


def _name_thread() -> str | None:
    """Name this thread for whoever reads the log; the name it really has."""
    try:
        with open("/proc/thread-self/comm", "w") as comm:
            comm.write(PROBE_THREAD_NAME)
    except OSError:
        pass  # then the kernel prints the name it has, which we report
    try:
        with open("/proc/thread-self/comm") as comm:
            return comm.read().rstrip("\n")
    except OSError:
        return None


def _append_warn_line(tid: int, ip: int) -> None:
    """Test hook: write the kernel's warn line for this thread into a recorded log
    (`ip` is a stand-in: attribution goes by thread id)."""
    path = host_path("/dev/kmsg")
    if os.environ.get("SPLITLOCK_PROBE_ROOT") and path.is_file():
        usec = time.monotonic_ns() // 1000
        text = f"#AC: {PROBE_THREAD_NAME}/{tid} took a split_lock trap at address: {ip:#x}"
        with path.open("a") as log:
            log.write(f"4,0,{usec},-;x86/split lock detection: {text}\n")


def _open_counters(specs: list[dict[str, Any]]) -> tuple[list[Any], str | None]:
    """One counter group per PMU for the calling thread, or why they did not open."""
    from splitlock_probe.host.perf.counters import open_groups
    from splitlock_probe.host.perf.resolve import Counter
    from splitlock_probe.host.perf.state import explain

    try:
        return open_groups([Counter.from_dict(d) for d in specs]), None
    except native.PerfOpenError as exc:
        return [], explain(exc.errno)


def _perf_result(groups: list[Any]) -> dict[str, Any]:
    """Counts by event name (summed over PMUs: a raw event opens on each core type)."""
    counts: dict[str, int | None] = {}
    kinds: dict[str, str] = {}
    running, scaled = [], False
    for g in groups:
        reading = g.read()
        running.append(reading.running_ns)
        scaled |= reading.scaled
        for c in g.counters:
            value = reading.counts[c.name]
            kinds[c.name] = c.kind
            if value is None:
                counts.setdefault(c.name, None)
            else:
                counts[c.name] = (counts.get(c.name) or 0) + value
    return {"counts": counts, "kinds": kinds, "running_ns": min(running), "scaled": scaled}


def measure(
    arena: core.Arena, req: dict[str, Any], inject: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """One measurement, in the calling thread."""
    prim = primitive(req["prim"])
    address = arena.address(PROBE_PAGE * 4096 + req["ea"])
    bit = req["bit"]
    tid = threading.get_native_id()
    result: dict[str, Any] = {"i": req["i"], "tid": tid}
    before, wall = resource.getrusage(resource.RUSAGE_THREAD), time.perf_counter()
    if "sleep" in inject:
        time.sleep(0.010)
    if "kmsg" in inject:
        _append_warn_line(tid, 0x400000 + req["ea"])
    groups: list[Any] = []
    if req.get("perf"):
        groups, error = _open_counters(req["perf"])
        if error:
            result["perf"] = {"error": error}
    try:
        for g in groups:
            g.enable()
        if "timing" in req["detect"] or groups:  # the counters count the timed op
            t = core.time_op(prim, address, bit, req["batches"], req["iterations"], req["target"])
            for g in groups:
                g.disable()
            if groups:
                result["perf"] = _perf_result(groups)
            if "timing" in req["detect"]:
                result["timing"] = _timing_dict(t)
    finally:
        for g in groups:
            g.close()
    if "actrap" in req["detect"]:
        fault = core.trap(prim, address, bit)
        result["actrap"] = {
            "trapped": fault is not None,
            "fault": None if fault is None else _fault_dict(fault),
        }
    after = resource.getrusage(resource.RUSAGE_THREAD)
    result["usage"] = {
        "wall_s": time.perf_counter() - wall,
        "cpu_s": (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
        "nvcsw": after.ru_nvcsw - before.ru_nvcsw,
    }
    return result


def measure_in_fresh_thread(
    arena: core.Arena, req: dict[str, Any], inject: frozenset[str] = frozenset()
) -> dict[str, Any]:
    box: dict[str, Any] = {}

    def body() -> None:
        comm = _name_thread()
        try:
            box["result"] = {**measure(arena, req, inject), "comm": comm}
        except BaseException as exc:  # handed to the main thread, which dies of it
            box["error"] = exc

    thread = threading.Thread(target=body, name=PROBE_THREAD_NAME)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    result: dict[str, Any] = box["result"]
    return result


def main() -> int:
    # The parent owns Ctrl-C; it kills us when it wants us gone.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    out = sys.stdout
    try:
        arena = core.Arena(ARENA_PAGES)
        hz = core.tsc_hz()
    except ProbeError as exc:
        out.write(json.dumps({"error": str(exc)}) + "\n")
        out.flush()
        return 1
    out.write(json.dumps({"ready": True, "tsc_hz": hz, "pid": os.getpid()}) + "\n")
    out.flush()
    inject = _injections()
    pacer = Pacer()
    for line in sys.stdin:
        req = json.loads(line)
        actions = frozenset() if req.get("baseline") else inject.get(req["ea"], frozenset())
        if "crash" in actions:
            os.kill(os.getpid(), signal.SIGSEGV)
        if "hang" in actions:
            time.sleep(3600)
        if req.get("pace"):
            pacer.wait()
        run = measure_in_fresh_thread if req.get("thread") else measure
        out.write(json.dumps(run(arena, req, actions)) + "\n")
        out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
