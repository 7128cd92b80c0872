# splitlock-probe: everything a newcomer runs. `make scan` and `make test` set
# themselves up: a virtual environment (rebuilt when pyproject.toml changes)
# with the package installed editable, its C core compiled by cffi in place
# (rebuilt when csrc/ changes).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CORE_SOURCES := $(wildcard csrc/*.c csrc/*.h csrc/*.cdef csrc/*.py csrc/agent/*.c csrc/agent/*.h)
ARGS ?=

.PHONY: all install scan test test-pictures lint pytest bench clean

all: test

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml setup.py $(CORE_SOURCES)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

install: $(STAMP)

scan: $(STAMP)
	$(BIN)/splitlock-probe scan $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check splitlock_probe tests bench csrc/ffi_build.py setup.py
	$(BIN)/ruff format --check splitlock_probe tests bench csrc/ffi_build.py setup.py
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/python -m pytest $(ARGS)

test: lint pytest

# The SVG and HTML outputs rendered in headless chromium and looked at
# (tests/pictures). Its own set-up: Debian's chromium, installed when missing.
test-pictures: $(STAMP)
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian's chromium for the picture tests"; \
	    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } >/dev/null; \
	  else echo "make test-pictures needs chromium: sudo apt-get install chromium" >&2; exit 1; fi; }
	SPLITLOCK_PROBE_PICTURES=1 $(BIN)/python -m pytest tests/pictures $(ARGS)

bench: $(STAMP)
	$(BIN)/python bench/run.py $(ARGS)

clean:
	rm -rf $(VENV) build dist *.egg-info bench/out .mypy_cache .ruff_cache .pytest_cache .hypothesis
	rm -f splitlock_probe/_core.c splitlock_probe/_core.o splitlock_probe/_core*.so splitlock_probe/_agent*.so csrc/*.o
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
