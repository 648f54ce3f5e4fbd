"""Re-embedding a table with another model, with zero downtime: a shadow column, a batched
resumable backfill, an index built concurrently, dual writes, a cutover and a rollback in one
transaction each, and a query shape that cannot mix two models.

Two models of the same dimension (all-MiniLM-L6-v2 and paraphrase-MiniLM-L3-v2: both 384)
embed into different spaces. A query embedded by one against vectors of the other raises no
error and returns poor rows. So readers never query the table's vector column directly: they
query a view, `<table>_search (key, text, embedding, model)`, whose `model` is a literal
naming the model that made the column behind it, and every k-NN statement filters
`WHERE model = $1` with the model that embedded the query. A mismatched query returns no row
(the planner folds the filter to a one-time `false`: no scan at all) and `knn` raises
`ModelMismatch`.

The steps, each recorded in `pgvector_lab.reembed_runs` (state, models, counts, timings):

1. `plan`: `ALTER TABLE … ADD COLUMN <shadow> vector(d)` (no rewrite, no default), the view on
   the current column if it is missing, a run row in state `planned`.
2. `backfill`: rows whose shadow column IS NULL, in key order, a batch per transaction (the
   UPDATE and the run's progress commit together); it resumes after the last key it wrote and
   ends with a sweep from the start, which catches rows written without the dual write.
   `UPDATE … WHERE shadow IS NULL AND text = the text embedded`: no row is written twice, and a
   row whose text changed meanwhile is picked up again.
3. `build_index`: `CREATE INDEX CONCURRENTLY` (HNSW, the operator class of the metric) on the
   shadow column, outside a transaction (an invalid leftover of an interrupted build is
   dropped concurrently first); a catch-up backfill; state `ready`.
4. `cutover`: one transaction: the run row locked, no row left without a vector, the index
   valid, `CREATE OR REPLACE VIEW` onto the shadow column and the new model's literal. A
   query sees the view before or after, never a mix.
5. `rollback`: one transaction, the view back on the old column (dual writes kept it whole).
6. `finish`: one transaction: after a cutover the old column is dropped and the shadow column
   takes its name; after a rollback the shadow column is dropped.

`insert_rows` is the dual write: while a run is active it embeds new rows with both models
and writes both columns. DDL runs under `lock_timeout`, so that it never queues readers behind
it for long.

Every statement is a `lib.core.psql.Statement` made by one function here (`sql_*`); what ran
is kept in `Reembed.ran` (statements, settings, whether in a transaction), so a page shows
exactly what ran and pasted into psql it runs the same. `Load` keeps k-NN queries running
against the view in a thread and records each one's latency and phase.
"""

from __future__ import annotations

import re
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import psycopg
from psycopg import sql

from lib.core import operators
from lib.core.database import Database, Setting
from lib.core.embeddings.base import EmbeddingModel, checked_vectors
from lib.core.lab_schema import LAB_SCHEMA
from lib.core.psql import Script, Statement, ident

RUNS_SCHEMA, RUNS_TABLE = LAB_SCHEMA, "reembed_runs"
ACTIVE = ("planned", "backfilling", "indexing", "ready", "cut_over", "rolled_back")
STATES = (*ACTIVE, "finished", "abandoned")
BATCH = 256
DDL_SETTINGS: dict[str, Setting] = {"lock_timeout": "10s"}
MAX_NAME = 63  # PostgreSQL's identifier length


class ReembedError(Exception):
    """The migration cannot take this step now; the message says why and what to do."""


class ModelMismatch(ReembedError):
    """A query embedded by one model was sent against vectors of another."""


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


# ---- what a migration is --------------------------------------------------------------------


@dataclass(frozen=True)
class Migration:
    """One table re-embedded from one model to another, and the names it uses."""

    schema: str
    table: str
    key: str
    text: str
    from_column: str
    from_model: str
    to_model: str
    dimension: int  # of to_model
    key_type: str = "bigint"  # format_type of the key column, for the casts
    metric: str = "cosine"
    to_column: str = ""  # default: <from_column>_<to_model slug>
    view: str = ""  # default: <table>_search, in the table's schema
    run_id: int | None = None

    def __post_init__(self) -> None:
        if not self.to_column:
            name = f"{self.from_column}_{slug(self.to_model)}"[:MAX_NAME]
            object.__setattr__(self, "to_column", name)
        if not self.view:
            object.__setattr__(self, "view", f"{self.table}_search"[:MAX_NAME])

    @property
    def rel(self) -> sql.Composable:
        return ident(self.schema, self.table)

    @property
    def view_rel(self) -> sql.Composable:
        return ident(self.schema, self.view)

    @property
    def index_name(self) -> str:
        return f"{self.table}_{self.to_column}_hnsw"[:MAX_NAME]

    @property
    def operator(self) -> str:
        return operators.BY_KEY[self.metric].operator

    @property
    def opclass(self) -> str:
        return operators.BY_KEY[self.metric].opclass

    @property
    def label(self) -> str:
        return f"{self.schema}.{self.table}"


