"""`watch`: the whole host's #AC/#DB traps and PMU counts, live, with
Prometheus export."""

from __future__ import annotations

from typing import Any

import click

from splitlock_probe.cli.options import (
    CONTEXT,
    Seconds,
    event_option,
    output_options,
    say,
    targets,
)
from splitlock_probe.errors import UsageError
from splitlock_probe.text import ascii_int, escape


def _listen_address(value: str) -> tuple[str, int]:
    """ADDR:PORT, [IPv6]:PORT or :PORT (all addresses)."""
    host, sep, port_text = value.rpartition(":")
    port = ascii_int(port_text, 5)
    bracketed = host.startswith("[") and host.endswith("]")
    if (
        not sep
        or port is None
        or port > 65535
        or host.startswith("[") != host.endswith("]")
        or (":" in host and not bracketed)
    ):
        raise UsageError(
            f"--listen {escape(value)}: give ADDR:PORT, e.g. 127.0.0.1:9977 or [::1]:9977"
        )
    host = host[1:-1] if bracketed else host
    return host or "0.0.0.0", port


@click.command(context_settings=CONTEXT)
@click.option(
    "--interval",
    type=Seconds(min=0.05, max=86_400),
    default=2.0,
    show_default=True,
    metavar="SECONDS",
    help="How often the table, the JSON lines and the metrics file are renewed.",
)
@click.option("--once", is_flag=True, help="Print one snapshot after one interval, then exit.")
@click.option(
    "--since-boot",
    is_flag=True,
    help="Count the trap lines already in the kernel's ring buffer too, not only new ones "
    "(with --once: the host's story so far, for cron).",
)
@click.option(
    "--top",
    type=click.IntRange(1),
    default=20,
    show_default=True,
    help="Processes shown in the table and in each JSON snapshot.",
)
@click.option(
    "--limit",
    type=click.IntRange(1),
    default=200,
    show_default=True,
    help="Processes (and per-comm metric series) kept; the quietest age out beyond it.",
)
@click.option(
    "--prometheus-file",
    metavar="PATH",
    help="Write Prometheus metrics to PATH (atomically) every interval, for node_exporter's "
    "textfile collector (name it *.prom).",
)
@click.option(
    "--listen",
    metavar="ADDR:PORT",
    help="Serve Prometheus metrics on http://ADDR:PORT/metrics (port 0 picks a free one).",
)
@event_option
@output_options(json_help="Print one JSON document per snapshot, one per line (--once: one).")
def watch(
    interval: float,
    once: bool,
    since_boot: bool,
    top: int,
    limit: int,
    prometheus_file: str | None,
    listen: str | None,
    events: tuple[str, ...],
    **outputs: Any,
) -> None:
    """Watch the whole host: new split-lock (#AC) and bus-lock (#DB) traps per
    process, per-CPU PMU counts, the mode and the penalty; live.

    The table is redrawn every --interval seconds on a terminal (a snapshot
    per interval when stdout is not one; with --json, one JSON document per
    line). Memory stays bounded however long it runs (--limit). Reading the
    live log needs root (or CAP_SYSLOG) where kernel.dmesg_restrict=1; per-CPU
    counts need root or perf_event_paranoid <= 0.

    \b
    Examples:
      splitlock-probe watch
      splitlock-probe watch --prometheus-file /var/lib/node_exporter/splitlock.prom
      splitlock-probe watch --listen 127.0.0.1:9977
      splitlock-probe watch --once --since-boot --json      (cron, scripts)

    Exit status: 0 after --once; 130 when interrupted (after the last
    snapshot is written); 4 when the kernel log cannot be read.
    """
    from splitlock_probe.host import state as host_state
    from splitlock_probe.log.read import never_logs
    from splitlock_probe.report.outputs import emit, writable
    from splitlock_probe.report.prometheus import Exporter
    from splitlock_probe.report.reports import WatchReport
    from splitlock_probe.report.watchview import WatchScreen
    from splitlock_probe.watch.follow import follow
    from splitlock_probe.watch.session import Watch, WatchRequest

    wanted = targets(outputs)
    if outputs["as_csv"] and not once and outputs["output"] is None:
        raise UsageError("watch --csv prints one table: give --once, or -o FILE for the last")
    textfile = writable("--prometheus-file", prometheus_file) if prometheus_file else None
    address = _listen_address(listen) if listen else None
    state = host_state.state(events)
    session = Watch.open(WatchRequest(interval, since_boot, limit, top), state)
    if why := never_logs(state.kernel):
        say(why)  # at once, not only in the first snapshot an interval from now
    screen = WatchScreen(outputs["as_json"], outputs["output"] is None and not once)
    exporter = None
    try:
        exporter = Exporter(session.snapshot(advance=False), textfile, address, say)
        watched = follow(session, screen, exporter.publish, once)
    finally:
        if exporter is not None:
            exporter.close()
        session.close()
    if once or outputs["output"] is not None:
        emit(WatchReport(watched.snapshot), wanted)
    else:  # the screen showed every snapshot; files still get the last one
        emit(WatchReport(watched.snapshot), [t for t in wanted if not t.to_stream])
    raise SystemExit(int(watched.exit_status()))
