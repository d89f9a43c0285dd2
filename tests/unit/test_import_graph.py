"""trader/'s parts depend one way: no import cycle between its subpackages and top-level modules.

The graph is read from the source (ast), not by importing: every first-party import counts, also
those inside functions or under TYPE_CHECKING — a cycle hidden in a lazy import is still a cycle.
A node is a subpackage (`trader.upbit`, `trader.sim`, …) or a top-level module (`trader.engine`).
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Iterable, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2] / "trader"


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def node_of(module: str, root: Path = ROOT) -> str | None:
    """`trader.upbit.rest` → `trader.upbit`; `trader.engine` → itself; `trader` alone → None."""
    parts = module.split(".")
    if parts[0] != root.name or len(parts) < 2:
        return None
    return ".".join(parts[:2])


def imported_modules(tree: ast.AST, module: str, is_package: bool) -> Iterable[str]:
    """Absolute names of the modules an ast imports (relative imports resolved)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            yield target
            # `from trader import engine` / `from trader.upbit import rest` name modules too
            yield from (f"{target}.{alias.name}" for alias in node.names)


def import_graph(root: Path = ROOT) -> dict[str, dict[str, set[str]]]:
    """{node: {imported node: {files that import it}}}, first-party edges between nodes only."""
    graph: dict[str, dict[str, set[str]]] = {}
    for path in sorted(root.rglob("*.py")):
        module = module_name(path, root)
        src = node_of(module, root)
        if src is None:
            continue
        graph.setdefault(src, {})
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for name in imported_modules(tree, module, path.name == "__init__.py"):
            dst = node_of(name, root)
            if dst is None or dst == src or not _exists(dst, root):
                continue
            graph[src].setdefault(dst, set()).add(str(path.relative_to(root.parent)))
    return graph


def _exists(node: str, root: Path) -> bool:
    leaf = node.split(".")[1]
    return (root / leaf).is_dir() or (root / f"{leaf}.py").is_file()


def find_cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Every strongly connected component with more than one node, each as a closed path."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan; the graph has a dozen nodes, recursion is fine
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                components.append(_closed_path(sorted(comp), graph))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return components


def _closed_path(component: list[str], graph: Mapping[str, Iterable[str]]) -> list[str]:
    """A readable cycle through the component: a → … → a (shortest, by breadth-first search)."""
    start, members = component[0], set(component)
    prev: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph.get(v, ())):
                if w not in members:
                    continue
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(prev[path[-1]])
                    return [start, *reversed(path[:-1]), start]
                if w not in prev:
                    prev[w] = v
                    nxt.append(w)
        frontier = nxt
    return component


def test_trader_has_no_import_cycle() -> None:
    graph = import_graph()
    cycles = find_cycles(graph)
    lines = []
    for cycle in cycles:
        hops = [f"{a} -> {b} ({', '.join(sorted(graph[a][b]))})" for a, b in itertools.pairwise(cycle)]
        lines.append(" | ".join(hops))
    assert not cycles, "import cycles in trader/:\n" + "\n".join(lines)


def test_the_graph_sees_the_known_edges() -> None:
    # guards the reader itself: an empty or mis-named graph would pass the test above
    graph = import_graph()
    parts = {"trader.upbit", "trader.marketdata", "trader.sim", "trader.execution", "trader.engine"}
    assert parts <= set(graph)
    assert "trader.upbit" in graph["trader.sim"]  # the simulator uses Upbit's rules
    assert "trader.upbit" in graph["trader.marketdata"]  # the synthesizer uses the tick table
    assert "trader.marketdata" not in graph["trader.upbit"]  # the adapter parses its own messages


def test_cycle_finder_reports_a_cycle_with_its_path(tmp_path: Path) -> None:
    pkg = tmp_path / "trader"
    for sub in ("a", "b", "c"):
        (pkg / sub).mkdir(parents=True)
        (pkg / sub / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "a" / "x.py").write_text("from trader.b.y import f\n")
    (pkg / "b" / "y.py").write_text("def f():\n    from trader.c import z\n")  # lazy import counts
    (pkg / "c" / "z.py").write_text("from ..a import x\n")  # relative import resolved
    (pkg / "top.py").write_text("from trader import a\n")
    graph = import_graph(pkg)
    assert graph["trader.top"] == {"trader.a": {"trader/top.py"}}
    assert find_cycles(graph) == [["trader.a", "trader.b", "trader.c", "trader.a"]]
    (pkg / "c" / "z.py").write_text("import os\n")  # the cycle broken
    assert find_cycles(import_graph(pkg)) == []
