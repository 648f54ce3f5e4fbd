"""BM25's statistics of a text table, built once in SQL from its tsvectors. They let BM25
rank inside PostgreSQL two ways (lib/harness/lexical.py), over a text table of
lib/dataset/text_tables.py.

For a text table `recall_text_n{N}` three things are built in one transaction (under an
advisory lock on the name, so two processes never build them twice):

- `recall_bm25_n{N}_terms` (lexeme, idx, df): the vocabulary, one row per lexeme of the
  tsvectors, read from `ts_stat`: `df` is how many rows hold the lexeme (ts_stat's `ndoc`),
  `idx` its dimension in the sparse vectors (1, 2, … in lexeme order);
- `recall_bm25_tables`: one row per text table with `docs` (its rows) and `avgdl` (their mean
  length, a row's length being the tokens its tsvector indexes, Σ over its lexemes of the
  number of positions), and the `k1` and `b` the stored weights were made with;
- `recall_bm25_n{N}` (id, length, weights): each row's length and its BM25 term weights as a
  pgvector `sparsevec` over the vocabulary, weight(t, d) = tf·(k1 + 1) / (tf + k1·(1 − b +
  b·length/avgdl)), tf the positions of t in the row's tsvector. The IDF is left to the
  query's side, so `weights <#> query` is minus the row's BM25 score.

The tables are rebuilt when the text table was (its `loaded_at` is recorded).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg import sql

from lib.core.database import Database
from lib.core.psql import Statement, ident
from lib.dataset.builds import build_settings

K1, B = 1.2, 0.75  # Lucene's and Elasticsearch's defaults

META_DDL = """CREATE TABLE IF NOT EXISTS recall_bm25_tables (
    name text PRIMARY KEY,
    text_table text NOT NULL,
    text_loaded_at timestamptz NOT NULL,
    docs integer NOT NULL,
    avgdl double precision NOT NULL,
    terms integer NOT NULL,
    k1 double precision NOT NULL,
    b double precision NOT NULL,
    built_at timestamptz NOT NULL DEFAULT now(),
    build_seconds double precision NOT NULL
)"""


def table_name(text_table: str) -> str:
    """`recall_text_n100000` -> `recall_bm25_n100000`."""
    return text_table.replace("recall_text_", "recall_bm25_", 1)


def terms_name(text_table: str) -> str:
    return f"{table_name(text_table)}_terms"


def ensure_meta(db: Database) -> None:
    db.ensure("recall_bm25_meta", META_DDL)


@dataclass(frozen=True)
class Bm25Table:
    """A text table's BM25 statistics as the server has them."""

    name: str  # the weights table
    terms_table: str
    text_table: str
    docs: int
    avgdl: float
    terms: int
    k1: float
    b: float
    build_seconds: float


def status(db: Database, text_table: str) -> Bm25Table | None:
    """The BM25 tables of `text_table` if they were built from it as it is now; else None."""
    ensure_meta(db)
    row = db.fetchone(
        "SELECT m.name, m.text_table, m.docs, m.avgdl, m.terms, m.k1, m.b, m.build_seconds"
        " FROM recall_bm25_tables m JOIN recall_text_tables t ON t.name = m.text_table"
        " AND t.loaded_at = m.text_loaded_at"
        " WHERE m.name = %s AND to_regclass(m.name) IS NOT NULL",
        (table_name(text_table),),
    )
    if row is None:
        return None
    name, text, docs, avgdl, terms, k1, b, seconds = row
    return Bm25Table(name, terms_name(text), text, docs, avgdl, terms, k1, b, seconds)


def terms_statements(text_table: str) -> list[Statement]:
    """The vocabulary with each lexeme's document frequency, from ts_stat."""
    terms = terms_name(text_table)
    source = sql.SQL("SELECT body_tsv FROM {}").format(ident(text_table)).as_string()
    return [
        Statement.of(
            sql.SQL(
                "CREATE TABLE {t} (\n"
                "    lexeme text PRIMARY KEY,\n"
                "    idx integer NOT NULL UNIQUE,  -- its dimension in the sparsevecs\n"
                "    df integer NOT NULL           -- how many rows hold it\n"
                ")"
            ).format(t=ident(terms))
        ),
        Statement.of(
            sql.SQL(
                "INSERT INTO {t} (lexeme, idx, df)\n"
                "SELECT word, row_number() OVER (ORDER BY word), ndoc\n"
                "FROM ts_stat({q})"
            ).format(t=ident(terms), q=sql.Literal(source))
        ),
    ]


