"""The host: CPU, kernel mode, kernel log, PMU and processes, every read
through one overridable root (paths.py). Imports nothing above itself."""
