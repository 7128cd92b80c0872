"""A watch Snapshot as Prometheus metrics, through prometheus_client: the text
format for node_exporter's textfile collector (written atomically by
write_to_textfile) and a /metrics server. The collector serves the latest
snapshot; the watch loop replaces it each interval.

Metric names and labels are part of the user contract (docs/json.md#metrics).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
)

from splitlock_probe.errors import UsageError
from splitlock_probe.host.kmsg.messages import KINDS
from splitlock_probe.report import files
from splitlock_probe.report.files import Destination
from splitlock_probe.watch.session import Snapshot


def _cost_metrics(cost: dict[str, Any]) -> Iterator[Metric]:
    quantiles = GaugeMetricFamily(
        "splitlock_split_lock_cost_seconds",
        "What one split lock costs on this host (single lock btsq ops timed alone), by quantile.",
        labels=["quantile"],
    )
    for key, label in (("p10", "0.1"), ("p50", "0.5"), ("p90", "0.9"), ("p99", "0.99")):
        quantiles.add_metric([label], cost["split_cycles"][key] / cost["tsc_hz"])
    yield quantiles
    klass = InfoMetricFamily(
        "splitlock_split_lock_cost_class", "Who charges for a split lock here (docs/detectors.md)."
    )
    klass.add_metric([], {"class": cost["class"]})
    yield klass


def metrics(snap: Snapshot) -> Iterator[Metric]:
    if snap.lock_cost is not None:
        yield from _cost_metrics(snap.lock_cost)

    traps = CounterMetricFamily(
        "splitlock_traps",
        "#AC split-lock and #DB bus-lock trap lines in the kernel log, per task name. "
        "#AC lines come once per thread: they count threads, not split locks.",
        labels=["comm", "kind"],
    )
    for comm, counts in snap.comms:
        for kind in KINDS:
            traps.add_metric([comm, kind], counts[kind])
    yield traps

    suppressed = CounterMetricFamily(
        "splitlock_trap_lines_suppressed",
        "Trap lines the kernel's printk ratelimit dropped ('callbacks suppressed').",
        labels=["kind"],
    )
    for kind in KINDS:
        suppressed.add_metric([kind], snap.suppressed[kind])
    yield suppressed

    if snap.pmu is not None:
        pmu = CounterMetricFamily(
            "splitlock_pmu_events",
            "The PMU's split-lock or bus-lock event, per CPU, since the watch started.",
            labels=["cpu", "event", "kind"],
        )
        for cpu, events in sorted(snap.pmu.items()):
            for name, value in events.items():
                if value is not None:
                    pmu.add_metric([str(cpu), name, snap.pmu_kinds.get(name, "other")], value)
        yield pmu

    k = snap.kernel
    mode = InfoMetricFamily("splitlock_mode", "How this kernel treats split locks.")
    mode.add_metric(
        [],
        {
            "mode": k.effective_mode,
            "source": k.mode_source,
            "release": k.release or "",
            "split_lock_detect": str(k.split_lock_detect).lower(),
            "bus_lock_detect": str(k.bus_lock_detect).lower(),
        },
    )
    yield mode
    if k.split_lock_mitigate is not None:
        yield GaugeMetricFamily(
            "splitlock_mitigate",
            "kernel.split_lock_mitigate: 1 means a 10 ms sleep per trapped split lock.",
            value=k.split_lock_mitigate,
        )
    yield GaugeMetricFamily(
        "splitlock_penalty_active",
        "1 when each trapped split lock costs the task a 10 ms sleep (warn mode, mitigate=1).",
        value=int(k.misery),
    )
    available = GaugeMetricFamily(
        "splitlock_detector_available",
        "1 when the detector can see split locks on this host.",
        labels=["detector"],
    )
    for name, a in snap.detectors.items():
        available.add_metric([name], int(a.available))
    yield available

    def counter(name: str, doc: str, value: float) -> Metric:
        return CounterMetricFamily(name, doc, value=value)

    yield counter("splitlock_probe_log_lines", "Kernel log lines read.", snap.lines)
    yield counter(
        "splitlock_probe_log_records_lost",
        "Kernel log records overwritten before they were read (EPIPE).",
        snap.overwritten,
    )
    yield counter(
        "splitlock_probe_parse_errors",
        "Lines that named a split or bus lock but did not parse.",
        snap.malformed,
    )
    yield counter(
        "splitlock_probe_processes_aged_out",
        "Processes dropped from the table to keep memory bounded (their counts are kept).",
        snap.aged_out,
    )
    yield GaugeMetricFamily(
        "splitlock_probe_processes", "Processes in the table now.", value=snap.processes
    )
    yield GaugeMetricFamily(
        "splitlock_probe_last_update_timestamp_seconds",
        "When these numbers were taken (Unix time).",
        value=snap.taken,
    )


class SnapshotCollector:
    """A prometheus_client collector that serves the latest snapshot."""

    def __init__(self, snap: Snapshot) -> None:
        self._lock = threading.Lock()
        self._snap = snap

    def update(self, snap: Snapshot) -> None:
        with self._lock:
            self._snap = snap

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            snap = self._snap
        yield from metrics(snap)


def registry_for(collector: SnapshotCollector) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry


def text(snap: Snapshot) -> str:
    """The Prometheus text format of one snapshot."""
    return generate_latest(registry_for(SnapshotCollector(snap))).decode()


def write_file(dest: Destination, registry: CollectorRegistry) -> None:
    """For the textfile collector: a regular file atomically (never a torn one),
    a FIFO or device written into."""
    files.write(dest, generate_latest(registry).decode())


def serve(address: str, port: int, registry: CollectorRegistry) -> Any:
    """Serve /metrics in a daemon thread; returns the server (shutdown() ends it)."""
    from prometheus_client import start_http_server

    server, _thread = start_http_server(port, addr=address, registry=registry)
    return server


class Exporter:
    """Where watch publishes each snapshot for machines: the collector behind a
    /metrics server (optional) and a textfile (optional)."""

    def __init__(
        self,
        first: Snapshot,
        textfile: Destination | None,
        address: tuple[str, int] | None,
        announce: Callable[[str], None],
    ) -> None:
        self.collector = SnapshotCollector(first)
        self.registry = registry_for(self.collector)
        self.textfile = textfile
        self.server: Any = None
        if address is not None:
            try:
                self.server = serve(address[0], address[1], self.registry)
            except OSError as exc:
                raise UsageError(f"--listen {address[0]}:{address[1]}: {exc.strerror}") from None
            host, port = self.server.server_address[:2]
            host = f"[{host}]" if ":" in host else host  # an IPv6 address in a URL
            announce(f"serving metrics on http://{host}:{port}/metrics")

    def publish(self, snap: Snapshot) -> None:
        self.collector.update(snap)
        if self.textfile is not None:
            write_file(self.textfile, self.registry)

    def close(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