def _runs() -> sql.Composable:
    return ident(RUNS_SCHEMA, RUNS_TABLE)


# ---- the statements, one function each ------------------------------------------------------


def sql_runs_table() -> Statement:
    return Statement.of(
        sql.SQL("""
CREATE TABLE IF NOT EXISTS {runs} (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    schema_name text NOT NULL, table_name text NOT NULL, key_column text NOT NULL,
    text_column text NOT NULL, from_column text NOT NULL, from_model text NOT NULL,
    to_column text NOT NULL, to_model text NOT NULL, dimension int NOT NULL,
    metric text NOT NULL, view_name text NOT NULL,
    state text NOT NULL CHECK (state IN ({states})),
    rows_total bigint, rows_done bigint NOT NULL DEFAULT 0, batches int NOT NULL DEFAULT 0,
    last_key text, embed_seconds float8 NOT NULL DEFAULT 0,
    write_seconds float8 NOT NULL DEFAULT 0, index_seconds float8,
    created_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now(),
    cut_over_at timestamptz, rolled_back_at timestamptz, finished_at timestamptz
);
CREATE UNIQUE INDEX IF NOT EXISTS reembed_runs_one_active
    ON {runs} (schema_name, table_name) WHERE state NOT IN ('finished', 'abandoned')""").format(
            runs=_runs(), states=sql.SQL(", ").join(sql.Literal(s) for s in STATES)
        ),
        comment="the migrations' state: one active run per table",
    )


def sql_column_type(schema: str, table: str) -> Statement:
    return Statement.of(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a\n"
        "WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped",
        _quoted(schema, table),
        names=("table",),
    )


def sql_column_opclass(schema: str, table: str, column: str) -> Statement:
    """The operator class of a valid index whose only key is the column $2 of table $1."""
    return Statement.of(
        "SELECT oc.opcname FROM pg_index i\n"
        "JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am am ON am.oid = c.relam\n"
        "JOIN pg_opclass oc ON oc.oid = i.indclass[0]\n"
        "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]\n"
        "WHERE i.indrelid = to_regclass($1) AND a.attname = $2 AND i.indnatts = 1\n"
        "AND i.indisvalid AND am.amname IN ('hnsw', 'ivfflat') ORDER BY am.amname LIMIT 1",
        _quoted(schema, table),
        column,
        names=("table", "column"),
    )


def sql_active_run(schema: str, table: str) -> Statement:
    return Statement.of(
        sql.SQL(
            "SELECT id, key_column, text_column, from_column, from_model, to_column, to_model,"
            " dimension, metric, view_name, state\nFROM {runs}\n"
            "WHERE schema_name = $1 AND table_name = $2 AND state NOT IN ('finished', 'abandoned')"
        ).format(runs=_runs()),
        schema,
        table,
        names=("schema", "table"),
    )


def sql_last_finished(schema: str, table: str) -> Statement:
    """The model of each column the table's last finished run left."""
    return Statement.of(
        sql.SQL(
            "SELECT from_column, to_model, state FROM {runs}\n"
            "WHERE schema_name = $1 AND table_name = $2 AND state IN ('finished', 'abandoned')\n"
            "ORDER BY finished_at DESC LIMIT 1"
        ).format(runs=_runs()),
        schema,
        table,
        names=("schema", "table"),
    )


def sql_add_column(m: Migration) -> Statement:
    return Statement.of(
        sql.SQL("ALTER TABLE {t} ADD COLUMN IF NOT EXISTS {c} vector({d})").format(
            t=m.rel, c=ident(m.to_column), d=sql.Literal(m.dimension)
        ),
        comment=f"the shadow column for {m.to_model}: no default, so no table rewrite",
    )


def sql_view(m: Migration, column: str, model: str) -> Statement:
    """The view readers query: `model` names the model that embedded `column`."""
    return Statement.of(
        sql.SQL(
            "CREATE OR REPLACE VIEW {v} AS\n"
            "SELECT {k} AS key, {x} AS text, {c}::vector AS embedding, {model}::text AS model\n"
            "FROM {t}"
        ).format(
            v=m.view_rel,
            k=ident(m.key),
            x=ident(m.text),
            c=ident(column),
            model=sql.Literal(model),
            t=m.rel,
        ),  # fmt: skip
        comment=f"readers query {m.view}: its vectors are {model}'s",
    )


def sql_view_model(m: Migration) -> Statement:
    return Statement.of(sql.SQL("SELECT model FROM {v} LIMIT 1").format(v=m.view_rel))


def sql_count_rows(m: Migration) -> Statement:
    return Statement.of(
        sql.SQL("SELECT count(*), count(*) FILTER (WHERE {x} IS NULL) FROM {t}").format(
            x=ident(m.text), t=m.rel
        )
    )


