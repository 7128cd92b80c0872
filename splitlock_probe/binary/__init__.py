"""ELF images read for what code and data are: segments, sections, symbols,
source lines and the DWARF types of variables."""
