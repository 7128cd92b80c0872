"""splitlock-probe: find x86 split-lock hazards and prove them on real hardware."""

__version__ = "0.1.0"