def sql_insert_run(m: Migration, rows_total: int) -> Statement:
    return Statement.of(
        sql.SQL(
            "INSERT INTO {runs} (schema_name, table_name, key_column, text_column,\n"
            "    from_column, from_model, to_column, to_model, dimension, metric, view_name,\n"
            "    state, rows_total)\n"
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'planned', $12) RETURNING id"
        ).format(runs=_runs()),
        m.schema, m.table, m.key, m.text, m.from_column, m.from_model, m.to_column, m.to_model,
        m.dimension, m.metric, m.view, rows_total,
        names=("schema", "table", "key", "text", "from column", "from model", "to column",
               "to model", "dimension", "metric", "view", "rows"),
    )  # fmt: skip


def sql_run(run_id: int, *, lock: str = "") -> Statement:
    return Statement.of(
        sql.SQL(
            "SELECT state, rows_total, rows_done, batches, last_key, embed_seconds,"
            " write_seconds, index_seconds\nFROM {runs} WHERE id = $1{lock}"
        ).format(runs=_runs(), lock=sql.SQL(f" FOR {lock}" if lock else "")),
        run_id,
        names=("run",),
    )


def sql_set_state(run_id: int, state: str, stamp: str | None = None) -> Statement:
    assert state in STATES and stamp in (None, "cut_over_at", "rolled_back_at", "finished_at")
    extra = sql.SQL(", {} = now()").format(ident(stamp)) if stamp else sql.SQL("")
    return Statement.of(
        sql.SQL("UPDATE {runs} SET state = $2, updated_at = now(){extra} WHERE id = $1").format(
            runs=_runs(), extra=extra
        ),
        run_id,
        state,
        names=("run", "state"),
    )


def sql_next_batch(m: Migration, after: str | None, batch: int) -> Statement:
    """The next rows without a shadow vector, in key order, after the key `after` (text)."""
    k = ident(m.key)
    where = sql.SQL("{c} IS NULL AND {x} IS NOT NULL").format(c=ident(m.to_column), x=ident(m.text))
    if after is None:
        return Statement.of(
            sql.SQL("SELECT {k}, {x} FROM {t}\nWHERE {w}\nORDER BY {k} LIMIT $1").format(
                k=k, x=ident(m.text), t=m.rel, w=where
            ),
            batch,
            names=("batch size",),
        )
    return Statement.of(
        sql.SQL(
            "SELECT {k}, {x} FROM {t}\nWHERE {w} AND {k} > $1::{kt}\nORDER BY {k} LIMIT $2"
        ).format(
            k=k, x=ident(m.text), t=m.rel, w=where, kt=sql.SQL(m.key_type)
        ),
        after,
        batch,
        names=("after key", "batch size"),
    )  # fmt: skip


def sql_write_batch(m: Migration, keys: list, texts: list[str], vectors: np.ndarray) -> Statement:
    """Write a batch's vectors, only where none is yet and the text is the one embedded."""
    return Statement.of(
        sql.SQL(
            "UPDATE {t} AS t SET {c} = v.embedding\n"
            "FROM unnest($1::{kt}[], $2::text[], $3::vector[]) AS v(key, text, embedding)\n"
            "WHERE t.{k} = v.key AND t.{c} IS NULL AND t.{x} = v.text"
        ).format(
            t=m.rel,
            c=ident(m.to_column),
            kt=sql.SQL(m.key_type),
            k=ident(m.key),
            x=ident(m.text),
        ),  # fmt: skip
        keys,
        texts,
        list(vectors),
        names=("keys", "texts", f"{m.to_model} vectors"),
    )


def sql_record_batch(
    run_id: int, rows: int, last_key: str, embed_s: float, write_s: float
) -> Statement:
    return Statement.of(
        sql.SQL(
            "UPDATE {runs} SET rows_done = rows_done + $2, batches = batches + 1, last_key = $3,\n"
            "    embed_seconds = embed_seconds + $4, write_seconds = write_seconds + $5,\n"
            "    state = CASE WHEN state = 'planned' THEN 'backfilling' ELSE state END,\n"
            "    updated_at = now()\nWHERE id = $1"
        ).format(runs=_runs()),
        run_id, rows, last_key, embed_s, write_s,
        names=("run", "rows written", "last key", "embedding seconds", "writing seconds"),
    )  # fmt: skip


def sql_sample(m: Migration, n: int) -> Statement:
    return Statement.of(
        sql.SQL("SELECT {k}, {x} FROM {t} WHERE {x} IS NOT NULL ORDER BY {k} LIMIT $1").format(
            k=ident(m.key), x=ident(m.text), t=m.rel
        ),
        n,
        names=("sample size",),
    )


def sql_remaining(m: Migration) -> Statement:
    return Statement.of(
        sql.SQL("SELECT count(*) FROM {t} WHERE {c} IS NULL AND {x} IS NOT NULL").format(
            t=m.rel, c=ident(m.to_column), x=ident(m.text)
        ),
        comment="rows the new model has not embedded yet",
    )


