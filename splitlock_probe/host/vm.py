"""The virtual machine behind a vCPU thread (`CPU 0/KVM/5677` in a host's log):
named from its monitor's command line or cgroup, while the process lives
(docs/reference.md §6).

- QEMU: `-name guest=NAME[,debug-threads=on]` or `-name NAME`;
- libvirt: the domain in the cgroup path (`machine-qemu\\x2d3\\x2dNAME.scope`);
- Firecracker: `--id NAME`;
- cloud-hypervisor: its API socket's name (`--api-socket path=/run/NAME.sock`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

_LIBVIRT = re.compile(r"machine-qemu\\x2d\d+\\x2d(?P<name>[^/]+?)\.scope")


def _option(argv: Sequence[str], *names: str) -> str | None:
    """The value of `--name VALUE` or `--name=VALUE` (any of `names`)."""
    for i, arg in enumerate(argv):
        for name in names:
            if arg == name and i + 1 < len(argv):
                return argv[i + 1]
            if arg.startswith(name + "="):
                return arg[len(name) + 1 :]
    return None


def _qemu_name(value: str) -> str:
    parts = value.split(",")
    for part in parts:
        if part.startswith("guest="):
            return part[len("guest=") :]
    return parts[0]


def vm_name(cmdline: Sequence[str], cgroup: str | None) -> str | None:
    """ "qemu guest NAME", "libvirt domain NAME", "firecracker NAME",
    "cloud-hypervisor NAME", or None when the process names no VM."""
    program = os.path.basename(cmdline[0]) if cmdline else ""
    if "qemu" in program and (value := _option(cmdline, "-name", "--name")):
        return f"qemu guest {_qemu_name(value)}"
    if cgroup and (m := _LIBVIRT.search(cgroup)):
        return f"libvirt domain {m['name']}"
    if "firecracker" in program and (value := _option(cmdline, "--id")):
        return f"firecracker {value}"
    if "cloud-hypervisor" in program and (value := _option(cmdline, "--api-socket")):
        path = value.split("path=", 1)[-1].split(",", 1)[0]
        return f"cloud-hypervisor {os.path.basename(path).removesuffix('.sock')}"
    return None
