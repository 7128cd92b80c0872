"""`audit`: every locked read-modify-write of your binaries, judged without
running them."""

from __future__ import annotations

import sys
from typing import Any

import click

from splitlock_probe.cli.options import CONTEXT, output_options, say, targets
from splitlock_probe.text import shown


@click.command(context_settings=CONTEXT)
@click.argument("files", nargs=-1, required=True, metavar="FILE...")
@click.option("--fail-on", type=click.Choice(["none", "split", "hazard"]), default="none",
              show_default=True,
              help="Exit 1 when a site splits a line wherever the file is loaded (split), "
              "or also when one can be misaligned (hazard).")  # fmt: skip
@click.option(
    "--all",
    "every",
    is_flag=True,
    help="List clean and unresolved sites too (JSON always has every one).",
)
@output_options(junit="a test case per locked instruction")
def audit(files: tuple[str, ...], fail_on: str, every: bool, **outputs: Any) -> None:
    """Find every locked read-modify-write in ELF files (executables, shared
    objects, object files, kernel modules, vmlinux) and judge each without
    running it.

    \b
    split       the operand crosses a cache line wherever the file is loaded
    hazard      it can be misaligned, and at some placement split
    clean       aligned to its width wherever the file is loaded
    unresolved  the address comes from a register (run it under `run --trace`,
                or check the struct with `layout`)

    A verdict is exact where the operand's address is fixed modulo 64: a
    global or static object, RIP-relative or absolute, in a segment or
    section aligned to 64 or more. Sites name the function and source line,
    and the object and member hit (with DWARF, or its debug file by build-id).

    \b
    Examples:
      splitlock-probe audit build/myprog build/libfoo.so --fail-on split
      splitlock-probe audit /lib/modules/$(uname -r)/kernel/fs/xfs/xfs.ko --json

    Exit 0; 1 with --fail-on when a site fails it; 2 when no file could be
    audited; 130 on Ctrl-C (the files done are reported).
    """
    from splitlock_probe.audit.files import audit_files
    from splitlock_probe.report.outputs import emit
    from splitlock_probe.report.reports import AuditReport

    wanted = targets(outputs)
    tell = sys.stderr.isatty() and len(files) > 1
    progress = (lambda p: say(f"auditing {shown(p)}")) if tell else None
    result = audit_files(list(files), fail_on, progress)
    for f in result.files:
        if f.error:
            say(f"{shown(f.path)}: {f.error}")
    emit(AuditReport(result, every), wanted)
    raise SystemExit(int(result.exit_status()))
