"""The package's shape, checked by reading every import with ast.

Every import counts: module level, inside functions, and under TYPE_CHECKING.
The rules (docs/design.md, "The tree"):
- model/ imports nothing of the package;
- nothing below cli/ and report/ imports them (and report/ never imports cli/);
- only native/ imports the compiled core;
- no cycle between the packages, and none between modules.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

from tests.conftest import REPO

PACKAGE = "splitlock_probe"
ROOT = REPO / PACKAGE
CORE = f"{PACKAGE}._core"
# The parts: each a folder of the package; what is not one (errors, the root)
# is the base every part may use.
PARTS = ("cli", "report", "audit", "scan", "run", "watch", "log", "binary", "structs", "detectors",
         "host", "native",
         "model")  # fmt: skip


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _resolve(node: ast.ImportFrom, importer: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = importer.split(".")
    if not is_package:
        base.pop()
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def imports_of(name: str) -> set[str]:
    """Every module of the package (or the core) that `name` imports, anywhere in it."""
    path = modules()[name]
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(node, name, path.name == "__init__.py")
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in modules() or sub == CORE else target)
    return {m for m in found if m == PACKAGE or m.startswith(PACKAGE + ".")}


def part_of(name: str) -> str | None:
    """The part a module belongs to (None: the base, e.g. errors)."""
    rest = name.split(".")[1:]
    return rest[0] if rest and rest[0] in PARTS else None


def edges() -> Iterator[tuple[str, str]]:
    for name in modules():
        for target in imports_of(name):
            yield name, target


def test_the_reader_sees_imports_everywhere() -> None:
    """A guard for the guards: function-level and TYPE_CHECKING imports are read."""
    cli_scan = imports_of(f"{PACKAGE}.cli.scan")
    assert f"{PACKAGE}.scan.pipeline" in cli_scan  # imported inside the command
    reports = imports_of(f"{PACKAGE}.report.reports")
    assert f"{PACKAGE}.scan.request" in reports  # imported under TYPE_CHECKING
    assert CORE in imports_of(f"{PACKAGE}.native")  # imported inside a function


def test_model_imports_nothing_of_the_package() -> None:
    bad = [(a, b) for a, b in edges() if part_of(a) == "model" and part_of(b) != "model"]
    assert not bad


ENTRY = f"{PACKAGE}.__main__"  # `python -m splitlock_probe`: above everything


@pytest.mark.parametrize(("top", "allowed"), [("cli", {"cli"}), ("report", {"cli", "report"})])
def test_nothing_below_imports_the_cli_or_the_renderers(top: str, allowed: set[str]) -> None:
    bad = [
        (a, b) for a, b in edges() if part_of(b) == top and part_of(a) not in allowed and a != ENTRY
    ]
    assert not bad


def test_only_native_imports_the_compiled_core() -> None:
    bad = [a for a, b in edges() if b == CORE and part_of(a) != "native"]
    assert not bad


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph, as a path that returns to its start, or None."""
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_cycle_between_packages() -> None:
    graph: dict[str, set[str]] = {}
    for a, b in edges():
        pa, pb = part_of(a), part_of(b)
        if pa and pb and pa != pb:
            graph.setdefault(pa, set()).add(pb)
    assert _cycle(graph) is None


def test_no_cycle_between_modules() -> None:
    graph: dict[str, set[str]] = {}
    for a, b in edges():
        # A package's __init__ that is imported only to reach a submodule is
        # not a real dependency of that submodule's importers.
        if b != a and b in modules():
            graph.setdefault(a, set()).add(b)
    assert _cycle(graph) is None


def test_the_cycle_finder_finds_cycles() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_every_folder_is_a_package_that_wheels_carry() -> None:
    """setuptools' find only packages folders with an __init__.py."""
    for folder in [ROOT, *(p for p in ROOT.rglob("*") if p.is_dir())]:
        if folder.name == "__pycache__" or not any(folder.glob("*.py")):
            continue
        assert (folder / "__init__.py").exists(), folder
