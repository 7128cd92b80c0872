"""`python -m splitlock_probe`: the same CLI as the console script. Ctrl-C is
armed first, before the CLI is imported, so that even then it ends in one line
and 130 (main() takes it over once it runs)."""

import os
import signal


def _interrupted_early(signum: int, frame: object) -> None:
    os.write(2, b"splitlock-probe: interrupted\n")
    os._exit(130)


if __name__ == "__main__":
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _interrupted_early)
    from splitlock_probe.cli import main

    main()
