"""The package's modules import each other in one direction only (no import cycles).

A cycle works only while every module in it happens to be imported in one order; the
next import added anywhere in it breaks with a partially initialised module. The check is
static (``ast``), so it sees imports on paths the other tests never run.
"""

from __future__ import annotations

import ast
from pathlib import Path

import qrobench

ROOT = Path(qrobench.__file__).parent


def _modules() -> dict[str, Path]:
    out = {}
    for path in ROOT.rglob("*.py"):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or \
        (isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def _imports(tree: ast.Module, module_level: bool):
    """Import statements: at module level (also inside top-level if/try), or everywhere."""
    if not module_level:
        yield from (n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom)))
        return
    stack = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If) and not _is_type_checking(node):
            stack += node.body + node.orelse
        elif isinstance(node, ast.Try):
            stack += node.body + node.orelse + node.finalbody + [s for h in node.handlers for s in h.body]


def import_graph(module_level: bool = True) -> dict[str, set[str]]:
    """module -> the package modules it imports. Importing ``a.b.c`` runs ``a.b`` first, so
    the target's packages count too, except the importer's own (already being imported)."""
    mods = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        own = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
        targets: set[str] = set()
        for node in _imports(ast.parse(path.read_text()), module_level):
            if isinstance(node, ast.Import):
                cands = [a.name for a in node.names]
            else:
                base = package.split(".")[:len(package.split(".")) - node.level + 1] if node.level else []
                mod = ".".join(base + ([node.module] if node.module else [])) if node.level else node.module
                cands = [mod] + [f"{mod}.{a.name}" for a in node.names]
            for c in cands:
                parts = c.split(".")
                for i in range(1, len(parts) + 1):
                    t = ".".join(parts[:i])
                    if t in mods and t not in own and t != name:
                        targets.add(t)
        graph[name] = targets
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_graph_sees_known_edges():
    g = import_graph()
    assert "qrobench.models.resnet" in g["qrobench.models.enresnet"]
    assert "qrobench.registry" in g["qrobench.models.registry"]
    assert "qrobench.models" not in g["qrobench.models.resnet"]  # its own package: not an edge


def test_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_at_module_level():
    assert cycles(import_graph(module_level=True)) == []


def test_no_import_cycle_through_function_level_imports():
    """Deferred imports inside functions hide a cycle rather than remove it (resnet.py and
    enresnet.py once imported each other this way)."""
    assert cycles(import_graph(module_level=False)) == []


# Command modules (argument parsing and printing) are imported only by qrobench/cli.py;
# library code they used to hold lives in library modules.
COMMAND_MODULES = {"qrobench.check", "qrobench.diagnose", "qrobench.sweep", "qrobench.weights",
                   "qrobench.submit.cli", "qrobench.train.cli", "qrobench.reports.cli"}

def test_only_the_cli_imports_command_modules():
    g = import_graph(module_level=False)
    edges = {(m, t) for m, ts in g.items() for t in ts & COMMAND_MODULES
             if m not in ("qrobench.cli", "qrobench.__main__") and not m.startswith(t + ".")}
    assert edges == set()
