"""Runs a plan's measurements in a worker process (worker.py), isolated.

A worker that dies or stops answering costs the measurement it was on: that
one is reported as crashed or timed out, a fresh worker takes the rest.
Ctrl-C stops the run and returns what was measured, marked interrupted; so
does a spent --budget, marked with the reason.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any

import splitlock_probe
from splitlock_probe.errors import ProbeError
from splitlock_probe.scan import pacing
from splitlock_probe.scan.outcome import Failure, Outcome
from splitlock_probe.scan.plan import Measurement

# Requests sent before reading answers: small enough that they always fit in
# the pipe, so parent and worker can never both block on a full pipe.
CHUNK = 64


@dataclass(frozen=True)
class Settings:
    detectors: tuple[str, ...] = ("timing", "actrap")
    batches: int = 15
    iterations: int = 0  # 0: as many as make a batch last target_cycles
    target_cycles: int = 20_000
    timeout: float = 10.0  # seconds one measurement may take
    pace: bool = False  # space out measurements predicted to split (the kernel log ratelimit)
    fresh_threads: bool = False  # each measurement in a new thread: the kernel reports per task
    perf_counters: tuple[dict[str, Any], ...] = ()  # perf.resolve.Counter.as_dict() each
    budget: float | None = None  # seconds the whole run may take; None: no limit


@dataclass
class ProbeRun:
    """Every measurement's outcome, and how the run went."""

    outcomes: dict[int, Outcome] = field(default_factory=dict)
    tsc_hz: float | None = None
    stopped: str | None = None  # why the run ended early: "interrupted" | "budget"
    worker_restarts: int = 0
    started: str = ""  # ISO 8601, local time with offset
    elapsed_s: float = 0.0

    @property
    def interrupted(self) -> bool:
        return self.stopped == "interrupted"


class _BudgetSpent(Exception):
    """--budget ran out: stop the way Ctrl-C does, with the reason."""


class WorkerFailure(Exception):
    def __init__(self, failure: Failure) -> None:
        super().__init__(str(failure))
        self.failure = failure


def worker_argv() -> list[str]:
    """The worker's command line: this interpreter, and the very package this
    process imported. `python -m` and `-c` put the working directory first on
    sys.path, where a source checkout (without its compiled core) would shadow
    the installed package; so sys.path[0] is replaced by the package's home."""
    home = os.path.dirname(os.path.dirname(os.path.abspath(splitlock_probe.__file__)))
    code = (
        f"import sys; sys.path[0] = {home!r}; "
        "from splitlock_probe.scan.worker import main; sys.exit(main())"
    )
    return [sys.executable, "-c", code]


