"""`audit`: every locked read-modify-write of an ELF, judged without running it."""