def sql_index_state(m: Migration) -> Statement:
    return Statement.of(
        "SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass($1)",
        f"{m.schema}.{m.index_name}",
        names=("index",),
    )


def sql_drop_index(m: Migration) -> Statement:
    return Statement.of(
        sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {i}").format(i=ident(m.schema, m.index_name)),
        comment="an invalid index left by an interrupted build",
    )


def sql_create_index(m: Migration) -> Statement:
    return Statement.of(
        sql.SQL("CREATE INDEX CONCURRENTLY IF NOT EXISTS {i} ON {t} USING hnsw ({c} {op})").format(
            i=ident(m.index_name), t=m.rel, c=ident(m.to_column), op=sql.SQL(m.opclass)
        ),
        comment="outside a transaction: writes go on while it builds",
    )


def sql_record_index(run_id: int, seconds: float) -> Statement:
    return Statement.of(
        sql.SQL("UPDATE {runs} SET index_seconds = $2, updated_at = now() WHERE id = $1").format(
            runs=_runs()
        ),
        run_id,
        seconds,
        names=("run", "index seconds"),
    )


def sql_knn(m: Migration, model: str, vector: np.ndarray, k: int) -> Statement:
    """k nearest rows of the view, only if its vectors are `model`'s (the guard)."""
    op = sql.SQL(m.operator)
    return Statement.of(
        sql.SQL(
            "SELECT key, text, embedding {op} $2 AS distance, model\nFROM {v}\n"
            "WHERE model = $1\nORDER BY embedding {op} $2\nLIMIT $3"
        ).format(op=op, v=m.view_rel),
        model,
        vector,
        k,
        names=("the query's model", "query vector", "k"),
    )


def sql_insert_rows(m: Migration, columns: Sequence[str], keys, texts, vectors) -> Statement:
    cols = [ident(m.key), ident(m.text), *(ident(c) for c in columns)]
    arrays = [sql.SQL("$1::{}[]").format(sql.SQL(m.key_type)), sql.SQL("$2::text[]")]
    arrays += [sql.SQL(f"${i + 3}::vector[]") for i in range(len(columns))]
    return Statement.of(
        sql.SQL("INSERT INTO {t} ({cols})\nSELECT * FROM unnest({arrays})").format(
            t=m.rel, cols=sql.SQL(", ").join(cols), arrays=sql.SQL(", ").join(arrays)
        ),
        keys,
        texts,
        *[list(v) for v in vectors],
        names=("keys", "texts", *(f"{c} vectors" for c in columns)),
        comment="the dual write: every live vector column, each by its own model",
    )


def sql_drop_column(m: Migration, column: str) -> Statement:
    return Statement.of(sql.SQL("ALTER TABLE {t} DROP COLUMN {c}").format(t=m.rel, c=ident(column)))


def sql_rename_shadow(m: Migration) -> Statement:
    return Statement.of(
        sql.SQL("ALTER TABLE {t} RENAME COLUMN {a} TO {b}").format(
            t=m.rel, a=ident(m.to_column), b=ident(m.from_column)
        )
    )


# ---- running them, keeping what ran ------------------------------------------------------------


@dataclass(frozen=True)
class Ran:
    """Statements that ran together: in one transaction under settings, or alone (autocommit)."""

    what: str
    statements: tuple[Statement, ...]
    settings: Mapping[str, Setting] = field(default_factory=dict)
    transaction: bool = True
    seconds: float = 0.0

    def text(self) -> str:
        if self.transaction:
            return Script(self.statements, self.settings).text()
        return "\n\n".join(s.psql() for s in self.statements)


def _execute(conn: psycopg.Connection, s: Statement) -> psycopg.RawCursor:
    cur = psycopg.RawCursor(conn)
    cur.execute(s.text, s.params or None, prepare=False)
    return cur


class _Tx:
    """One transaction whose statements are kept for `Reembed.ran`."""

    def __init__(self, conn: psycopg.Connection):
        self.conn = conn
        self.statements: list[Statement] = []

    def run(self, s: Statement) -> psycopg.RawCursor:
        self.statements.append(s)
        return _execute(self.conn, s)

    def rows(self, s: Statement) -> list[tuple]:
        return self.run(s).fetchall()


_MODELS: dict[str, EmbeddingModel] = {}
_MODELS_LOCK = threading.Lock()


def model(name: str) -> EmbeddingModel:
    """The registry's model `name`, loaded once per process."""
    with _MODELS_LOCK:
        if name not in _MODELS:
            from lib.core.embeddings.registry import load_model

            _MODELS[name] = load_model(name)
        return _MODELS[name]


