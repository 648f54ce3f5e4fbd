"""Ground truths kept in PostgreSQL: an exact scan's answers, computed once, read by everyone.

The recall harness's ground truth for the lab's query set on one table is stored in
`recall_truths`, keyed by the table, the moment that table was loaded, the query set and k,
so that every app process, `make prepare` and the command line share one computation, and a
restart keeps it. A truth is immutable once stored (a reloaded table has another
`loaded_at`), so each process also keeps the ones it has read.
"""

from __future__ import annotations

from psycopg.types.json import Jsonb

from lib.core.database import Database
from lib.core.kept import Kept
from lib.harness.recall import Answers

DDL = """CREATE TABLE IF NOT EXISTS recall_truths (
    table_name text NOT NULL,
    loaded_at timestamptz NOT NULL,
    queries text NOT NULL,
    k integer NOT NULL,
    ids jsonb NOT NULL,
    latencies_ms double precision[] NOT NULL,
    plan jsonb NOT NULL,
    settings jsonb NOT NULL,
    ran_at timestamptz NOT NULL,
    seconds double precision NOT NULL,
    PRIMARY KEY (table_name, loaded_at, queries, k)
)"""

_memo = Kept(64)


def ensure_table(db: Database) -> None:
    db.ensure("recall_truths", DDL)


def store(db: Database, table: str, loaded_at: object, queries: str, k: int, a: Answers) -> None:
    """Keep `a`, the exact answers for the query set `queries` on `table` as loaded then."""
    ensure_table(db)
    with db.transaction() as conn:
        conn.execute(
            "INSERT INTO recall_truths (table_name, loaded_at, queries, k, ids, latencies_ms,"
            " plan, settings, ran_at, seconds) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT DO NOTHING",
            (
                table, loaded_at, queries, k, Jsonb(a.ids), a.latencies_ms, Jsonb(a.plan),
                Jsonb(a.settings), a.ran_at, a.seconds,
            ),
        )  # fmt: skip


def load(db: Database, table: str, loaded_at: object, queries: str, k: int) -> Answers | None:
    """The stored exact answers, or None if nobody has computed them for this table yet."""
    key = (db.conninfo, table, str(loaded_at), queries, k)
    kept = _memo.get(key)
    if kept is not None:
        return kept
    ensure_table(db)
    row = db.fetchone(
        "SELECT ids, latencies_ms, plan, settings, ran_at, seconds FROM recall_truths"
        " WHERE table_name = %s AND loaded_at = %s AND queries = %s AND k = %s",
        (table, loaded_at, queries, k),
    )
    if row is None:
        return None
    ids, latencies, plan, settings, ran_at, seconds = row
    answers = Answers(
        ids, list(latencies), plan, settings, ran_at.isoformat(timespec="seconds"), seconds
    )
    _memo.put(key, answers)
    return answers


def of_table(db: Database, ds, status, k: int = 10) -> Answers | None:
    """The stored truth of the dataset `ds`'s query set on a recall table as `status` says
    it is loaded now (lib/recall_tables.table_status), or None (not loaded, or not computed yet)."""
    if not status.loaded:
        return None
    return load(db, status.table, status.loaded_at, ds.queries_fingerprint, k)


def forget(db: Database, table: str) -> None:
    """Drop every stored truth of `table` (after it is dropped or reloaded)."""
    ensure_table(db)
    db.fetchall("DELETE FROM recall_truths WHERE table_name = %s RETURNING 1", (table,))
