"""Your own table: the vector columns on the connected server, and whether recall can be
measured on one of them. Everything here only reads (in read-only transactions)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lib.core.database import Database
from lib.core.operators import operator_of
from lib.harness.recall import HarnessError, Target


class ColumnProblem(HarnessError):
    """Recall cannot be measured on this column; the message says why and what to do."""


@dataclass(frozen=True)
class ColumnIndex:
    name: str
    kind: str  # hnsw or ivfflat
    opclass: str
    valid: bool
    partial: bool

    @property
    def operator(self) -> str | None:
        return operator_of(self.opclass)


@dataclass(frozen=True)
class VectorColumn:
    schema: str
    table: str
    column: str
    type: str  # e.g. vector(384), or vector when no dimension is declared
    dimension: int | None
    key: str  # a single-column primary key or unique column, else "ctid"
    indexes: tuple[ColumnIndex, ...] = ()

    @property
    def label(self) -> str:
        return f"{self.schema}.{self.table}.{self.column} ({self.type})"

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.table}"


COLUMNS_SQL = """SELECT n.nspname, c.relname, a.attname, format_type(a.atttypid, a.atttypmod),
       NULLIF(a.atttypmod, -1),
       (SELECT ka.attname FROM pg_index k
          JOIN pg_attribute ka ON ka.attrelid = k.indrelid AND ka.attnum = k.indkey[0]
         WHERE k.indrelid = c.oid AND k.indisunique AND k.indnkeyatts = 1
           AND k.indexprs IS NULL AND k.indpred IS NULL
         ORDER BY k.indisprimary DESC LIMIT 1)
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_type t ON t.oid = a.atttypid
WHERE t.typname = 'vector' AND a.attnum > 0 AND NOT a.attisdropped
  AND c.relkind IN ('r', 'p', 'm')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND has_table_privilege(c.oid, 'SELECT')
ORDER BY n.nspname, c.relname, a.attname"""

INDEXES_SQL = """SELECT i.relname, am.amname, op.opcname, x.indisvalid, x.indpred IS NOT NULL
FROM pg_index x
JOIN pg_class i ON i.oid = x.indexrelid
JOIN pg_am am ON am.oid = i.relam
JOIN pg_opclass op ON op.oid = x.indclass[0]
JOIN pg_class c ON c.oid = x.indrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = x.indkey[0]
WHERE n.nspname = %s AND c.relname = %s AND a.attname = %s
  AND am.amname IN ('hnsw', 'ivfflat') AND x.indnkeyatts = 1 AND x.indexprs IS NULL
