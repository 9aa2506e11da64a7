"""Layering: higher layers use lower ones, never the reverse, and no import cycle.

The import graph is read from the source with ``ast`` (nothing is imported). Every
``import`` of a shiftbench module counts, also inside a function (a lazy import is still
a dependency) and under ``TYPE_CHECKING``; only the import-time check leaves those out.
A component is a top-level module or subpackage (``shiftbench.monitor.stream`` belongs
to ``monitor``).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import shiftbench

PACKAGE = Path(shiftbench.__file__).parent
LOWER = {"split", "errors", "cache", "device", "registry", "config", "data", "metrics",
         "file_formats", "runtime", "arrays"}
HIGHER = {"run", "monitor", "gate", "report", "cli", "__main__"}
NEVER = {  # component -> components it must not reach, even through others
    "shifts": {"models"},  # shifts use the runner and the HF backbone, never an adapter
    "detectors": {"runner", "models"},  # detectors test vectors; devices come from device
    "evaluate": {"shifts"},  # per-example seeds live in split
    "models": {"detectors"},  # adapters and embedders make vectors; detectors test them
}


def _modules() -> dict[str, Path]:
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


MODULES = _modules()


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_nodes(nodes: Iterator[ast.AST], import_time: bool) -> Iterator[ast.AST]:
    """The import statements below ``nodes``; with ``import_time`` only those that run when
    the module is imported (not in functions, not under ``if TYPE_CHECKING``)."""
    for node in nodes:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif import_time and isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        elif import_time and isinstance(node, ast.If) and _is_type_checking(node.test):
            yield from _import_nodes(iter(node.orelse), import_time)
        else:
            yield from _import_nodes(ast.iter_child_nodes(node), import_time)


def _owner(name: str) -> str:
    """The shiftbench module that ``name`` (a module or a name in one) lives in."""
    while name not in MODULES:
        name = name.rpartition(".")[0]
    return name


def _targets(node: ast.AST, module: str) -> set[str]:
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        assert isinstance(node, ast.ImportFrom)
        base = node.module or ""
        if node.level:
            package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
            parts = package.split(".")[:len(package.split(".")) - node.level + 1]
            base = ".".join([*parts, base] if base else parts)
        names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base
                 for alias in node.names]
    return {_owner(name) for name in names if name.split(".")[0] == "shiftbench"} - {module}


def graph(import_time: bool = False) -> dict[str, set[str]]:
    """Module -> the shiftbench modules it imports."""
    edges = {}
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        nodes = iter(tree.body) if import_time else iter([tree])
        edges[module] = {target for node in _import_nodes(nodes, import_time)
                         for target in _targets(node, module)}
    return edges


def component(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "shiftbench"


def component_graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for module, targets in graph().items():
        edges.setdefault(component(module), set()).update(
            component(t) for t in targets if component(t) != component(module))
    return edges


def reach(edges: dict[str, set[str]], start: str) -> dict[str, list[str]]:
    """Every node reachable from ``start``, with the import chain that reaches it."""
    paths = {start: [start]}
    todo = [start]
    while todo:
        node = todo.pop()
        for target in sorted(edges.get(node, ())):
            if target not in paths:
                paths[target] = [*paths[node], target]
                todo.append(target)
    return paths


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph as a path that ends where it starts, or None."""
    for start in sorted(edges):
        for node, path in reach(edges, start).items():
            if start in edges.get(node, ()):
                return [*path, start]
    return None


def test_the_tables_name_real_components() -> None:
    named = LOWER | HIGHER | set(NEVER) | {c for cs in NEVER.values() for c in cs}
    assert named <= {component(m) for m in MODULES}


def chains_to(source: str, forbidden: set[str]) -> str:
    """The import chains from ``source`` to any ``forbidden`` component ("" when none)."""
    paths = reach(component_graph(), source)
    return " | ".join(" -> ".join(path) for c, path in paths.items() if c in forbidden)


@pytest.mark.parametrize("lower", sorted(LOWER))
def test_lower_layers_never_import_higher_ones(lower: str) -> None:
    assert chains_to(lower, HIGHER) == ""


@pytest.mark.parametrize(("source", "forbidden"), sorted(NEVER.items()))
def test_components_keep_to_their_layer(source: str, forbidden: set[str]) -> None:
    assert chains_to(source, forbidden) == ""


def test_no_import_cycle_between_components() -> None:
    cycle = find_cycle(component_graph())
    assert cycle is None, " -> ".join(cycle or [])


def test_no_import_cycle_at_import_time() -> None:
    cycle = find_cycle(graph(import_time=True))
    assert cycle is None, " -> ".join(cycle or [])


def test_the_graph_sees_lazy_imports() -> None:
    """The checks would be empty if lazy imports were missed: run imports models in a
    function only, and that counts."""
    assert "shiftbench.models" in graph()["shiftbench.run"]
    assert "shiftbench.models" not in graph(import_time=True)["shiftbench.run"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
