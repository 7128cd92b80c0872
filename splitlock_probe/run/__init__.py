"""`run -- CMD`: a command's process tree, started, followed and reported on."""
