"""The model: pure Python, no I/O, importing nothing of the package. The access
arithmetic of locked ops (access.py) and the struct layouts and placement
policies (layouts.py); docs/reference.md states the facts they encode."""
