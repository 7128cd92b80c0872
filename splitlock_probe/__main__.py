"""`python -m splitlock_probe`: the same CLI as the console script."""

from splitlock_probe.cli import main

if __name__ == "__main__":
    main()