def embed(name: str, texts: Sequence[str], input_type: str = "document") -> np.ndarray:
    m = model(name)
    vectors = m.embed(list(texts), input_type=input_type)  # type: ignore[arg-type]
    return checked_vectors(vectors, m.info.dimension, len(texts))


@dataclass
class Progress:
    state: str
    rows_total: int
    rows_done: int
    batches: int
    last_key: str | None
    embed_seconds: float
    write_seconds: float
    index_seconds: float | None


@dataclass
class Backfill:
    """What one call of `backfill` did, measured."""

    rows: int = 0  # rows written
    embedded: int = 0  # texts embedded (more than rows if a text changed meanwhile)
    batches: int = 0
    seconds: float = 0.0
    embed_seconds: float = 0.0
    write_seconds: float = 0.0
    stopped: bool = False  # stopped before the end, by `stop` or `max_batches`

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0

    @property
    def embed_rate(self) -> float:
        return self.embedded / self.embed_seconds if self.embed_seconds else 0.0


class Reembed:
    """One migration on one database: each step, and what ran (`ran`)."""

    def __init__(self, db: Database, m: Migration):
        self.db = db
        self.m = m
        self.ran: deque[Ran] = deque(maxlen=2000)

    # -- plumbing --

    def _tx(self, what: str, settings: Mapping[str, Setting] | None = None):
        outer = self

        class _Ctx:
            def __enter__(self) -> _Tx:
                self.t0 = time.perf_counter()
                self.cm = outer.db.transaction(settings)
                self.tx = _Tx(self.cm.__enter__())
                return self.tx

            def __exit__(self, *exc) -> bool | None:
                try:
                    return self.cm.__exit__(*exc)
                finally:
                    outer.ran.append(
                        Ran(what, tuple(self.tx.statements), dict(settings or {}), True,
                            time.perf_counter() - self.t0)
                    )  # fmt: skip

        return _Ctx()

    def _autocommit(self, what: str, s: Statement) -> None:
        t0 = time.perf_counter()
        with self.db.connection() as conn:
            _execute(conn, s)
        self.ran.append(Ran(what, (s,), {}, False, time.perf_counter() - t0))

    @property
    def run_id(self) -> int:
        assert self.m.run_id is not None
        return self.m.run_id

    # -- steps --

    @classmethod
    def plan(
        cls,
        db: Database,
        table: str,
        *,
        key: str,
        text: str,
        from_column: str,
        from_model: str,
        to_model: str,
        to_column: str = "",
        view: str = "",
    ) -> Reembed:
        """The table's active migration if it has one (resumed), else a new one: the shadow
        column, the view if missing, and the run row, each checked first."""
        m = describe(db, table, key=key, text=text, from_column=from_column,
                     from_model=from_model, to_model=to_model, to_column=to_column,
                     view=view)  # fmt: skip
        r = cls(db, m)
        with r._tx("the migrations' table", DDL_SETTINGS) as tx:
            tx.run(Statement.of("SELECT pg_advisory_xact_lock(hashtext($1))", "reembed_runs"))
            tx.run(sql_runs_table())
        with r._tx("plan", DDL_SETTINGS) as tx:
            active = tx.rows(sql_active_run(m.schema, m.table))
            if active:
                (run_id, k, x, fc, fm, tc, tm, d, metric, v, state) = active[0]
                if (k, x, fc, fm, tc, tm) != (m.key, m.text, m.from_column, m.from_model,
                                              m.to_column, m.to_model):  # fmt: skip
                    raise ReembedError(
                        f"{m.label} has a migration in progress ({fm} in {fc} -> {tm} in {tc}, "
                        f"{state}): finish it (--finish after --cutover or --rollback) first"
                    )
                r.m = _with(m, run_id=run_id, metric=metric, view=v)
                return r
            _check_history(tx, m)
            tx.run(sql_add_column(m))
            if tx.rows(_view_exists(m))[0][0] is None:
                tx.run(sql_view(m, m.from_column, m.from_model))
            else:
                current = tx.rows(sql_view_model(m))
                if current and current[0][0] != m.from_model:
                    raise ReembedError(
                        f"{m.schema}.{m.view} serves {current[0][0]}'s vectors, not "
                        f"{m.from_model}'s: --from-model names the model of {m.from_column}"
                    )
            total, _ = tx.rows(sql_count_rows(m))[0]
            run_id = tx.rows(sql_insert_run(m, int(total)))[0][0]
        r.m = _with(m, run_id=run_id)
        return r

    @classmethod
    def active(cls, db: Database, table: str) -> Reembed | None:
        """The table's migration in progress, if any (read only)."""
        schema, name = split_table(table)
        if not read(db, _exists(RUNS_SCHEMA, RUNS_TABLE))[0][0]:
            return None
        rows = read(db, sql_active_run(schema, name))
        if not rows:
            return None
        (run_id, k, x, fc, fm, tc, tm, d, metric, v, _state) = rows[0]
        kt = dict(read(db, sql_column_type(schema, name))).get(k, "bigint")
        m = Migration(schema, name, k, x, fc, fm, tm, d, kt, metric, tc, v, run_id)
        return cls(db, m)

    def progress(self) -> Progress:
        with self._tx("progress") as tx:
            row = tx.rows(sql_run(self.run_id))[0]
        return Progress(row[0], int(row[1] or 0), int(row[2]), int(row[3]), row[4],
                        float(row[5]), float(row[6]), row[7])  # fmt: skip

    def remaining(self) -> int:
        with self._tx("remaining") as tx:
            return int(tx.rows(sql_remaining(self.m))[0][0])

    def backfill(
        self,
        *,
        batch: int = BATCH,
        stop: Callable[[], bool] | None = None,
        max_batches: int | None = None,
        on_batch: Callable[[Backfill], None] | None = None,
    ) -> Backfill:
        """Embed and write every row without a shadow vector, a batch per transaction,
        continuing after the last key written; stops early when `stop()` says so or after
        `max_batches` (rerunning continues)."""
        state = self.progress()
        if state.state not in ACTIVE:
            raise ReembedError(f"the migration is {state.state}")
        out = Backfill()
        t0 = time.perf_counter()
        after = state.last_key
        while True:
            with self._tx("next batch") as tx:
                rows = tx.rows(sql_next_batch(self.m, after, batch))
            if not rows:
                if after is None:
                    break
                after = None  # a sweep from the start: rows written without the dual write
                continue
            keys = [r[0] for r in rows]
            texts = [r[1] for r in rows]
            e0 = time.perf_counter()
            vectors = embed(self.m.to_model, texts)
            e1 = time.perf_counter()
            last = str(keys[-1])
            with self._tx("write batch") as tx:
                written = tx.run(sql_write_batch(self.m, keys, texts, vectors)).rowcount
                w = time.perf_counter() - e1
                tx.run(sql_record_batch(self.run_id, written, last, e1 - e0, w))
            after = last
            out.rows += written
            out.embedded += len(texts)
            out.batches += 1
            out.embed_seconds += e1 - e0
            out.write_seconds += time.perf_counter() - e1
            out.seconds = time.perf_counter() - t0
            if on_batch is not None:
                on_batch(out)
            if (stop is not None and stop()) or (max_batches and out.batches >= max_batches):
                out.stopped = True
                break
        out.seconds = time.perf_counter() - t0
        return out

    def build_index(self, *, batch: int = BATCH) -> float:
        """HNSW on the shadow column, built concurrently; then a catch-up backfill and, with
        every row embedded, state `ready`. Returns the build's seconds."""
        state = self.progress().state
        if state not in ("planned", "backfilling", "indexing", "ready"):
            raise ReembedError(f"the migration is {state}: its index is built already")
        with self._tx("indexing") as tx:
            tx.run(sql_set_state(self.run_id, "indexing"))
            valid = tx.rows(sql_index_state(self.m))
        if valid and not valid[0][0]:
            self._autocommit("drop an invalid index", sql_drop_index(self.m))
        t0 = time.perf_counter()
        self._autocommit("build the index", sql_create_index(self.m))
        seconds = time.perf_counter() - t0
        with self._tx("index built") as tx:
            tx.run(sql_record_index(self.run_id, seconds))
        self.backfill(batch=batch)
        with self._tx("ready") as tx:
            if int(tx.rows(sql_remaining(self.m))[0][0]) == 0:
                tx.run(sql_set_state(self.run_id, "ready"))
        return seconds

    def run(self, *, batch: int = BATCH, stop: Callable[[], bool] | None = None,
            on_batch: Callable[[Backfill], None] | None = None) -> Backfill:  # fmt: skip
        """Backfill, then the index, up to `ready` (or until `stop`)."""
        done = self.backfill(batch=batch, stop=stop, on_batch=on_batch)
        if not done.stopped:
            self.build_index(batch=batch)
        return done

    def cutover(self) -> None:
        """In one transaction: readers' view onto the new model's column."""
        m = self.m
        with self._tx("cutover", DDL_SETTINGS) as tx:
            state = tx.rows(sql_run(self.run_id, lock="UPDATE"))[0][0]
            if state not in ("ready", "rolled_back"):
                raise ReembedError(f"the migration is {state}: cut over when it is ready")
            left = int(tx.rows(sql_remaining(m))[0][0])
            if left:
                raise ReembedError(
                    f"{left:,} rows have no {m.to_model} vector (written without the dual "
                    "write): backfill again, then cut over"
                )
            valid = tx.rows(sql_index_state(m))
            if not valid or not valid[0][0]:
                raise ReembedError(f"the index {m.index_name} is missing or invalid: build it")
            tx.run(sql_view(m, m.to_column, m.to_model))
            tx.run(sql_set_state(self.run_id, "cut_over", "cut_over_at"))

    def rollback(self) -> None:
        """In one transaction: readers' view back onto the old column."""
        m = self.m
        with self._tx("rollback", DDL_SETTINGS) as tx:
            state = tx.rows(sql_run(self.run_id, lock="UPDATE"))[0][0]
            if state != "cut_over":
                raise ReembedError(f"the migration is {state}: only a cutover rolls back")
            tx.run(sql_view(m, m.from_column, m.from_model))
            tx.run(sql_set_state(self.run_id, "rolled_back", "rolled_back_at"))

    def finish(self) -> str:
        """Drop the column readers no longer use; returns the run's last state."""
        m = self.m
        with self._tx("finish", DDL_SETTINGS) as tx:
            state = tx.rows(sql_run(self.run_id, lock="UPDATE"))[0][0]
            if state == "cut_over":
                tx.run(sql_drop_column(m, m.from_column))
                tx.run(sql_rename_shadow(m))
                tx.run(sql_set_state(self.run_id, "finished", "finished_at"))
                return "finished"
            if state == "rolled_back":
                tx.run(sql_drop_column(m, m.to_column))
                tx.run(sql_set_state(self.run_id, "abandoned", "finished_at"))
                return "abandoned"
            raise ReembedError(
                f"the migration is {state}: finish after a cutover (drops {m.from_column}) or "
                f"a rollback (drops {m.to_column})"
            )

    # -- the app's side --

    def insert_rows(self, rows: Sequence[tuple[Any, str]]) -> int:
        """The dual write: insert (key, text) rows with a vector in every live column."""
        m = self.m
        texts = [t for _, t in rows]
        keys = [k for k, _ in rows]
        by_model = {name: embed(name, texts) for name in (m.from_model, m.to_model)}
        with self._tx("dual write") as tx:
            state = tx.rows(sql_run(self.run_id, lock="SHARE"))[0][0]
            if state == "finished":
                live = [(m.from_column, m.to_model)]
            elif state == "abandoned":
                live = [(m.from_column, m.from_model)]
            else:
                live = [(m.from_column, m.from_model), (m.to_column, m.to_model)]
            s = sql_insert_rows(m, [c for c, _ in live], keys, texts,
                                [by_model[name] for _, name in live])  # fmt: skip
            return tx.run(s).rowcount

    def knn(self, model_name: str, vector: np.ndarray, k: int = 10) -> list[tuple]:
        """The guarded k-NN over the view: (key, text, distance, model) rows, or
        ModelMismatch when the view's vectors are another model's."""
        with self._tx("k-NN") as tx:
            rows = tx.rows(sql_knn(self.m, model_name, vector, k))
            if rows:
                return rows
            current = tx.rows(sql_view_model(self.m))
        if current and current[0][0] != model_name:
            raise ModelMismatch(
                f"{self.m.schema}.{self.m.view} holds {current[0][0]}'s vectors; this query "
                f"was embedded by {model_name}: embed it with {current[0][0]}"
            )
        return rows


