"""The package's shape, checked from its source with ``ast`` (nothing imported, no torch): no import cycle between
its modules, and no long function.

Import edges counted: every ``import``/``from ... import`` of a ``humanparse`` module at module level (inside
``try``/``if`` blocks too), under ``if TYPE_CHECKING:``, and inside functions. A function-local import that only
keeps start-up cheap is fine; one that exists to break a cycle is not, and shows up here as the cycle it hides.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "function" / "humanparse"
MAX_FUNCTION_LINES = 60
# Functions allowed over the limit, each with its reason (none now; the list may only shrink).
LONG_FUNCTIONS_ALLOWED: dict[str, str] = {}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute name a ``from`` import names (``from ..x import y`` in ``a.b.c`` → ``a.x``)."""
    if not node.level:
        return node.module or ""
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imported(module: str, is_package: bool, tree: ast.AST, known: set[str]) -> Iterator[tuple[str, int]]:
    """(imported humanparse module, line) for every import anywhere in ``tree``: a ``from X import y`` where
    ``X.y`` is a module counts as importing ``X.y``, else ``X``."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in known:
                    yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, is_package, node)
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                if sub in known:
                    yield sub, node.lineno
                elif target in known:
                    yield target, node.lineno


def import_graph() -> dict[str, dict[str, int]]:
    """module → {imported module: line of the first such import}."""
    mods = _modules()
    known = set(mods)
    graph: dict[str, dict[str, int]] = {}
    for name, path in mods.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        edges: dict[str, int] = {}
        for target, line in _imported(name, path.name == "__init__.py", tree, known):
            if target != name:
                edges.setdefault(target, line)
        graph[name] = edges
    return graph


def find_cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


def long_functions(limit: int = MAX_FUNCTION_LINES) -> dict[str, int]:
    """``module:qualified.name`` → lines (from ``def``, decorators excluded, to the end of its body) for every
    function or method longer than ``limit``."""
    found: dict[str, int] = {}
    for name, path in _modules().items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))

        def walk(node: ast.AST, prefix: str) -> None:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    qual = f"{prefix}{child.name}"
                    if not isinstance(child, ast.ClassDef):
                        lines = (child.end_lineno or child.lineno) - child.lineno + 1
                        if lines > limit:
                            found[f"{name}:{qual}"] = lines  # noqa: B023 (walk runs before the loop moves on)
                    walk(child, qual + ".")
                else:
                    walk(child, prefix)

        walk(tree, "")
    return found


def test_the_graph_sees_every_kind_of_import() -> None:
    """The checker itself: module level, relative, under TYPE_CHECKING and inside a function all count."""
    src = ("from typing import TYPE_CHECKING\nimport humanparse.b\nfrom .c import x\nfrom . import d\n"
           "if TYPE_CHECKING:\n    from ..engine import e\ndef f():\n    from .g import y\n")
    known = {"humanparse.b", "humanparse.local.c", "humanparse.local.d", "humanparse.engine.e",
             "humanparse.local.g", "humanparse.local"}
    got = {m for m, _ in _imported("humanparse.local.a", False, ast.parse(src), known)}
    assert got == known - {"humanparse.local"}
    assert find_cycles({"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}, "d": {"a": 1}}) == [["a", "b", "c"]]


def test_no_import_cycle() -> None:
    graph = import_graph()
    assert len(graph) > 50 and "humanparse.engine.m2fp.predictor" in graph
    cycles = find_cycles(graph)
    detail = ["  " + " , ".join(f"{m} -> {t} (line {graph[m][t]})" for m in c for t in graph[m] if t in c)
              for c in cycles]
    assert not cycles, "import cycles:\n" + "\n".join(detail)


def test_no_function_over_60_lines() -> None:
    found = long_functions()
    too_long = {k: v for k, v in found.items() if k not in LONG_FUNCTIONS_ALLOWED}
    assert not too_long, f"functions over {MAX_FUNCTION_LINES} lines (split them): {too_long}"
    stale = sorted(set(LONG_FUNCTIONS_ALLOWED) - set(found))
    assert not stale, f"no longer over {MAX_FUNCTION_LINES} lines, drop from LONG_FUNCTIONS_ALLOWED: {stale}"
