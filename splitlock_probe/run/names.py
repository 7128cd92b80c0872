"""The names `run`'s options take, apart from the code that uses them, so the
command line (and its --help) loads without the tracer and the ELF readers."""

# The detectors that watch a whole command (`--detect`); `trace` joins with --trace.
RUN_DETECTORS = ("kmsg", "perf")
TRACE = "trace"
ANY = "any"  # --require-detector any: at least one of those in use
