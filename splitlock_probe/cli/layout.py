"""`layout`: pahole's view of your own structs, with the hazard of each locked
op on each field at every placement the struct's alignment allows."""

from __future__ import annotations

from typing import Any

import click

from splitlock_probe.cli.options import CONTEXT, output_options, split_values, targets
from splitlock_probe.errors import ExitStatus, UsageError, choose
from splitlock_probe.structs.types import ABI_CHOICES


@click.command(context_settings=CONTEXT)
@click.option("--from", "sources", multiple=True, required=True, metavar="FILE",
              help="An ELF with DWARF (executable, library, object, module, vmlinux), BTF "
              "(/sys/kernel/btf/vmlinux, /sys/kernel/btf/MODULE: the running kernel's own "
              "types), or a C source or header (compiled with $CC). Repeatable.")  # fmt: skip
@click.option("--struct", "names", multiple=True, metavar="NAME[,NAME]",
              help="The structs or unions to show.")  # fmt: skip
@click.option("--all", "every", is_flag=True,
              help="Every struct of the sources, listing only fields that can split.")  # fmt: skip
@click.option("--abi", type=click.Choice(ABI_CHOICES), default=None,
              help="For C sources: x86-64, i386 or both [default: both]; for an ELF: keep "
              "only its structs of this ABI (an ELF has one).")  # fmt: skip
@click.option("--cflags", default="", metavar="FLAGS", help="For C sources: -I, -D and the like.")
@click.option("--op", "op", default=None, metavar="NAME",
              help="That locked op aimed at each field (e.g. btsq: the seed's 8-byte bts on a "
              "4-byte field) [default: each field's natural width: 2, 4, 8 or 16].")  # fmt: skip
@click.option("--field", "fields", multiple=True, metavar="NAME[,NAME]",
              help="Only these fields (dotted for nested ones: msg.count, bits[1]).")  # fmt: skip
@click.option("--fail-on", type=click.Choice(["none", "hazard"]), default="none",
              show_default=True,
              help="Exit 1 when a listed field can split a line at some placement.")  # fmt: skip
@output_options()
def layout(
    sources: tuple[str, ...],
    names: tuple[str, ...],
    every: bool,
    abi: str | None,
    cflags: str,
    op: str | None,
    fields: tuple[str, ...],
    fail_on: str,
    **outputs: Any,
) -> None:
    """Show struct layouts with cache-line boundaries and, for each field, at
    which placements (mod 64) a locked op on it splits a line.

    \b
    Examples:
      splitlock-probe layout --from csrc/xen_abi.h --struct compat_vcpu_info --op btsq
      splitlock-probe layout --from build/libfoo.so --all --fail-on hazard

    Exit 0; 1 with --fail-on hazard when a listed field can split; 2 for a
    source that cannot be read or compiled, or an unknown struct.
    """
    from splitlock_probe.model.access import ALIASES, PRIMITIVES, primitive
    from splitlock_probe.report.outputs import emit
    from splitlock_probe.report.reports import LayoutReport
    from splitlock_probe.structs.hazards import analyse
    from splitlock_probe.structs.source import load, select

    wanted = targets(outputs)
    struct_names = split_values(names)
    if not struct_names and not every:
        raise UsageError("give --struct NAME (or --all)")
    width = None
    if op is not None:
        width = primitive(choose("op", [op], [*PRIMITIVES, *ALIASES])[0]).width
    found = load(sources, abi, cflags)
    if not found:  # --all over nothing would pass a gate that saw nothing
        raise UsageError("the sources define no struct or union with a size")
    chosen = found if every else select(found, struct_names)
    field_names = split_values(fields)
    rows = []
    for s in chosen:
        hazards = analyse(s, width, field_names)
        if every:
            hazards = [h for h in hazards if h.hazard]
            if not hazards:
                continue
        rows.append((s, hazards))
    emit(LayoutReport(rows, op), wanted)
    found_hazard = any(h.hazard for _, hs in rows for h in hs)
    raise SystemExit(int(ExitStatus.FINDING if fail_on == "hazard" and found_hazard else 0))
