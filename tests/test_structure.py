"""The shape of lib/: no module imports one that imports it back (at any depth, counting the
imports inside functions), and each table the app keeps has one home."""

from __future__ import annotations

import ast
from pathlib import Path

LIB = Path(__file__).resolve().parent.parent / "lib"


def module_name(path: Path) -> str:
    parts = path.relative_to(LIB.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def lib_imports() -> dict[str, set[str]]:
    """Every lib module and the lib modules it imports (anywhere in its body)."""
    modules = {module_name(p): p for p in LIB.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                found.add(node.module)
                found |= {f"{node.module}.{a.name}" for a in node.names}
        graph[name] = {m for m in found if m in modules and m != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Import cycles, each as the path that closes it."""
    out, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                out.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return out


def test_lib_has_no_import_cycle():
    graph = lib_imports()
    assert "lib.recall" in graph["lib.vector_columns"]  # the graph sees real imports
    assert cycles(graph) == []


def test_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]


def test_one_table_of_operators_and_opclasses():
    from lib import metrics, operators, vector_columns

    assert metrics.METRICS is operators.METRICS
    assert [m.opclass for m in operators.METRICS] == [
        "vector_cosine_ops",
        "vector_l2_ops",
        "vector_ip_ops",
    ]
    assert operators.operator_of("halfvec_cosine_ops") == "<=>"
    assert operators.operator_of("bit_hamming_ops") == "<~>"
    assert operators.operator_of("btree_int4_ops") is None
    index = vector_columns.ColumnIndex("i", "hnsw", "vector_ip_ops", True, False)
    assert index.operator == "<#>"
    for name in ("OPERATORS", "OPCLASS_OPERATORS"):
        for module in ("lib.recall", "lib.vector_columns", "lib.metrics"):
            assert not hasattr(__import__(module, fromlist=["x"]), name), (module, name)
