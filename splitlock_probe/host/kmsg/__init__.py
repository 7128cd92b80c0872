"""The kernel log: unwrapping lines (lines.py), recognising split-lock and
bus-lock messages (messages.py), reading /dev/kmsg or a file (source.py) and
tallying what was read (tally.py)."""
