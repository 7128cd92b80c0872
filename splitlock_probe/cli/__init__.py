"""The command line's entry point. `main()` arms the signals first, so that a
Ctrl-C or SIGTERM at any moment (even while the commands are still being
imported) ends in one line and 128+N, never a traceback; then it runs the
group (group.py). `cli` is that group, loaded on first use."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

from splitlock_probe.errors import ExitStatus, Interrupted

_TERMINATING = (signal.SIGTERM, signal.SIGHUP)  # what CI timeouts and closed terminals send


def _raise_interrupted(signum: int, frame: Any) -> None:
    raise Interrupted(signum)


_sigint_seen = False


def _on_sigint(signum: int, frame: Any) -> None:
    """Python's own Ctrl-C (a KeyboardInterrupt), remembering that one came."""
    global _sigint_seen
    _sigint_seen = True
    raise KeyboardInterrupt


def _exit_now(status: int) -> None:
    """End with `status` after a signal. Not through the interpreter's exit: a
    Ctrl-C that landed inside an exec() of a string (dataclasses make their
    methods that way while a module imports) leaves CPython 3.11 flagged to
    kill itself with SIGINT at exit, whatever status we asked for."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            if stream is not None:
                stream.flush()
    os._exit(status)


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point."""
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:  # Ctrl-C is ours to report now
        signal.signal(signal.SIGINT, _on_sigint)
    for sig in _TERMINATING:
        if signal.getsignal(sig) is not signal.SIG_IGN:  # nohup: keep ignoring
            signal.signal(sig, _raise_interrupted)
    try:
        from splitlock_probe.cli.group import cli as group

        group.main(args=argv, prog_name="splitlock-probe")
    except KeyboardInterrupt as exc:  # before the group's own boundary was reached
        status = exc.status if isinstance(exc, Interrupted) else int(ExitStatus.INTERRUPTED)
        os.write(2, b"splitlock-probe: interrupted\n")
        _exit_now(status)
    except SystemExit as done:
        # A command that stopped on SIGTERM or SIGHUP as on Ctrl-C said 130; the
        # status is 128 + the signal that really ended it.
        if done.code == int(ExitStatus.INTERRUPTED):
            _exit_now(128 + Interrupted.last if Interrupted.last is not None else done.code)
        # The work is done and written; a signal while the interpreter shuts
        # down (joining threads, atexit) ends it at once, not in a traceback.
        for sig in (signal.SIGINT, *_TERMINATING):
            if signal.getsignal(sig) is not signal.SIG_IGN:
                signal.signal(sig, _exit_on_signal)
        if _sigint_seen:  # one was swallowed on the way (an import's weakref callback):
            # CPython would kill itself with SIGINT at exit; end with the status instead
            code = done.code
            _exit_now(code if isinstance(code, int) else 0 if code is None else 1)
        raise


def _exit_on_signal(signum: int, frame: Any) -> None:
    _exit_now(128 + signum)


def __getattr__(name: str) -> Any:
    if name == "cli":
        from splitlock_probe.cli.group import cli

        return cli
    raise AttributeError(name)