def _with(m: Migration, **changes: Any) -> Migration:
    from dataclasses import replace

    return replace(m, **changes)


def _exists(schema: str, name: str) -> Statement:
    return Statement.of("SELECT to_regclass($1)::text", _quoted(schema, name), names=("relation",))


def _view_exists(m: Migration) -> Statement:
    return _exists(m.schema, m.view)


def _check_history(tx: _Tx, m: Migration) -> None:
    last = tx.rows(sql_last_finished(m.schema, m.table))
    if last:
        column, to_model, state = last[0]
        if state == "finished" and column == m.from_column and to_model != m.from_model:
            raise ReembedError(
                f"{m.label}.{m.from_column} holds {to_model}'s vectors since its last "
                f"migration, not {m.from_model}'s: --from-model {to_model}"
            )


def split_table(table: str) -> tuple[str, str]:
    parts = table.split(".")
    if len(parts) != 2 or not all(parts):
        raise ReembedError(f"name the table with its schema: schema.table, not {table!r}")
    return parts[0], parts[1]


def describe(
    db: Database,
    table: str,
    *,
    key: str,
    text: str,
    from_column: str,
    from_model: str,
    to_model: str,
    to_column: str = "",
    view: str = "",
) -> Migration:
    """The migration, checked against the catalog and the registry (changes nothing)."""
    from lib.core.embeddings.registry import model_choices

    schema, name = split_table(table)
    choices = {c.info.name: c for c in model_choices()}
    for which in (from_model, to_model):
        c = choices.get(which)
        if c is None or not c.available or "text" not in c.info.modalities:
            usable = ", ".join(n for n, c in choices.items() if c.available)
            raise ReembedError(f"{which!r} is not a text model usable here ({usable})")
    if from_model == to_model:
        raise ReembedError("--from-model and --to-model are the same model")
    q = f"{schema}.{name}"
    types = dict(read(db, sql_column_type(schema, name)))
    if not types:
        raise ReembedError(f"no table {q}")
    for col, what in ((key, "key"), (text, "text"), (from_column, "vector")):
        if col not in types:
            raise ReembedError(f"{q} has no column {col!r} (the {what} column)")
    want = f"vector({choices[from_model].info.dimension})"
    if types[from_column] != want:
        raise ReembedError(
            f"{q}.{from_column} is {types[from_column]}; {from_model}'s vectors are {want}"
        )
    opclass = read(db, sql_column_opclass(schema, name, from_column))
    metric = operators.BY_OPCLASS.get(opclass[0][0]) if opclass else None
    m = Migration(
        schema, name, key, text, from_column, from_model, to_model,
        choices[to_model].info.dimension, key_type=types[key],
        metric=metric.key if metric and metric.key in operators.BY_KEY else "cosine",
        to_column=to_column, view=view,
    )  # fmt: skip
    if m.to_column in types and types[m.to_column] != f"vector({m.dimension})":
        raise ReembedError(f"{q}.{m.to_column} exists and is {types[m.to_column]}")
    return m


