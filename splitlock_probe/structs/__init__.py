"""Struct layouts read from the user's own code: DWARF in ELF files and C
sources or headers compiled for both x86 ABIs (docs/reference.md §8). They
become model Layouts, so `scan` and `layout` treat them as the Xen ones."""
