"""Start a command held at a gate, so counters can be attached to it before
it runs a single instruction of its own.

fork(); the child waits for one byte on a pipe, restores the signal state a
command expects (default dispositions, the caller's signal mask), then
exec()s. A failed exec() reports its errno on a close-on-exec pipe, which
subprocess does the same way. The child shares our stdin, stdout, stderr and
process group, so the terminal's Ctrl-C reaches it as it would without us.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from splitlock_probe.errors import ExitStatus, ProbeError

# Python ignores SIGPIPE and SIGXFSZ for itself; a command gets the defaults.
_RESET = (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT)


class CommandNotRunnable(ProbeError):
    """exec() failed: 127 when the command was not found, 126 otherwise (as shells do)."""

    def __init__(self, argv0: str, err: int) -> None:
        super().__init__(f"cannot run {argv0}: {os.strerror(err)}")
        self.err = err
        self.status = (
            ExitStatus.COMMAND_NOT_FOUND if err == errno.ENOENT else ExitStatus.COMMAND_NOT_RUN
        )


@dataclass
class GatedChild:
    pid: int
    argv: tuple[str, ...]
    _gate: int
    _errors: int

    def release(self) -> None:
        """Let the child exec; raise CommandNotRunnable when that fails."""
        os.write(self._gate, b"g")
        os.close(self._gate)
        self._gate = -1
        errors_fd, self._errors = self._errors, -1
        with os.fdopen(errors_fd, "rb") as errors:
            data = errors.read()  # EOF on a successful exec (the pipe is close-on-exec)
        if data:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self.pid, 0)
            raise CommandNotRunnable(self.argv[0], int(data.decode() or errno.EIO))

    def abandon(self) -> None:
        """The command must not run (or its exec failed): close the gate
        unopened and reap the child, once."""
        for fd in (self._gate, self._errors):
            if fd >= 0:
                os.close(fd)
        self._gate = self._errors = -1
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)


def start(
    argv: Sequence[str], mask: Iterable[int] | None = None, env: dict[str, str] | None = None
) -> GatedChild:
    """fork() a child that exec()s argv once released. `mask`: the signal mask
    the command gets (the caller's own, before it blocked signals to wait on);
    `env`: its environment (default: ours)."""
    if not argv:
        raise ValueError("no command")
    gate_r, gate_w = os.pipe()
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:  # the child: nothing here may return or raise into the caller
        code = 127
        try:
            os.close(gate_w)
            os.close(err_r)
            if os.read(gate_r, 1) != b"g":
                os._exit(code)  # the parent gave up on us
            os.close(gate_r)
            for sig in _RESET:
                signal.signal(sig, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_SETMASK, set(mask or ()))
            if env is None:
                os.execvp(argv[0], list(argv))
            else:
                os.execvpe(argv[0], list(argv), env)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.write(err_w, str(exc.errno or errno.EIO).encode())
        finally:
            os._exit(code)
    os.close(gate_r)
    os.close(err_w)
    return GatedChild(pid, tuple(argv), gate_w, err_r)