def read(db: Database, s: Statement) -> list[tuple]:
    """Run one statement read-only (a transaction with transaction_read_only on)."""
    with db.transaction({"transaction_read_only": "on"}) as conn:
        return _execute(conn, s).fetchall()


def _quoted(schema: str, table: str) -> str:
    return sql.Identifier(schema, table).as_string()


# ---- a stream of queries during the migration ----------------------------------------------


@dataclass(frozen=True)
class QueryRecord:
    at: float  # seconds since the load started
    phase: str
    ms: float
    model: str
    rows: int
    error: str | None
    switched: bool = False  # the guard refused the first attempt: the view changed model


class Load:
    """k-NN queries against the view in a thread, one after another, each recorded with the
    phase the migration was in (set `phase` as it moves). A query the guard refuses (the view
    switched model) is sent again embedded by the view's model; its latency counts both."""

    def __init__(
        self,
        reembed: Reembed,
        queries: Mapping[str, np.ndarray],  # model name -> (n, d) query vectors
        model_name: str,
        *,
        k: int = 10,
        pause: float = 0.0,
    ):
        self.r = Reembed(reembed.db, reembed.m)  # its own record of what ran
        self.r.ran = deque(maxlen=50)
        self.queries = queries
        self.model = model_name
        self.k = k
        self.pause = pause
        self.phase = "idle"
        self.records: list[QueryRecord] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0 = 0.0

    def __enter__(self) -> Load:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        self._t0 = time.perf_counter()
        self._thread = threading.Thread(target=self._loop, name="reembed-load", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def wait_for(self, n: int, timeout: float = 60.0) -> None:
        """Until `n` queries were recorded in the current phase."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if sum(1 for q in list(self.records) if q.phase == self.phase) >= n:
                return
            time.sleep(0.01)
        raise TimeoutError(f"fewer than {n} queries in phase {self.phase}")

    def _loop(self) -> None:
        i = 0
        while not self._stop.is_set():
            phase = self.phase
            t0 = time.perf_counter()
            error, rows, switched = None, 0, False
            try:
                try:
                    rows = len(self.r.knn(self.model, self._vector(i), self.k))
                except ModelMismatch:
                    self.model = read(self.r.db, sql_view_model(self.r.m))[0][0]
                    switched = True
                    rows = len(self.r.knn(self.model, self._vector(i), self.k))
            except Exception as e:  # recorded: the count of errors is the measurement
                error = f"{type(e).__name__}: {e}"
            ms = (time.perf_counter() - t0) * 1000
            self.records.append(
                QueryRecord(t0 - self._t0, phase, ms, self.model, rows, error, switched)
            )
            i += 1
            if self.pause:
                self._stop.wait(self.pause)

    def _vector(self, i: int) -> np.ndarray:
        vs = self.queries[self.model]
        return vs[i % len(vs)]

    def summary(self) -> dict[str, Any]:
        """Per phase: queries, p50/p95/max ms, errors, fewest rows; and each phase's p95
        against the idle one."""
        out: dict[str, Any] = {"phases": {}}
        records = list(self.records)
        for phase in dict.fromkeys(q.phase for q in records):
            qs = [q for q in records if q.phase == phase]
            ms = np.array([q.ms for q in qs])
            out["phases"][phase] = {
                "queries": len(qs),
                "p50_ms": float(np.percentile(ms, 50)),
                "p95_ms": float(np.percentile(ms, 95)),
                "max_ms": float(ms.max()),
                "errors": sum(q.error is not None for q in qs),
                "min_rows": min(q.rows for q in qs),
                "switches": sum(q.switched for q in qs),
            }
        idle = out["phases"].get("idle", {}).get("p95_ms")
        for p in out["phases"].values():
            p["p95_vs_idle"] = p["p95_ms"] / idle if idle else None
        out["errors"] = sum(q.error is not None for q in records)
        out["queries"] = len(records)
        return out
