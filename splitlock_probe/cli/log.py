"""`log`: #AC and #DB traps in a kernel log, per process."""

from __future__ import annotations

from typing import Any

import click

from splitlock_probe.cli.options import CONTEXT, emit_json, output_options, say, targets


@click.command(context_settings=CONTEXT)
@click.option(
    "--file",
    "path",
    type=click.Path(exists=True, dir_okay=False, allow_dash=True),
    metavar="PATH",
    help="Read a saved log instead of the live /dev/kmsg; - reads stdin.",
)
@click.option(
    "-w",
    "-f",
    "--follow",
    is_flag=True,
    help="Keep reading, as dmesg -w does; print each new event as it comes (--json: one "
    "JSON line each, after a first status line). A followed file that is rotated or "
    "truncated is opened again, like tail -F.",
)
@click.option(
    "-T",
    "--ctime",
    "wall_clock",
    is_flag=True,
    help="Print each event's seconds-since-boot stamp as a date, as dmesg -T does (the "
    "live log: the boot time is /proc/stat's; a saved log keeps its stamps as written). "
    "Like dmesg -T, wrong by the time the host spent suspended.",
)
@output_options()
def log(path: str | None, follow: bool, wall_clock: bool, **outputs: Any) -> None:
    """Find split-lock (#AC) and bus-lock (#DB) traps in the kernel log, per process.

    Reads the whole live ring buffer (/dev/kmsg) or a saved log in any
    wrapper: kmsg records, dmesg (plain, -H, -T, -x, -r), syslog, ISO-8601
    journal lines, or one inside another; gzip, xz, bzip2 and zstd files are
    read by their magic. An input none of whose lines looks like a kernel
    log is a usage error. Threads still alive get their
    executable, command line and container, and each trap address is mapped
    to a library and offset.

    \b
    Examples:
      splitlock-probe log                      the live log (root, or CAP_SYSLOG)
      journalctl -k -b -1 | splitlock-probe log --file -     the previous boot
      splitlock-probe log -w                   stream new events; Ctrl-C ends
      splitlock-probe log -T                   event times as dates, as dmesg -T
      splitlock-probe log --file /var/log/kern.log.2.gz

    Exit 0; 2 when the input is not a kernel log; 4 when the live log cannot
    be read (the message says why); 130 when --follow is interrupted (after
    printing the summary).
    """
    import json

    from splitlock_probe.host.kernel import KernelState
    from splitlock_probe.host.kmsg.messages import TrapEvent
    from splitlock_probe.log.read import live_boot_time, never_logs, read
    from splitlock_probe.report.csvform import CsvStream
    from splitlock_probe.report.logview import EVENT_SCHEMA, STATUS_SCHEMA, event_line
    from splitlock_probe.report.outputs import emit
    from splitlock_probe.report.reports import LogReport

    as_json, as_csv = outputs["as_json"], outputs["as_csv"]
    wanted = targets(outputs)
    booted = live_boot_time(path) if wall_clock else None
    if wall_clock and path is not None:
        say("-T: a saved log's boot time is not known; its stamps stay as written")
    elif wall_clock and booted is None:
        say("-T: /proc/stat gives no boot time (btime); the stamps stay seconds since boot")
    rows = CsvStream(emit_json)

    def show(event: TrapEvent) -> None:
        if as_json:
            emit_json(json.dumps({"schema": EVENT_SCHEMA, **event.as_dict()}) + "\n")
        elif as_csv:
            rows.row(event.as_dict())
        else:
            click.echo(event_line(event, booted))

    def start(mode: KernelState) -> None:
        why = never_logs(mode)
        if as_json:
            status = {"effective_mode": mode.effective_mode, "mode_source": mode.mode_source}
            line = {"schema": STATUS_SCHEMA, "host_mode": status, "note": why}
            emit_json(json.dumps(line) + "\n")
        elif why:
            say(why)  # with --csv too: stdout holds only the rows

    result = read(path, follow, show, start)
    if follow and (as_json or as_csv):  # the events went out as lines; files get the whole
        wanted = [t for t in wanted if not t.to_stream]
    emit(LogReport(result, wall_clock), wanted)
    raise SystemExit(int(result.exit_status()))