ORDER BY x.indisvalid DESC, i.oid"""

READ_ONLY = {"transaction_read_only": "on"}


def vector_columns(db: Database) -> list[VectorColumn]:
    """Every column of type `vector` this user can read, with its plain vector indexes."""
    out = []
    for schema, table, column, typ, typmod, key in db.fetchall(COLUMNS_SQL, settings=READ_ONLY):
        indexes = tuple(
            ColumnIndex(*r) for r in db.fetchall(INDEXES_SQL, (schema, table, column), READ_ONLY)
        )
        out.append(VectorColumn(schema, table, column, typ, typmod, key or "ctid", indexes))
    return out


def find_column(db: Database, table: str, column: str | None = None) -> VectorColumn:
    """The vector column `column` of `table` ("schema.table" or "table")."""
    schema, _, name = table.rpartition(".")
    found = [
        c
        for c in vector_columns(db)
        if c.table == name and (c.schema == schema if schema else True)
        and (column is None or c.column == column)
    ]  # fmt: skip
    if not found:
        what = f"vector column {column!r}" if column else "vector column"
        raise ColumnProblem(f"no readable {what} in table {table}")
    if len(found) > 1:
        names = ", ".join(c.label for c in found)
        raise ColumnProblem(f"{table} matches several vector columns ({names}); name one")
    return found[0]


@dataclass(frozen=True)
class ColumnFacts:
    column: VectorColumn
    rows: int  # rows with a vector
    nulls: int
    index: ColumnIndex
    target: Target
    warnings: list[str] = field(default_factory=list)


def check_column(db: Database, col: VectorColumn, *, timeout_ms: int = 30_000) -> ColumnFacts:
    """Count the column's vectors and check that recall can be measured; else ColumnProblem."""
    from psycopg import sql

    settings = {**READ_ONLY, "statement_timeout": f"{timeout_ms}ms"}
    ident = sql.Identifier(col.schema, col.table)  # qualified: no search_path redirects it
    c = sql.Identifier(col.column)
    dims = db.fetchall(
        sql.SQL(
            "SELECT vector_dims({c}), count(*) FROM {t} WHERE {c} IS NOT NULL"
            " GROUP BY 1 ORDER BY 2 DESC"
        ).format(c=c, t=ident),
        settings=settings,
    )
    nulls_row = db.fetchone(
        sql.SQL("SELECT count(*) FROM {t} WHERE {c} IS NULL").format(c=c, t=ident),
        settings=settings,
    )
    nulls = int(nulls_row[0]) if nulls_row else 0
    rows = sum(int(n) for _, n in dims)
    if rows == 0:
        raise ColumnProblem(
            f"{col.label} has no vectors"
            + (f" (all {nulls:,} rows are NULL)" if nulls else " (the table is empty)")
            + "; there is nothing to search."
        )
    if len(dims) > 1:
        shown = ", ".join(f"{d} dimensions in {n:,} rows" for d, n in dims[:5])
        raise ColumnProblem(
            f"{col.label} mixes vectors of {len(dims)} different sizes ({shown}). Distances "
            'exist only between vectors of one size (pgvector raises "different vector '
            'dimensions"), and an index needs a declared size such as vector(384). Keep one '
            "model's vectors per column, or measure a table holding only one size."
        )
    usable = [i for i in col.indexes if i.valid and i.operator and not i.partial]
    if not usable:
        invalid = [i.name for i in col.indexes if not i.valid]
        hint = f"CREATE INDEX ON {col.qualified} USING hnsw ({col.column} vector_cosine_ops);"
        if invalid:
            raise ColumnProblem(
                f"{col.label}'s index {', '.join(invalid)} is INVALID (a CREATE INDEX "
                f"CONCURRENTLY that failed); the planner never uses it. Drop it and build it "
                f"again, e.g. `{hint}`"
            )
        raise ColumnProblem(
            f"{col.label} has no HNSW or IVFFlat index, so every query on it is already an "
            f"exact scan: there is no approximation to measure. To add one (this page never "
            f"writes to your tables): `{hint}`"
        )
    index = usable[0]
    warnings = []
    if nulls:
        warnings.append(
            f"{nulls:,} of {rows + nulls:,} rows have a NULL vector. They are never an answer: "
            "the index does not store them and ORDER BY puts them last. Recall is measured "
            f"over the {rows:,} rows with a vector."
        )
    if col.key == "ctid":
        warnings.append(
            f"{col.qualified} has no single-column unique key; rows are told apart by their "
            "ctid (their place on disk), which is stable while nobody writes to the table."
        )
    if len(usable) > 1:
        warnings.append(
            f"{col.label} has {len(usable)} vector indexes; the planner picks one per query "
            "(the report names the one it used)."
        )
    if rows < 10:
        warnings.append(f"only {rows} rows have a vector; recall@10 counts what exists.")
    target = Target(col.schema, col.table, col.column, col.key, index.operator or "<=>")
    return ColumnFacts(col, rows, nulls, index, target, warnings)


def sample_queries(
    db: Database, col: VectorColumn, n: int, *, seed: int = 0, timeout_ms: int = 30_000
) -> np.ndarray:
    """`n` vectors sampled from the column itself (repeatably), as the query set."""
    from psycopg import sql

    settings = {**READ_ONLY, "statement_timeout": f"{timeout_ms}ms"}
    ident = sql.Identifier(col.schema, col.table)  # qualified: no search_path redirects it
    c = sql.Identifier(col.column)
    rows = db.fetchall(
        sql.SQL(
            "SELECT {c} FROM {t} WHERE {c} IS NOT NULL ORDER BY md5(ctid::text || %s) LIMIT %s"
        ).format(c=c, t=ident),
        (str(seed), n),
        settings=settings,
    )
    if not rows:
        raise ColumnProblem(f"{col.label} has no vectors to use as queries")
    return np.stack([r[0].to_numpy().astype(np.float32) for r in rows])