class _Worker:
    def __init__(self, env: dict[str, str] | None) -> None:
        # Closed in close(): it outlives this constructor with the worker.
        self._stderr: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115
        self.proc = subprocess.Popen(
            worker_argv(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=env,
            start_new_session=True,  # Ctrl-C reaches the parent only
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self._stdin = self.proc.stdin
        self._fd = self.proc.stdout.fileno()
        os.set_blocking(self._fd, False)
        self._sel = selectors.DefaultSelector()
        self._sel.register(self._fd, selectors.EVENT_READ)
        self._buf = b""

    def send(self, requests: Sequence[dict[str, Any]]) -> None:
        data = "".join(json.dumps(r) + "\n" for r in requests).encode()
        try:
            self._stdin.write(data)
            self._stdin.flush()
        except BrokenPipeError:
            raise WorkerFailure(self._death()) from None

    def receive(self, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not self._sel.select(left):
                self.kill()
                raise WorkerFailure(
                    Failure("timeout", f"no answer within {timeout:g} s; worker killed")
                )
            chunk = os.read(self._fd, 65536)
            if not chunk:
                raise WorkerFailure(self._death())
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        reply: dict[str, Any] = json.loads(line)
        return reply

    def _death(self) -> Failure:
        code = self.proc.wait()
        self._stderr.seek(0)
        tail = self._stderr.read().decode(errors="replace").strip().splitlines()[-1:]
        if code < 0:
            what = f"worker killed by {signal.Signals(-code).name}"
        else:
            what = f"worker exited with status {code}"
        return Failure("crashed", what + (f" ({tail[0]})" if tail else ""))

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def close(self, kill: bool = False) -> None:
        """Let the worker finish (EOF on its stdin), or kill it; free its pipes and files."""
        if kill:
            self.kill()
        with contextlib.suppress(BrokenPipeError):
            self._stdin.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.kill()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._sel.close()
        self._stderr.close()


def predicted_split(m: Measurement) -> bool:
    return m.primitive.predict(m.access).split_lock


def paced(m: Measurement, settings: Settings) -> bool:
    return settings.pace and predicted_split(m)


def _request(m: Measurement, settings: Settings) -> dict[str, Any]:
    return {
        "pace": paced(m, settings),
        "thread": settings.fresh_threads,
        "perf": list(settings.perf_counters) if "perf" in settings.detectors else [],
        "i": m.index,
        "prim": m.primitive.name,
        "ea": m.ea,
        "bit": m.bit,
        "baseline": m.baseline,
        "detect": list(settings.detectors),
        "batches": settings.batches,
        "iterations": settings.iterations,
        "target": settings.target_cycles,
    }


def _start(env: dict[str, str] | None, timeout: float) -> tuple[_Worker, float]:
    worker = _Worker(env)
    try:
        hello = worker.receive(timeout)
    except WorkerFailure as exc:
        worker.close(kill=True)
        raise ProbeError(f"the probe worker did not start: {exc}") from None
    if "error" in hello:
        worker.close(kill=True)
        raise ProbeError(f"the probe worker did not start: {hello['error']}")
    return worker, float(hello["tsc_hz"])


def run(
    measurements: Sequence[Measurement],
    settings: Settings,
    progress: Callable[[int], None] | None = None,
    env: dict[str, str] | None = None,
) -> ProbeRun:
    """Run every measurement; never raises for a probe's own failure."""
    result = ProbeRun(started=datetime.now().astimezone().isoformat(timespec="seconds"))
    began = time.monotonic()
    pending = deque(measurements)
    worker: _Worker | None = None
    deadline = None if settings.budget is None else time.monotonic() + settings.budget
    try:
        while pending:
            if deadline is not None and time.monotonic() >= deadline:
                result.stopped = "budget"
                break
            if worker is None:
                worker, result.tsc_hz = _start(env, settings.timeout)
            chunk = [pending.popleft() for _ in range(min(CHUNK, len(pending)))]
            try:
                worker.send([_request(m, settings) for m in chunk])
                for m in chunk:
                    wait = settings.timeout + (pacing.WAIT_S if paced(m, settings) else 0.0)
                    reply = worker.receive(wait)
                    result.outcomes[m.index] = Outcome.from_reply(reply)
                    if progress:
                        progress(1)
                    if deadline is not None and time.monotonic() >= deadline:
                        raise _BudgetSpent
            except WorkerFailure as exc:
                # The first unanswered measurement is the one that failed.
                n = len([m for m in chunk if m.index in result.outcomes])
                result.outcomes[chunk[n].index] = Outcome(failure=exc.failure)
                if progress:
                    progress(1)
                pending.extendleft(reversed(chunk[n + 1 :]))
                worker.close(kill=True)
                worker = None
                result.worker_restarts += 1
    except (KeyboardInterrupt, _BudgetSpent) as exc:
        result.stopped = "budget" if isinstance(exc, _BudgetSpent) else "interrupted"
        if worker is not None:
            worker.close(kill=True)
            worker = None
    finally:
        if worker is not None:
            worker.close()
        result.elapsed_s = time.monotonic() - began
    return result
