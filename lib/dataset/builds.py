"""Loading a size's recall table and building its vector index, and the server's own
progress reports on both (`pg_stat_progress_copy`, `pg_stat_progress_create_index`).

Loads and builds run in transactions that abort when the client goes away
(`client_connection_check_interval`), under an advisory lock on the table's name, so two
processes never build the same thing and a killed app leaves nothing half-built behind.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from lib.core.binary_copy import COPY_HEADER, COPY_TRAILER, copy_rows
from lib.core.database import Database, Setting
from lib.core.jobs import Progress
from lib.core.vectors import EmbedProgress, EmbedReport
from lib.dataset.index_specs import IndexSpec, index_name, index_statement
from lib.dataset.passages import Dataset
from lib.dataset.recall_tables import ensure_meta, table_name, table_status
from lib.dataset.sizing import memory_available, plan_size

GRAPH_NOTICE = "hnsw graph no longer fits into maintenance_work_mem"
EMBEDDING_LOCK = "recall_embedding"  # every process embedding into the cache takes it per batch

Counting = Callable[[int, int], None]


@dataclass
class BuildReport:
    table: str
    n: int
    loaded: bool = False  # this call loaded the table (False: it was already there)
    load_seconds: float | None = None
    indexed: bool = False
    build_seconds: float | None = None
    index: str | None = None
    maintenance_work_mem: str | None = None
    workers: int | None = None
    notices: list[str] = field(default_factory=list)


def build_settings() -> dict[str, str]:
    """Settings for loads and builds: abort if the app dies mid-way, no statement limit."""
    return {"client_connection_check_interval": "2s", "statement_timeout": "0"}


def copy_table(
    conn: psycopg.Connection,
    table: str,
    dimension: int,
    blocks: Iterable[np.ndarray],
    *,
    progress: Callable[[int], None] | None = None,
) -> int:
    """(Re)create `table` (id integer, embedding vector(dimension)) in the transaction of
    `conn`, fill it from `blocks` with binary COPY (ids 1, 2, …) and give it its primary key;
    returns the rows written."""
    ident = sql.Identifier(table)
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(ident))
    conn.execute(
        sql.SQL("CREATE TABLE {} (id integer NOT NULL, embedding vector({}) NOT NULL)").format(
            ident, sql.Literal(dimension)
        )
    )
    copy = sql.SQL("COPY {} (id, embedding) FROM STDIN WITH (FORMAT BINARY, FREEZE)")
    done = 0
    with conn.cursor().copy(copy.format(ident)) as cp:
        cp.write(COPY_HEADER)
        for block in blocks:
            ids = np.arange(done + 1, done + 1 + len(block), dtype=np.int32)
            cp.write(copy_rows(ids, block))
            done += len(block)
            if progress:
                progress(done)
        cp.write(COPY_TRAILER)
    conn.execute(sql.SQL("ALTER TABLE {} ADD PRIMARY KEY (id)").format(ident))
    return done


# ---- the rows' vectors: embedded once, into the cache every process shares -------------


def embedding_guard(db: Database):
    """A lock, taken per batch, that every process embedding into the cache shares: two jobs
    needing the same passages embed each batch once (lib.core.vectors.embed_missing)."""
    conn = psycopg.connect(db.conninfo, autocommit=True, connect_timeout=10)

    @contextmanager
    def guard():
        conn.execute("SELECT pg_advisory_lock(hashtext(%s))", (EMBEDDING_LOCK,))
        try:
            yield
        finally:
            conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (EMBEDDING_LOCK,))

    return conn, guard


def embed_rows(
    db: Database, ds: Dataset, n: int, on_progress: Callable[[int, int], None] | None = None
) -> EmbedReport:
    """Embed the passages `n` rows need that the cache lacks, in batches under the lock
    every process shares, telling `on_progress(done, todo)` every 2 s or so."""
    last = [0.0]

    def progress(p: EmbedProgress) -> None:
        if p.seconds - last[0] >= 2 or p.done == p.todo:
            last[0] = p.seconds
            if on_progress:
                on_progress(p.done, p.todo)

    conn, guard = embedding_guard(db)
    with conn:
        return ds.embed(n, progress=progress, guard=guard)


def load_table(
    db: Database,
    ds: Dataset,
    n: int,
    *,
    progress: Counting | None = None,
    on_backend: Callable[[int], None] | None = None,
) -> float | None:
    """Create and fill size `n`'s table unless it already holds this dataset; return seconds
    spent loading (None when nothing was done). Passages its rows need that the embedding
    cache lacks are embedded first (a job does that step itself, with its progress)."""
    ensure_meta(db)
    if not table_status(db, ds, n).loaded and ds.missing(n):
        embed_rows(db, ds, n)
    table = table_name(n, ds.dimension)
    ident = sql.Identifier(table)
    with db.transaction(build_settings()) as conn:
        if on_backend:
            on_backend(conn.info.backend_pid)
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (table,))
        if table_status(db, ds, n).loaded:
            return None
        t0 = time.perf_counter()
        counted = (lambda done: progress(done, n)) if progress else None
        copy_table(conn, table, ds.dimension, ds.rows(n), progress=counted)
        conn.execute(sql.SQL("ANALYZE {}").format(ident))
        seconds = time.perf_counter() - t0
        conn.execute(
            "INSERT INTO recall_tables"
            " (name, n, dimension, model, fingerprint, real_rows, load_seconds)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (name) DO UPDATE SET n = EXCLUDED.n, dimension = EXCLUDED.dimension,"
            " model = EXCLUDED.model, fingerprint = EXCLUDED.fingerprint,"
            " real_rows = EXCLUDED.real_rows, loaded_at = now(),"
            " load_seconds = EXCLUDED.load_seconds",
            (table, n, ds.dimension, ds.model_name, ds.fingerprint(), ds.real_rows(n), seconds),
        )
        conn.execute("DELETE FROM recall_index_builds WHERE table_name = %s", (table,))
    return seconds


def parallel_workers() -> int:
    """Parallel maintenance workers for a build: one per core beyond the leader's, at most 2."""
    return max(0, min(2, (os.cpu_count() or 1) - 1))


