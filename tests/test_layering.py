"""The import graph of ``src/cnnkit``: no circles, and no arrow from a lower layer up to a higher
one (the rule :mod:`cnnkit`'s docstring states).

Read statically with :mod:`ast` (no module is imported, so it takes well under a second):
every ``import`` counts, at module level or inside a function, except those under
``if TYPE_CHECKING:`` (they never run). A name imported from a package counts as an import of
the submodule when one has that name.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

# Lowest first. A module belongs to the longest prefix listed; it may import modules of its own
# layer or of a lower one. The root package ``cnnkit`` runs no cnnkit import (its public names
# are resolved on first use), so any module may read ``cnnkit.__version__``.
LAYERS: list[tuple[str, ...]] = [
    (
        "cnnkit",
        "cnnkit.errors",
        "cnnkit.atomic",
        "cnnkit.fields",
        "cnnkit.options",
        "cnnkit.run_files",
    ),
    ("cnnkit.devices", "cnnkit.notebook", "cnnkit.figure", "cnnkit.ops"),
    ("cnnkit.data",),
    ("cnnkit.layers",),
    ("cnnkit.models",),
    ("cnnkit.augment",),
    ("cnnkit.run", "cnnkit.card", "cnnkit.onnx_runtime"),
    ("cnnkit.train",),
    ("cnnkit.evaluate",),
    # the jobs: they train, then measure the held-out splits (evaluate's metrics)
    ("cnnkit.train.runner", "cnnkit.train.job"),
    ("cnnkit.transfer", "cnnkit.predict"),
    ("cnnkit.export", "cnnkit.quantize", "cnnkit.serve"),
    ("cnnkit.cli", "cnnkit.__main__"),
    ("cnnkit.keras",),
]

# (importer, imported) -> why the arrow is allowed. Keep it short; each entry is a debt.
ALLOWED: dict[tuple[str, str], str] = {}

# Circles allowed, as the sorted tuple of their modules -> why. Each entry is a debt.
ALLOWED_CIRCLES: dict[tuple[str, ...], str] = {}


def _modules() -> dict[str, Path]:
    modules = {}
    for path in sorted((SRC / "cnnkit").rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node that can run: all but the bodies of ``if TYPE_CHECKING:``."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node):
            for other in node.orelse:
                yield other
                yield from _runtime_nodes(other)
            continue
        yield node
        yield from _runtime_nodes(node)


def _imports(name: str, path: Path, modules: dict[str, Path]) -> Iterator[tuple[str, int]]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in _runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "cnnkit":
                    yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            if target.split(".")[0] != "cnnkit":
                continue
            for alias in node.names:
                child = f"{target}.{alias.name}"
                yield (child if child in modules else target), node.lineno


def _graph() -> dict[str, dict[str, int]]:
    modules = _modules()
    graph: dict[str, dict[str, int]] = {}
    for name, path in modules.items():
        edges = graph.setdefault(name, {})
        for target, line in _imports(name, path, modules):
            assert target in modules, f"{name}:{line} imports {target}, which does not exist"
            if target != name:
                edges.setdefault(target, line)
    return graph


def _layer(module: str) -> int:
    best, level = "", -1
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            matches = module == prefix or module.startswith(prefix + ".")
            if matches and len(prefix) > len(best):
                best, level = prefix, index
    assert level >= 0, f"{module} is in no layer: add it to LAYERS in {__file__}"
    return level


def _circles(graph: dict[str, dict[str, int]]) -> list[tuple[str, ...]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[tuple[str, ...]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(tuple(sorted(component)))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_every_module_has_a_layer() -> None:
    for module in _modules():
        _layer(module)


def test_no_arrow_points_up() -> None:
    graph = _graph()
    upward = [
        f"{source} (layer {_layer(source)}) imports {target} (layer {_layer(target)}) "
        f"at line {line}"
        for source, edges in graph.items()
        for target, line in edges.items()
        if _layer(target) > _layer(source) and (source, target) not in ALLOWED
    ]
    assert not upward, "\n".join(upward)


def test_no_circles() -> None:
    circles = [c for c in _circles(_graph()) if c not in ALLOWED_CIRCLES]
    assert not circles, "import circles:\n" + "\n".join(" <-> ".join(c) for c in circles)


def test_allow_lists_hold_no_stale_entries() -> None:
    graph = _graph()
    stale = [pair for pair in ALLOWED if pair[1] not in graph[pair[0]]]
    stale += [circle for circle in ALLOWED_CIRCLES if circle not in _circles(graph)]
    assert not stale, f"allowed but no longer there (remove them): {stale}"


def test_the_root_package_imports_nothing_at_runtime() -> None:
    assert _graph()["cnnkit"] == {}


@pytest.mark.parametrize("module", ["cnnkit", "cnnkit.layers", "cnnkit.data.dataset"])
def test_importing_alone_pulls_in_no_higher_layer(module: str) -> None:
    """The static graph against a real interpreter: a fresh process imports ``module`` alone
    and lists every cnnkit module that came with it."""
    code = f"import sys, {module}; print(*sorted(m for m in sys.modules if m.startswith('cnnkit')))"
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert module in loaded
    higher = [m for m in loaded if _layer(m) > _layer(module)]
    assert not higher, f"importing {module} loads {higher}"