def length_statement(text_table: str) -> Statement:
    """How many rows the text table has and their mean length (indexed tokens)."""
    return Statement.of(
        sql.SQL(
            "SELECT count(*), avg(length)\n"
            "FROM {t},\n"
            "     LATERAL (SELECT coalesce(sum(cardinality(positions)), 0) AS length\n"
            "              FROM unnest(body_tsv)) AS l"
        ).format(t=ident(text_table))
    )


def weights_statements(
    text_table: str, terms: int, avgdl: float, k1: float = K1, b: float = B
) -> list[Statement]:
    """The weights table: each row's length and BM25 term weights as a sparsevec."""
    name, vocab = table_name(text_table), terms_name(text_table)
    return [
        Statement.of(
            sql.SQL(
                "CREATE TABLE {t} (\n"
                "    id integer PRIMARY KEY,\n"
                "    length integer NOT NULL,\n"
                "    weights sparsevec({dims}) NOT NULL\n"
                ")"
            ).format(t=ident(name), dims=sql.Literal(terms))
        ),
        Statement.of(
            sql.SQL(
                "INSERT INTO {t} (id, length, weights)\n"
                "SELECT x.id, l.length,\n"
                "       format('{{%s}}/%s', string_agg(v.idx || ':' ||\n"
                "              w.tf * ($1 + 1) / (w.tf + $1 * (1 - $2 + $2 * l.length / $3)),\n"
                "              ',' ORDER BY v.idx), {dims})::sparsevec\n"
                "FROM {text} x,\n"
                "     LATERAL (SELECT sum(cardinality(positions)) AS length\n"
                "              FROM unnest(x.body_tsv)) AS l,\n"
                "     LATERAL (SELECT lexeme, cardinality(positions) AS tf\n"
                "              FROM unnest(x.body_tsv)) AS w\n"
                "JOIN {vocab} v USING (lexeme)\n"
                "GROUP BY x.id, l.length"
            ).format(
                t=ident(name), text=ident(text_table), vocab=ident(vocab), dims=sql.Literal(terms)
            ),
            float(k1),
            float(b),
            float(avgdl),
            names=("k1", "b", "avgdl"),
        ),
    ]


def build(
    db: Database, text_table: str, text_loaded_at: datetime, *, k1: float = K1, b: float = B
) -> tuple[Bm25Table, bool]:
    """The BM25 tables of `text_table`, and whether this call built them."""
    ensure_meta(db)
    found = status(db, text_table)
    if found is not None:
        return found, False
    name, vocab = table_name(text_table), terms_name(text_table)
    with db.transaction(build_settings()) as conn:
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (name,))
        if status(db, text_table) is not None:
            return status(db, text_table), False  # type: ignore[return-value]
        t0 = time.perf_counter()
        for old in (name, vocab):
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(old)))
        for s in terms_statements(text_table):
            conn.execute(s.text)
        terms = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(ident(vocab))).fetchone()
        docs, avgdl = conn.execute(length_statement(text_table).text).fetchone()
        for s in weights_statements(text_table, int(terms[0]), float(avgdl), k1, b):
            psycopg.RawCursor(conn).execute(s.text, s.params or None)
        conn.execute(sql.SQL("ANALYZE {}").format(ident(vocab)))
        conn.execute(sql.SQL("ANALYZE {}").format(ident(name)))
        conn.execute(
            "INSERT INTO recall_bm25_tables (name, text_table, text_loaded_at, docs, avgdl,"
            " terms, k1, b, build_seconds) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (name) DO UPDATE SET text_table = EXCLUDED.text_table,"
            " text_loaded_at = EXCLUDED.text_loaded_at, docs = EXCLUDED.docs,"
            " avgdl = EXCLUDED.avgdl, terms = EXCLUDED.terms, k1 = EXCLUDED.k1, b = EXCLUDED.b,"
            " built_at = now(), build_seconds = EXCLUDED.build_seconds",
            (name, text_table, text_loaded_at, int(docs), float(avgdl), int(terms[0]), k1, b,
             time.perf_counter() - t0),
        )  # fmt: skip
    built = status(db, text_table)
    assert built is not None
    return built, True


def drop(db: Database, text_table: str) -> None:
    """Drop `text_table`'s BM25 tables and their record."""
    ensure_meta(db)
    name = table_name(text_table)
    with db.transaction() as conn:
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (name,))
        for old in (name, terms_name(text_table)):
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(old)))
        conn.execute("DELETE FROM recall_bm25_tables WHERE name = %s", (name,))