def index_build_settings(n: int, dimension: int, m: int = 16) -> dict[str, Setting]:
    """The settings an index build runs under: `build_settings`, `maintenance_work_mem` sized
    from the graph estimate within the machine's memory (so the build stays in memory), and
    the parallel maintenance workers."""
    plan = plan_size(n, dimension, m=m, memory=memory_available())
    return {
        **build_settings(),
        "maintenance_work_mem": f"{plan.maintenance_work_mem_mb}MB",
        "max_parallel_maintenance_workers": parallel_workers(),
    }


class NoticeCollector:
    """A psycopg notice handler that keeps each notice's text and passes it on."""

    def __init__(self, on_notice: Callable[[str], None] | None = None):
        self.texts: list[str] = []
        self.on_notice = on_notice

    def __call__(self, diag: psycopg.errors.Diagnostic) -> None:
        text = diag.message_primary or ""
        self.texts.append(text)
        if self.on_notice:
            self.on_notice(text)

    def graph_notice(self) -> str | None:
        """pgvector's "hnsw graph no longer fits into maintenance_work_mem", if it said so."""
        return next((t for t in self.texts if GRAPH_NOTICE in t), None)


def build_index(
    db: Database,
    ds: Dataset,
    n: int,
    spec: IndexSpec,
    *,
    on_notice: Callable[[str], None] | None = None,
    on_backend: Callable[[int], None] | None = None,
) -> BuildReport:
    """Give size `n`'s table the index `spec` (replacing any other vector index on it).

    `maintenance_work_mem` is sized from the graph estimate within the machine's memory, so
    the build stays in memory; if pgvector still says "hnsw graph no longer fits into
    maintenance_work_mem", the notice is passed to `on_notice` and recorded with the build."""
    spec = spec.resolved(n)
    spec.check()
    table = table_name(n, ds.dimension)
    name = index_name(table, spec)
    report = BuildReport(table, n, index=name)
    handler = NoticeCollector(on_notice)
    settings = index_build_settings(n, ds.dimension, spec.m)
    mwm, workers = settings["maintenance_work_mem"], settings["max_parallel_maintenance_workers"]
    with db.transaction(settings) as conn:
        if on_backend:
            on_backend(conn.info.backend_pid)
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (table,))
        status = table_status(db, ds, n)
        if not status.loaded:
            raise RuntimeError(f"{table} is not loaded")
        if status.ready(spec):
            return report
        conn.add_notice_handler(handler)
        try:
            t0 = time.perf_counter()
            if any(i.name == name for i in status.indexes):
                conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(name)))
            conn.execute(index_statement(table, spec).text)
            seconds = time.perf_counter() - t0
            for old in status.indexes:
                if old.name != name:
                    conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(old.name)))
                    conn.execute(
                        "DELETE FROM recall_index_builds WHERE index_name = %s", (old.name,)
                    )
        finally:
            conn.remove_notice_handler(handler)
        graph_notice = handler.graph_notice()
        conn.execute(
            "INSERT INTO recall_index_builds (index_name, table_name, kind, params,"
            " build_seconds, maintenance_work_mem, workers, notice)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (index_name) DO UPDATE SET params = EXCLUDED.params,"
            " built_at = now(), build_seconds = EXCLUDED.build_seconds,"
            " maintenance_work_mem = EXCLUDED.maintenance_work_mem,"
            " workers = EXCLUDED.workers, notice = EXCLUDED.notice",
            (
                name,
                table,
                spec.kind,
                Jsonb(spec.params()),
                seconds,
                mwm,
                workers,
                graph_notice,
            ),
        )
    report.indexed = True
    report.build_seconds = seconds
    report.maintenance_work_mem = mwm
    report.workers = workers
    report.notices = handler.texts
    return report


