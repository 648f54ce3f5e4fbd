"""The shape of the code, as rules (the README's Layout section draws them):

    core  <  dataset  <  harness  <  ui  <  lessons  <  command lines, pages

A module imports only from its own layer or the layers to its left; the core imports no
lesson; a lesson never imports another; a page imports its own lesson, the UI and the shared
layers (core, harness, dataset). No module imports one that imports it back, at any depth.
Streamlit is imported only by the pages, the UI, and in a lesson by its `cached.py` and its
custom components. Each table of the app has one home."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LIB = ROOT / "lib"
LAYERS = ("core", "dataset", "harness", "ui", "lessons", "commands")
COMPONENTS = {"lib.lessons.space.embedding_map", "lib.lessons.metrics.vector_arrows"}
PAGE_LESSON = {
    "1_Embedding_space.py": "space",
    "2_Distance_metrics.py": "metrics",
    "3_Recall_at_scale.py": "recall",
    "4_Index_tuning.py": "tuning",
    "5_Filtered_search.py": "filtered",
    "6_Evals.py": "evals",
    "7_Hybrid_search.py": "hybrid",
    "8_Re_embedding.py": "reembed",
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every module `path` imports, anywhere in its body (`from a import b` counts a and a.b)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return found


def lib_modules() -> dict[str, Path]:
    return {module_name(p): p for p in LIB.rglob("*.py")}


def lib_imports() -> dict[str, set[str]]:
    """Every lib module and the lib modules it imports."""
    modules = lib_modules()
    return {
        name: {m for m in imports_of(path) if m in modules and m != name}
        for name, path in modules.items()
    }


def layer(module: str) -> str:
    """The layer of a lib module: core, harness, dataset, ui, lessons, or commands (the
    modules directly in lib/, run as `python -m lib.X`)."""
    parts = module.split(".")
    if len(parts) == 1:
        return "core"  # the lib package itself
    return parts[1] if parts[1] in LAYERS[:-1] else "commands"


def lesson(module: str) -> str | None:
    parts = module.split(".")
    return parts[2] if len(parts) > 2 and parts[1] == "lessons" else None


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


def upward(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    """Imports that run from a layer to one to its right, or between two lessons."""
    bad = []
    for a, targets in graph.items():
        for b in targets:
            if b in ("lib", f"lib.{layer(b)}"):
                continue  # a package's docstring-only __init__
            if LAYERS.index(layer(b)) > LAYERS.index(layer(a)):
                bad.append((a, b))
            elif lesson(a) and lesson(b) and lesson(a) != lesson(b):
                bad.append((a, b))
    return sorted(bad)


def test_lib_has_no_import_cycle():
    graph = lib_imports()
    assert "lib.harness.recall" in graph["lib.lessons.recall.vector_columns"]  # sees imports
    assert cycles(graph) == []


def test_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]


def test_no_import_runs_upward_and_no_lesson_imports_another():
    graph = lib_imports()
    assert {layer(m) for m in graph} == set(LAYERS)
    assert upward(graph) == []


def test_the_rule_finds_an_upward_import_and_one_between_lessons():
    graph = {
        "lib.core.database": {"lib.lessons.recall.view"},
        "lib.lessons.tuning.gallery": {"lib.lessons.metrics.rankings", "lib.core.psql"},
        "lib.harness.truths": {"lib.dataset.builds"},
    }
    assert upward(graph) == [
        ("lib.core.database", "lib.lessons.recall.view"),
        ("lib.lessons.tuning.gallery", "lib.lessons.metrics.rankings"),
    ]


def test_the_core_imports_no_lesson_and_nothing_above_it():
    graph = lib_imports()
    core = {m: t for m, t in graph.items() if layer(m) == "core" and m != "lib"}
    assert core and all(layer(t) == "core" for ts in core.values() for t in ts), core


def test_pages_import_their_lesson_the_ui_and_the_shared_layers_only():
    for page, own in PAGE_LESSON.items():
        found = {m for m in imports_of(ROOT / "pages" / page) if m.startswith("lib.")}
        assert any(lesson(m) == own for m in found), page
        for m in found:
            assert layer(m) in ("core", "harness", "dataset", "ui", "lessons"), (page, m)
            assert lesson(m) in (None, own), (page, m)
    home = {m for m in imports_of(ROOT / "streamlit_app.py") if m.startswith("lib.")}
    assert home and all(layer(m) == "ui" for m in home), home
    assert sorted(PAGE_LESSON) == sorted(p.name for p in (ROOT / "pages").glob("*.py"))


def test_streamlit_is_imported_only_where_the_rule_says():
    allowed = []
    for name, path in lib_modules().items():
        if not any(m == "streamlit" or m.startswith("streamlit.") for m in imports_of(path)):
            continue
        ok = (
            layer(name) == "ui" or (lesson(name) and name.endswith(".cached")) or name in COMPONENTS
        )
        assert ok, f"{name} imports Streamlit"
        allowed.append(name)
    assert "lib.ui.nav" in allowed and "lib.lessons.recall.cached" in allowed


def test_streamlit_internals_are_read_in_one_module():
    private = re.compile(r"\._(session_mgr|storage_lock|session_storage|get_async_objs)\b")
    readers = [
        module_name(p)
        for p in [*LIB.rglob("*.py"), *ROOT.glob("pages/*.py"), ROOT / "streamlit_app.py"]
        if private.search(p.read_text())
    ]
    assert readers == ["lib.ui.st_internals"]


def test_one_table_of_operators_and_opclasses():
    from lib.core import operators
    from lib.harness import recall
    from lib.lessons.metrics import rankings
    from lib.lessons.recall import vector_columns

    assert rankings.METRICS is operators.METRICS
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
    for module in (recall, vector_columns, rankings):
        for name in ("OPERATORS", "OPCLASS_OPERATORS"):
            assert not hasattr(module, name), (module.__name__, name)


def test_one_job_queue():
    """Every kind of job goes through lib/core/jobs.py: no other module claims jobs or takes
    a lane's lock."""
    claims = re.compile(r"FOR UPDATE SKIP LOCKED|pg_try_advisory_lock\(hashtext\(%s\)\)")
    found = [module_name(p) for p in LIB.rglob("*.py") if claims.search(p.read_text())]
    assert found == ["lib.core.jobs"]


