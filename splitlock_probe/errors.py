"""Exit statuses and the exceptions that carry them to the one error boundary."""

from __future__ import annotations

import difflib
import os
import signal
from collections.abc import Sequence
from enum import IntEnum
from typing import NoReturn


class ExitStatus(IntEnum):
    """Every command's exit status (docs/exit-codes.md)."""

    OK = 0  # done, and nothing found that the policy forbids
    FINDING = 1  # the policy found something, or a verdict contradicts the model
    USAGE = 2  # bad command line
    RUNTIME = 3  # something broke while running
    UNSUPPORTED = 4  # unsupported host, or nothing could be measured
    COMMAND_NOT_RUN = 126  # run: the command was found but could not be executed
    COMMAND_NOT_FOUND = 127  # run: no such command (as shells and env(1) say)
    INTERRUPTED = 130  # Ctrl-C; a partial report was printed
    BROKEN_PIPE = 141  # stdout's reader went away (128 + SIGPIPE, as a C tool would end)


class Interrupted(KeyboardInterrupt):
    """A signal that ends us the way Ctrl-C does: SIGTERM (CI timeouts) or SIGHUP.
    Every loop that stops on Ctrl-C with a partial report stops on it too; the
    exit status is 128 + the signal's number."""

    last: int | None = None  # the signal that ended this process, once one did

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum
        Interrupted.last = signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def status(self) -> int:
        return 128 + self.signum


class ProbeError(Exception):
    """An error the CLI reports as one line and turns into an exit status."""

    status = ExitStatus.RUNTIME


class UsageError(ProbeError):
    status = ExitStatus.USAGE


class UnsupportedHost(ProbeError):
    status = ExitStatus.UNSUPPORTED


def exit_for_broken_pipe(fd: int) -> NoReturn:
    """Stdout's reader is gone: point fd at /dev/null (so the final flush cannot
    raise again) and end with BROKEN_PIPE."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)
    raise SystemExit(int(ExitStatus.BROKEN_PIPE))


def closest_first(name: str, known: Sequence[str]) -> tuple[list[str], list[str]]:
    """For a usage error: the known names most like `name` (at most 8, best
    first), and the others in their order."""
    close = difflib.get_close_matches(name, list(known), n=8, cutoff=0.4)
    return close, [k for k in known if k not in close]


def choose(kind: str, values: Sequence[str], choices: Sequence[str]) -> list[str]:
    """values, deduplicated in order; a UsageError naming the choices for any other."""
    bad = [v for v in values if v not in choices]
    if bad:
        from splitlock_probe.text import shown

        names = ", ".join(shown(b) for b in bad)
        raise UsageError(f"unknown {kind} {names}; choose from: {', '.join(choices)}")
    return list(dict.fromkeys(values))
