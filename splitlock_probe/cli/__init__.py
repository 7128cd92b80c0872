"""The command line's entry point. `main()` arms the signals first, so that a
Ctrl-C or SIGTERM at any moment (even while the commands are still being
imported) ends in one line and 128+N, never a traceback; then it runs the
group (group.py). `cli` is that group, loaded on first use.

This module imports next to nothing at its top (the console script imports
it before main() can arm anything): every millisecond here is a window in
which Ctrl-C would end in Python's own traceback."""

from __future__ import annotations

# The C module under `signal`, built into the interpreter: `signal` itself
# spends 0.5 ms making its enums first, a window with nothing armed.
import _signal as signal  # type: ignore[import-not-found]
import os
import sys

TYPE_CHECKING = False  # typing itself costs 2 ms before the signals are armed
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

_TERMINATING = (signal.SIGTERM, signal.SIGHUP)  # what CI timeouts and closed terminals send


_INTERRUPTED = 130  # errors.ExitStatus.INTERRUPTED, before errors is imported
_early_signal: int | None = None


def _raise_early(signum: int, frame: Any) -> None:
    """Until errors.Interrupted exists: remember which signal it was."""
    global _early_signal
    _early_signal = signum
    raise KeyboardInterrupt


def _raise_interrupted(signum: int, frame: Any) -> None:
    from splitlock_probe.errors import Interrupted

    raise Interrupted(signum)


_sigint_seen = False


def _on_sigint(signum: int, frame: Any) -> None:
    """Python's own Ctrl-C (a KeyboardInterrupt), remembering that one came."""
    global _sigint_seen
    _sigint_seen = True
    raise KeyboardInterrupt


def _interrupt_again(info: Any) -> None:
    """sys.unraisablehook: a signal's exception raised where Python can only
    print and drop it (an import lock's weakref callback, a __del__) would be
    lost, and the command would go on as if no Ctrl-C came. Raise it again at
    the next function call or return outside this hook (a profile function:
    raising the signal again here would land in this very hook)."""
    exc = info.exc_value
    if not isinstance(exc, KeyboardInterrupt):
        sys.__unraisablehook__(info)
        return
    here = sys._getframe().f_code

    def again(frame: Any, event: str, arg: Any) -> None:
        if frame.f_code is here:
            return
        sys.setprofile(None)
        raise exc

    sys.setprofile(again)


def _exit_now(status: int) -> None:
    """End with `status` after a signal. Not through the interpreter's exit: a
    Ctrl-C that landed inside an exec() of a string (dataclasses make their
    methods that way while a module imports) leaves CPython 3.11 flagged to
    kill itself with SIGINT at exit, whatever status we asked for."""
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except Exception:  # a closed or broken stream: the status still stands
            pass
    os._exit(status)


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point."""
    sys.unraisablehook = _interrupt_again
    _arm(_raise_early, _raise_early)
    try:
        from splitlock_probe.errors import Interrupted

        _arm(_on_sigint, _raise_interrupted)
        from splitlock_probe.cli.group import cli as group

        group.main(args=argv, prog_name="splitlock-probe")
    except KeyboardInterrupt as exc:  # before the group's own boundary was reached
        os.write(2, b"splitlock-probe: interrupted\n")
        _exit_now(_status_of(exc))
    except SystemExit as done:
        # A command that stopped on SIGTERM or SIGHUP as on Ctrl-C said 130; the
        # status is 128 + the signal that really ended it.
        if done.code == _INTERRUPTED:
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


def _status_of(exc: KeyboardInterrupt) -> int:
    status = getattr(exc, "status", None)  # errors.Interrupted's: 128 + its signal
    if isinstance(status, int):
        return status
    return 128 + _early_signal if _early_signal is not None else _INTERRUPTED


def _arm(on_sigint: Any, on_terminating: Any) -> None:
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:  # Ctrl-C is ours to report now
        signal.signal(signal.SIGINT, on_sigint)
    for sig in _TERMINATING:
        if signal.getsignal(sig) is not signal.SIG_IGN:  # nohup: keep ignoring
            signal.signal(sig, on_terminating)


def _exit_on_signal(signum: int, frame: Any) -> None:
    _exit_now(128 + signum)


def __getattr__(name: str) -> Any:
    if name == "cli":
        from splitlock_probe.cli.group import cli

        return cli
    raise AttributeError(name)