def test_every_file_a_docstring_names_exists():
    """Module docstrings and comments name files as they are (`lib/x.py`)."""
    named = re.compile(r"\b((?:lib|tests|bench|scripts|pages|data)/[\w/.-]+\.(?:py|js|md))\b")
    missing = []
    for p in [*LIB.rglob("*.py"), *ROOT.glob("pages/*.py"), *ROOT.glob("bench/*.py")]:
        for ref in named.findall(p.read_text()):
            if not (ROOT / ref).exists():
                missing.append((str(p.relative_to(ROOT)), ref))
    assert missing == []


def test_the_readme_layout_section_matches_the_tree():
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "scripts/layout.py"], capture_output=True, text=True, cwd=ROOT, check=True
    ).stdout
    readme = (ROOT / "README.md").read_text()
    section = readme.split("<!-- layout:start -->", 1)[1].split("<!-- layout:end -->", 1)[0]
    assert section.strip() == out.strip(), "run `make layout`"


def test_benchmarks_import_nothing_from_the_tests():
    """A benchmark runs from the runtime install: tests/ may import bench/, not the reverse."""
    for p in ROOT.glob("bench/*.py"):
        assert "conftest" not in imports_of(p), p.name
        assert not re.search(r'/ "tests"', p.read_text()), p.name  # on sys.path


def test_no_local_state_is_tracked():
    """.venv, .cache and .pgdata are this machine's (a worktree may make them symlinks): a
    tracked one would replace the real directory on the next checkout."""
    import subprocess

    tracked = subprocess.run(
        ["git", "ls-files", "--", ".venv", ".cache", ".pgdata"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert tracked == []
    ignored = subprocess.run(
        ["git", "check-ignore", "--no-index", ".venv", ".cache", ".pgdata"],
        cwd=ROOT, capture_output=True, text=True,
    ).stdout.split()  # fmt: skip
    assert sorted(ignored) == [".cache", ".pgdata", ".venv"]
