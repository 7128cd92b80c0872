"""`python -m splitlock_probe`: the same CLI as the console script, through
the same entry point, which arms Ctrl-C before it imports anything heavy."""

from splitlock_probe.cli import main

if __name__ == "__main__":
    main()
