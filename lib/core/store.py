"""The corpus in Postgres: one table per model, loaded with binary COPY, with an HNSW index.

Each row keeps the item's theme and lesson flag, so a query can search the items a map
shows. A table is rebuilt only when its fingerprint (model, dimension, and every item's
content hash, theme and lesson flag) changes; an advisory lock makes concurrent sessions
asking for the same table wait for one load instead of racing.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from psycopg import sql

from lib.core.corpus import CorpusItem, content_hash
from lib.core.database import Database
from lib.core.embeddings.base import checked_vectors
from lib.core.psql import Script, Statement, ident, run

META_DDL = """
CREATE TABLE IF NOT EXISTS lab_tables (
    name        text PRIMARY KEY,
    model       text NOT NULL,
    dimension   integer NOT NULL,
    fingerprint text NOT NULL,
    row_count   integer NOT NULL,
    built_at    timestamptz NOT NULL DEFAULT now()
)"""

# The query the pages run and show: `{table}` is the model's corpus table, `<=>` cosine
# distance, $1 the query vector, $2 how many rows.
NEAREST_SQL = """SELECT id, kind, theme, content, embedding <=> $1 AS distance
FROM {table}
ORDER BY embedding <=> $1
LIMIT $2"""


@dataclass(frozen=True)
class Neighbor:
    id: str
    kind: str
    theme: str
    content: str
    distance: float

    @property
    def similarity(self) -> float:
        """Cosine similarity: 1 - cosine distance."""
        return 1.0 - self.distance


def corpus_table(model_name: str) -> str:
    """The name of the table that holds `model_name`'s vectors of the corpus items."""
    return "corpus_" + re.sub(r"[^a-z0-9]+", "_", model_name.lower()).strip("_")


def fingerprint(model_name: str, dimension: int, items: Sequence[CorpusItem]) -> str:
    h = hashlib.sha256(f"{model_name}\0{dimension}".encode())
    for it in items:
        h.update(f"\0{it.id}\0{content_hash(it)}\0{it.theme}\0{it.lesson}".encode())
    return h.hexdigest()


def ensure_corpus_table(
    db: Database, model_name: str, items: Sequence[CorpusItem], vectors: np.ndarray
) -> str:
    """Create or refresh the model's corpus table so it holds exactly `items`; return its name."""
    dimension = vectors.shape[1]
    vectors = checked_vectors(vectors, dimension, len(items))
    table = corpus_table(model_name)
    want = fingerprint(model_name, dimension, items)
    with db.transaction() as conn:
        conn.execute(META_DDL)
    if _current(db, table, want):
        return table
    ident = sql.Identifier(table)
    with db.transaction({"maintenance_work_mem": "256MB"}) as conn:
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (table,))
        row = conn.execute(
            "SELECT fingerprint FROM lab_tables WHERE name = %s", (table,)
        ).fetchone()
        if row and row[0] == want:
            return table  # another session loaded it while we waited
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(ident))
        conn.execute(
            sql.SQL(
                "CREATE TABLE {} (id text PRIMARY KEY, kind text NOT NULL, theme text NOT NULL,"
                " content text NOT NULL, image_path text, lesson boolean NOT NULL,"
                " embedding vector({}) NOT NULL)"
            ).format(ident, sql.Literal(dimension))
        )
        copy = sql.SQL(
            "COPY {} (id, kind, theme, content, image_path, lesson, embedding)"
            " FROM STDIN WITH (FORMAT BINARY)"
        ).format(ident)
        with conn.cursor().copy(copy) as cp:
            cp.set_types(["text", "text", "text", "text", "text", "bool", "vector"])
            for it, vec in zip(items, vectors, strict=True):
                cp.write_row((it.id, it.kind, it.theme, it.text, it.image, it.lesson, vec))
        conn.execute(
            sql.SQL("CREATE INDEX ON {} USING hnsw (embedding vector_cosine_ops)").format(ident)
        )
        conn.execute(sql.SQL("ANALYZE {}").format(ident))
        conn.execute(
            "INSERT INTO lab_tables (name, model, dimension, fingerprint, row_count)"
            " VALUES (%s, %s, %s, %s, %s)"
            " ON CONFLICT (name) DO UPDATE SET model = EXCLUDED.model,"
            " dimension = EXCLUDED.dimension, fingerprint = EXCLUDED.fingerprint,"
            " row_count = EXCLUDED.row_count, built_at = now()",
            (table, model_name, dimension, want, len(items)),
        )
    return table


def _current(db: Database, table: str, want: str) -> bool:
    row = db.fetchone(
        "SELECT fingerprint = %s AND to_regclass(%s) IS NOT NULL FROM lab_tables WHERE name = %s",
        (want, table, table),
    )
    return bool(row and row[0])


# An exact scan: with index scans off the planner must read every row, so the answer is the
# true k nearest rather than the HNSW graph's approximation.
EXACT = {"enable_indexscan": "off"}
EXACT_COMMENT = "no index scan: every row is read, so the answer is exact"


def nearest_statement(table: str, query: np.ndarray, k: int) -> Statement:
    """The nearest-neighbour query on `table` with its parameters bound."""
    q = checked_vectors(query, query.shape[-1], 1)[0]
    return Statement.of(
        sql.SQL(NEAREST_SQL).format(table=ident(table)),
        q,
        int(k),
        names=("the query vector", "k"),
    )


def nearest_script(
    db: Database, table: str, query: np.ndarray, k: int = 10, *, exact: bool = True
) -> Script:
    """Run the nearest-neighbour query (an exact scan unless `exact` is False): rows and SQL."""
    return run(
        db,
        [nearest_statement(table, query, k)],
        EXACT if exact else None,
        settings_comment=EXACT_COMMENT if exact else "",
    )


def nearest(
    db: Database, table: str, query: np.ndarray, k: int = 10, *, exact: bool = True
) -> list[Neighbor]:
    """The k corpus items nearest to `query` by cosine distance, computed by Postgres."""
    return [Neighbor(*r) for r in nearest_script(db, table, query, k, exact=exact).rows]
