"""The import graph of ``billing_sync``: no cycles, and no layer importing a later one.

Parsed with ``ast`` (no import runs), counting imports at module level and inside
functions alike: an import moved into a function to dodge a cycle is still an edge.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "billing_sync"

# Earlier layers never import later ones; a module belongs to the layer of its longest
# prefix here. Modules of one layer may import each other (without cycles).
LAYERS: list[tuple[str, ...]] = [
    ("billing_sync", "billing_sync.sql", "billing_sync.config", "billing_sync.column_types",
     "billing_sync.secrets", "billing_sync.private_files", "billing_sync.keys",
     "billing_sync.faults", "billing_sync.postgres", "billing_sync.shards"),
    ("billing_sync.source",),
    ("billing_sync.capture",),
    ("billing_sync.transform",),
    ("billing_sync.validate",),
    ("billing_sync.load",),
    ("billing_sync.feed",),
    ("billing_sync.reconcile",),
    ("billing_sync.serve",),
    ("billing_sync.alerts",),
    ("billing_sync.engine",),
    ("billing_sync.simulator",),
    ("billing_sync.defs", "billing_sync.definitions", "billing_sync.cli",
     "billing_sync.quarantine_cli", "billing_sync.sources_cli", "billing_sync.analyst_cli",
     "billing_sync.ops_cli", "billing_sync.feed_cli", "billing_sync.topology",
     "billing_sync.metrics", "billing_sync.demo",
     "billing_sync.bench", "billing_sync.api"),
]  # fmt: skip


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): path for path in PACKAGE.rglob("*.py")}


def _known(name: str) -> str | None:
    """The module ``name`` is, or the nearest package holding it (a name inside one)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imported(module: str, node: ast.Import | ast.ImportFrom) -> Iterator[str]:
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
        return
    base = node.module or ""
    if node.level:
        package = module.split(".")
        if MODULES[module].name != "__init__.py":
            package = package[:-1]
        package = package[: len(package) - node.level + 1]
        base = ".".join([*package, base] if base else package)
    for alias in node.names:  # ``from package import module`` is an edge to the module
        yield f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base


def import_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {module: set() for module in MODULES}
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import | ast.ImportFrom):
                for name in _imported(module, node):
                    target = _known(name) if name.startswith("billing_sync") else None
                    if target is not None and target != module:
                        graph[module].add(target)
    return graph


def layer_of(module: str) -> int:
    best, layer = -1, -1
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, layer = len(prefix), index
    return layer


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return [
        f"{module} (layer {layer_of(module)}) imports {target} (layer {layer_of(target)})"
        for module in sorted(graph)
        for target in sorted(graph[module])
        if layer_of(target) > layer_of(module)
    ]


def imports_in_functions() -> Iterator[tuple[str, int, list[str]]]:
    """Each import inside a function: module, line, and the source lines above it."""
    for module, path in MODULES.items():
        text = path.read_text()
        lines = text.splitlines()
        for function in ast.walk(ast.parse(text, str(path))):
            if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                for node in ast.walk(function):
                    if isinstance(node, ast.Import | ast.ImportFrom):
                        yield module, node.lineno, lines[: node.lineno - 1]


def says_why(above: list[str]) -> bool:
    """A ``# why:`` comment right above the import, or above the imports grouped with it."""
    for line in reversed(above):
        stripped = line.strip()
        if stripped.startswith("# why:"):
            return True
        in_import = stripped.startswith(("import ", "from ", ")")) or stripped.endswith(",")
        if stripped and not in_import:
            return False
    return False


def test_every_module_has_a_layer() -> None:
    assert [module for module in MODULES if layer_of(module) < 0] == []


def test_no_import_cycles() -> None:
    assert cycles(import_graph()) == []


def test_no_layer_imports_a_later_one() -> None:
    assert upward_imports(import_graph()) == []


def test_imports_inside_functions_say_why() -> None:
    """Module level is the rule; a deferred import (Great Expectations, a probe, a worker
    that must carry only its own stack) says why in a ``# why:`` comment."""
    unexplained = [
        f"{module}:{line}" for module, line, above in imports_in_functions() if not says_why(above)
    ]
    assert unexplained == []


@pytest.mark.parametrize(
    ("graph", "expected"),
    [
        ({"a": {"b"}, "b": {"a"}, "c": set()}, [["a", "b"]]),
        ({"a": {"b"}, "b": {"c"}, "c": set()}, []),
    ],
)
def test_cycles_finds_mutual_imports(graph: dict[str, set[str]], expected: list[list[str]]) -> None:
    assert cycles(graph) == expected
