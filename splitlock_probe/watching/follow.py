"""The watch loop: a snapshot every interval to the screen, the Prometheus
textfile and the /metrics server, until --once is done or Ctrl-C; the last
snapshot is always taken and exported, so an interrupted watch loses nothing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from splitlock_probe.errors import UsageError
from splitlock_probe.report import prometheus
from splitlock_probe.report.watchview import WatchScreen
from splitlock_probe.watching.session import Snapshot, Watch


def _serve(address: tuple[str, int], registry: Any, announce: Callable[[str], None]) -> Any:
    try:
        server = prometheus.serve(address[0], address[1], registry)
    except OSError as exc:
        raise UsageError(f"--listen {address[0]}:{address[1]}: {exc.strerror}") from None
    host, port = server.server_address[:2]
    announce(f"serving metrics on http://{host}:{port}/metrics")
    return server


def follow(
    watch: Watch,
    screen: WatchScreen,
    textfile: Path | None,
    address: tuple[str, int] | None,
    once: bool,
    announce: Callable[[str], None],
) -> tuple[Snapshot, bool]:
    """(the last snapshot, whether Ctrl-C ended it)."""
    collector = prometheus.SnapshotCollector(watch.snapshot(advance=False))
    registry = prometheus.registry_for(collector)
    server = None
    try:
        if watch.request.since_boot:
            watch.read_log(final=True)
        if address is not None:
            server = _serve(address, registry, announce)
        with screen:
            while True:
                watch.interval()
                snap = watch.snapshot()
                collector.update(snap)
                if textfile is not None:
                    prometheus.write_file(textfile, registry)
                if once:
                    return snap, False
                screen.show(snap)
    except KeyboardInterrupt:
        snap = watch.snapshot()
        collector.update(snap)
        if textfile is not None:
            prometheus.write_file(textfile, registry)
        return snap, True
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()
