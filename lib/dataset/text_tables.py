"""The text side of the recall tables: for each real row of a size, its id (the recall
table's), its chunk id and its passage, with a generated `tsvector` and a GIN index, so that
full-text search and vector search rank the same rows.

One table per size, `recall_text_n{N}`: the text depends on the corpus and the size only (a
size's rows are the same passages whatever the model), so every model's recall table of that
size shares it. Generated rows (past the corpus's real passages) have no text and no row here.
It is loaded with COPY, then indexed and analysed, in one transaction under an advisory lock
on its name (two processes never build it twice; a killed build leaves nothing), and
recorded in `recall_text_tables` with its load and GIN build times; its sizes on disk are
read from the server when asked (`text_status`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from psycopg import sql

from lib.core.database import Database, Setting
from lib.core.psql import Statement, ident
from lib.dataset.builds import build_settings
from lib.dataset.passages import N_QUERIES, Dataset

TS_CONFIG = "english"
GIN_MEMORY = "256MB"

META_DDL = """CREATE TABLE IF NOT EXISTS recall_text_tables (
    name text PRIMARY KEY,
    n integer NOT NULL,
    corpus text NOT NULL,
    rows integer NOT NULL,
    loaded_at timestamptz NOT NULL DEFAULT now(),
    load_seconds double precision NOT NULL,
    index_name text NOT NULL,
    index_seconds double precision NOT NULL,
    maintenance_work_mem text NOT NULL
)"""


def table_name(n: int) -> str:
    return f"recall_text_n{n}"


def index_name(n: int) -> str:
    return f"{table_name(n)}_tsv_idx"


def ensure_meta(db: Database) -> None:
    db.ensure("recall_text_meta", META_DDL)


def create_statement(table: str) -> Statement:
    """The CREATE TABLE of a text table: id, chunk id, passage and its generated tsvector."""
    return Statement.of(
        sql.SQL(
            "CREATE TABLE {t} (\n"
            "    id integer PRIMARY KEY,\n"
            "    chunk_id text NOT NULL,\n"
            "    body text NOT NULL,\n"
            "    body_tsv tsvector GENERATED ALWAYS AS (to_tsvector({cfg}, body)) STORED\n"
            ")"
        ).format(t=ident(table), cfg=sql.Literal(TS_CONFIG))
    )


def index_statement(table: str, index: str) -> Statement:
    """The CREATE INDEX of the text table's GIN index on its tsvector."""
    return Statement.of(
        sql.SQL("CREATE INDEX {i} ON {t} USING gin (body_tsv)").format(
            i=ident(index), t=ident(table)
        )
    )


def index_settings() -> dict[str, Setting]:
    """What the load and the GIN build run under (`build_settings`, and memory for GIN)."""
    return {**build_settings(), "maintenance_work_mem": GIN_MEMORY}


@dataclass(frozen=True)
class TextTable:
    """A size's text table as the server has it now."""

    name: str
    n: int
    rows: int
    loaded_at: datetime
    load_seconds: float
    index: str
    index_seconds: float
    maintenance_work_mem: str
    table_bytes: int  # pg_table_size: heap and TOAST
    index_bytes: int

    def build_statements(self) -> list[Statement]:
        """What built it, as shown (the COPY's rows come from the client, so it is left out)."""
        return [create_statement(self.name), index_statement(self.name, self.index)]


STATUS_SQL = """SELECT t.n, t.rows, t.loaded_at, t.load_seconds, t.index_name,
       t.index_seconds, t.maintenance_work_mem,
       pg_table_size(to_regclass(t.name)), pg_relation_size(to_regclass(t.index_name))
FROM recall_text_tables t
JOIN pg_index x ON x.indexrelid = to_regclass(t.index_name) AND x.indisvalid
WHERE t.name = %s AND t.corpus = %s AND t.rows = %s"""


def text_status(db: Database, ds: Dataset, n: int) -> TextTable | None:
    """Size `n`'s text table if it is built from this corpus, with its sizes now; else None."""
    ensure_meta(db)
    name = table_name(n)
    row = db.fetchone(STATUS_SQL, (name, ds.corpus_digest, ds.real_rows(n)))
    return TextTable(name, *row) if row else None


def row_chunk_ids(ds: Dataset, n: int) -> list[str]:
    """The chunk id of each real row 1..n of size `n` (row id - 1 is the position)."""
    return [h[:16] for h in ds.hashes[N_QUERIES : N_QUERIES + ds.real_rows(n)]]


def build(
    db: Database,
    ds: Dataset,
    n: int,
    *,
    on_phase: Callable[[str], None] | None = None,
    on_backend: Callable[[int], None] | None = None,
) -> tuple[TextTable, bool]:
    """Size `n`'s text table, and whether this call built it (loaded with COPY, indexed,
    analysed, recorded): it is built only when it is not there for this corpus already."""
    ensure_meta(db)
    name, index = table_name(n), index_name(n)
    found = text_status(db, ds, n)
    if found is not None:
        return found, False
    real = ds.real_rows(n)
    positions = ds.order[N_QUERIES : N_QUERIES + real]
    ids = row_chunk_ids(ds, n)
    texts = ds.corpus.texts(int(p) for p in positions)  # read before the transaction
    settings = index_settings()
    with db.transaction(settings) as conn:
        if on_backend:
            on_backend(conn.info.backend_pid)
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (name,))
        meanwhile = text_status(db, ds, n)  # built by another process while we waited
        if meanwhile is not None:
            return meanwhile, False
        if on_phase:
            on_phase("loading")
        t0 = time.perf_counter()
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(name)))
        conn.execute(create_statement(name).text)
        copy = sql.SQL("COPY {} (id, chunk_id, body) FROM STDIN").format(sql.Identifier(name))
        with conn.cursor().copy(copy) as cp:
            for row_id, (chunk, body) in enumerate(zip(ids, texts, strict=True), 1):
                cp.write_row((row_id, chunk, body))
        load_seconds = time.perf_counter() - t0
        if on_phase:
            on_phase("indexing")
        t0 = time.perf_counter()
        conn.execute(index_statement(name, index).text)
        index_seconds = time.perf_counter() - t0
        conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(name)))
        conn.execute(
            "INSERT INTO recall_text_tables (name, n, corpus, rows, load_seconds, index_name,"
            " index_seconds, maintenance_work_mem) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (name) DO UPDATE SET n = EXCLUDED.n, corpus = EXCLUDED.corpus,"
            " rows = EXCLUDED.rows, loaded_at = now(), load_seconds = EXCLUDED.load_seconds,"
            " index_name = EXCLUDED.index_name, index_seconds = EXCLUDED.index_seconds,"
            " maintenance_work_mem = EXCLUDED.maintenance_work_mem",
            (name, n, ds.corpus_digest, real, load_seconds, index, index_seconds, GIN_MEMORY),
        )
    built = text_status(db, ds, n)
    assert built is not None
    return built, True


def drop(db: Database, n: int) -> None:
    """Drop size `n`'s text table and its record."""
    ensure_meta(db)
    name = table_name(n)
    with db.transaction() as conn:
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (name,))
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(name)))
        conn.execute("DELETE FROM recall_text_tables WHERE name = %s", (name,))
