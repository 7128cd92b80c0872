"""Hardware counters for split locks and bus locks (docs/reference.md §5):
the PMUs in sysfs (sysfs.py), the events each CPU has (events.py), turning
a CPU or a user's --event into counters to open (resolve.py), opening and
reading them (counters.py), and whether counting works here (state.py)."""
