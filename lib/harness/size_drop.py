"""Giving a size's disk back: the instructor's (on a laptop, the learner's) "Drop this size".

A size is what was built for `n` rows of one model's vectors: the recall table with its index
and ground truth, the Index tuning copies made from it, and, when no other model has a table
of that size, the passages' text table with its GIN index and its BM25 tables. Everything is
dropped in one transaction, with the records that describe it, so that the pages see the size
as never built (and offer to build it again). Stored measurements (sweeps, evals and hybrid
reports) stay: they are history, each kept with the table and the time it ran on.

Refused (`SizeBusy`), without waiting, while any job of the queue works on that size, or a
build holds one of its tables.
"""

from __future__ import annotations

from psycopg import sql

from lib.core import jobs
from lib.core.database import Database
from lib.dataset import bm25_tables, recall_tables, text_tables


class SizeBusy(RuntimeError):
    """Something is being built or measured on the size right now; the message says what."""

    shown_as_is = True


def _exists(conn, name: str) -> bool:
    return conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()[0]


def _lock(conn, name: str) -> None:
    got = conn.execute("SELECT pg_try_advisory_xact_lock(hashtext(%s))", (name,)).fetchone()[0]
    if not got:
        raise SizeBusy(f"{name} is being built right now: drop the size once that is done.")


def drop_size(db: Database, n: int, dimension: int) -> list[str]:
    """Drop size `n` of the `dimension`-dimensional recall tables for everyone; returns the
    tables dropped (an empty list when nothing of it was there)."""
    recall = recall_tables.table_name(n, dimension)
    text = text_tables.table_name(n)
    dropped: list[str] = []
    with db.transaction() as conn:
        if _exists(conn, "lab_jobs"):
            busy = conn.execute(
                f"SELECT kind FROM lab_jobs WHERE {jobs.LIVE} AND key ->> 'n' = %s LIMIT 1",
                (str(n),),
            ).fetchone()
            if busy:
                raise SizeBusy(
                    f"A {busy[0]} job is working on {n:,} rows right now: drop the size once "
                    "it is done (or cancel it first)."
                )
        _lock(conn, recall)
        copies: list[str] = []
        if _exists(conn, "tuning_copies"):
            copies = [
                r[0]
                for r in conn.execute(
                    "SELECT table_name FROM tuning_copies WHERE source = %s ORDER BY 1", (recall,)
                )
            ]
        for copy in copies:
            _lock(conn, copy)
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(copy)))
            conn.execute("DELETE FROM tuning_indexes WHERE table_name = %s", (copy,))
            conn.execute("DELETE FROM tuning_copies WHERE table_name = %s", (copy,))
            dropped.append(copy)
        if _exists(conn, recall):
            conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(recall)))
            dropped.append(recall)
        if _exists(conn, "recall_tables"):
            conn.execute("DELETE FROM recall_index_builds WHERE table_name = %s", (recall,))
            conn.execute("DELETE FROM recall_tables WHERE name = %s", (recall,))
        if _exists(conn, "recall_truths"):
            conn.execute("DELETE FROM recall_truths WHERE table_name = %s", (recall,))
        others = conn.execute(
            "SELECT count(*) FROM recall_tables WHERE n = %s", (n,)
        ).fetchone()[0] if _exists(conn, "recall_tables") else 0  # fmt: skip
        if others == 0:  # the text side is shared by every model's table of this size
            dropped += _drop_text(conn, text)
    return dropped


def _drop_text(conn, text: str) -> list[str]:
    dropped = []
    if _exists(conn, "recall_bm25_tables"):
        for (bm25,) in conn.execute(
            "SELECT name FROM recall_bm25_tables WHERE text_table = %s ORDER BY 1", (text,)
        ).fetchall():
            _lock(conn, bm25)
            for name in (bm25, bm25_tables.terms_name(text)):
                if _exists(conn, name):
                    conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(name)))
                    dropped.append(name)
            conn.execute("DELETE FROM recall_bm25_tables WHERE name = %s", (bm25,))
    if _exists(conn, text):
        _lock(conn, text)
        conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(text)))
        dropped.append(text)
    if _exists(conn, "recall_text_tables"):
        conn.execute("DELETE FROM recall_text_tables WHERE name = %s", (text,))
    return dropped