def prepare(
    db: Database,
    ds: Dataset,
    n: int,
    spec: IndexSpec | None = None,
    *,
    progress: Counting | None = None,
    on_notice: Callable[[str], None] | None = None,
    on_embed: Callable[[EmbedProgress], None] | None = None,
) -> BuildReport:
    """Embed what size `n` needs (`on_embed` follows it), load it if needed, then give it the
    index `spec` (default HNSW) if needed. A job does the same with its progress in its row
    (lib/harness/size_jobs.py)."""
    spec = spec or IndexSpec()
    if not table_status(db, ds, n).loaded and ds.missing(n):
        conn, guard = embedding_guard(db)
        with conn:
            ds.embed(n, progress=on_embed, guard=guard)
    seconds = load_table(db, ds, n, progress=progress)
    report = build_index(db, ds, n, spec, on_notice=on_notice)
    report.loaded = seconds is not None
    report.load_seconds = seconds
    return report


PROGRESS_SQL = """SELECT p.phase, p.tuples_done, p.tuples_total, p.blocks_done, p.blocks_total,
       p.pid
FROM pg_stat_progress_create_index p
WHERE p.relid = to_regclass(%s)"""


@dataclass(frozen=True)
class IndexProgress:
    phase: str
    tuples_done: int
    tuples_total: int
    blocks_done: int
    blocks_total: int
    pid: int

    def fraction(self) -> float | None:
        if self.tuples_total:
            return min(1.0, self.tuples_done / self.tuples_total)
        if self.blocks_total:
            return min(1.0, self.blocks_done / self.blocks_total)
        return None


def index_progress(db: Database, table: str) -> IndexProgress | None:
    """The server's report on a CREATE INDEX running on `table` (from any process)."""
    row = db.fetchone(PROGRESS_SQL, (table,))
    return IndexProgress(*row) if row else None


def copy_progress(db: Database, pid: int) -> int | None:
    """Rows a COPY in backend `pid` has processed so far, as the server counts them."""
    row = db.fetchone("SELECT tuples_processed FROM pg_stat_progress_copy WHERE pid = %s", (pid,))
    return int(row[0]) if row else None


def index_step(db: Database, table: str, what: str, n: int | None, seconds: float) -> Progress:
    """The progress of a job building `what` (an index of `table`, of `n` rows when it is
    one index), in the server's words."""
    p = index_progress(db, table)
    if p is None:
        return Progress(None, f"Building {what} ({seconds:.0f} s so far)…")
    of = f" of {n:,}" if n else ""
    done = f", {p.tuples_done:,}{of} vectors" if p.tuples_done else ""
    return Progress(
        p.fraction(), f"Building {what} — server phase “{p.phase}”{done} ({seconds:.0f} s so far)."
    )


def load_step(db: Database, backend_pid: int | None, n: int, what: str) -> Progress:
    """The progress of a job's COPY of `n` rows of `what`, counted by the server."""
    rows = copy_progress(db, backend_pid) if backend_pid else None
    if not rows:
        return Progress(0.0, f"Loading {what} of {n:,} rows (COPY)…")
    return Progress(min(1.0, rows / n), f"Loading {what} with COPY: {rows:,} of {n:,} rows.")
