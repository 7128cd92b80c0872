"""`run --trace`: alignment-trap tracing of a command, and what its traps say."""
