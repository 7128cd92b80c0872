"""The watch loop: a snapshot every interval to the screen and to the
publisher (metrics), until --once is done or Ctrl-C; the last snapshot is
always taken and published, so an interrupted watch loses nothing.

It imports no renderer: the CLI hands it a screen and a publisher.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from splitlock_probe.errors import ExitStatus
from splitlock_probe.watch.session import Snapshot, Watch


class Screen(Protocol):
    """Where snapshots are shown while watching (a context: set up, torn down)."""

    def __enter__(self) -> object: ...
    def __exit__(self, *exc: object) -> None: ...
    def show(self, snap: Snapshot) -> None: ...


@dataclass(frozen=True)
class Watched:
    """How a watch ended: its last snapshot, and whether Ctrl-C ended it."""

    snapshot: Snapshot
    interrupted: bool

    def exit_status(self) -> ExitStatus:
        """`watch`'s policy: 130 when interrupted, else 0 (after --once)."""
        return ExitStatus.INTERRUPTED if self.interrupted else ExitStatus.OK


def follow(
    watch: Watch, screen: Screen, publish: Callable[[Snapshot], None], once: bool
) -> Watched:
    remeasure = threading.Event()  # SIGUSR1: measure the split-lock cost again
    old = signal.signal(signal.SIGUSR1, lambda *_: remeasure.set())
    try:
        watch.measure_cost()
        if watch.request.since_boot:
            watch.read_log(final=True)
        with screen:
            while True:
                watch.interval()
                if remeasure.is_set():  # between intervals, never in the middle of one
                    remeasure.clear()
                    watch.measure_cost()
                snap = watch.snapshot()
                publish(snap)
                if once:
                    return Watched(snap, False)
                screen.show(snap)
    except KeyboardInterrupt:
        snap = watch.snapshot()
        publish(snap)
        return Watched(snap, True)
    finally:
        signal.signal(signal.SIGUSR1, old)
