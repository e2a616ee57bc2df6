"""The import graph of the package: no cycles, data flows one way, tooling stays apart.

Function-local imports count; imports under ``if TYPE_CHECKING:`` do not (they never run).
Run ``pytest tests/unit/test_architecture.py -q`` to check a change.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "streamproc"

# Rooms from the bottom up: a module may import its own room and rooms below it only.
LAYERS: tuple[frozenset[str], ...] = (
    frozenset({"errors"}),
    frozenset({"avro", "keys", "localkafka", "localobserve", "metrics", "examples", "budget"}),
    frozenset({"transforms", "audit", "lineage"}),
    frozenset({"policy", "detector", "risk", "anonymity"}),
    frozenset({"config", "acl"}),
    frozenset({"pipeline", "report"}),
    frozenset({"runtime"}),
    frozenset({"testing"}),
    frozenset({"cli"}),
)
RANK = {room: i for i, layer in enumerate(LAYERS) for room in layer}
# Settings only read the environment, so everything may use them; topologies sit higher.
MODULE_RANK = {"streamproc.config.settings": 1, "streamproc.config": 1}


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def _type_checking_block(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _imports(tree: ast.AST, modules: set[str], here: str) -> Iterator[str]:
    stack = [tree]
    while stack:
        node = stack.pop()
        for child in ast.iter_child_nodes(node):
            if _type_checking_block(child):
                continue
            stack.append(child)
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("streamproc"):
                    yield alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative imports are not used in the package; refuse them
                raise AssertionError(f"{here}: relative import")
            if not base.startswith("streamproc"):
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                yield sub if sub in modules else base


def import_graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    modules = set(files)
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        tree = ast.parse(path.read_text(), str(path))
        graph[name] = {m for m in _imports(tree, modules, name) if m in modules and m != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
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
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def rank(module: str) -> int:
    return MODULE_RANK.get(module, RANK[room(module)])


GRAPH = import_graph()


def test_the_graph_is_read() -> None:
    assert "streamproc.pipeline.sanitize" in GRAPH
    assert "streamproc.pipeline.outcome" in GRAPH["streamproc.pipeline.sanitize"]


def test_no_import_cycle() -> None:
    assert cycles(GRAPH) == []


def test_cycle_finder_finds_one() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_every_room_has_a_layer() -> None:
    rooms = {room(m) for m in GRAPH if room(m)}
    assert rooms <= set(RANK), sorted(rooms - set(RANK))


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_imports_point_down(module: str) -> None:
    if not room(module):
        return
    upward = sorted(m for m in GRAPH[module] if room(m) and rank(m) > rank(module))
    assert upward == [], f"{module} imports upward: {upward}"
