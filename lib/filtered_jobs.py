"""Preparing the Filtered search page's tables as jobs kept in PostgreSQL, shared by every
process: a queue of the same design as lib/jobs.py's.

A job prepares one size: the recall table's rows (loaded if missing, lib/builds.py), the
filtered table beside it (lib/filtered_tables.py), the exact filtered ground truth of every
category (lib/filtered_search.py, stored in `recall_truths`), then the query sets the page
opens on (every selectivity under every iterative-scan mode at pgvector's defaults, stored in
`filtered_runs`), so the first learner to open a size sees them at once.

Jobs are rows of `filtered_jobs`; a unique index allows one live job per size, so thirty
people opening the same size get one build. A `Worker` in each process runs them, one at a
time across every process (a session advisory lock). While it loads and builds, a job also
holds the recall queue's lock for its size's lane (lib/jobs.py), so that no recall-table build
shares the 2 cores with it; its truths and measurements leave the lane free. A worker whose
process dies loses its locks with its connection; the next worker puts its job back in the
queue.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from datetime import datetime

import psycopg

from lib import builds, filtered_search, filtered_tables, recall_tables, truths
from lib.database import Database, DatabaseUnavailable
from lib.dataset import Dataset
from lib.jobs import lane_of, worker_name
from lib.recall import HarnessError

LOCK = "filtered_jobs"
POLL_SECONDS = 1.0
MAX_ATTEMPTS = 3
RUNNING = ("waiting", "embedding", "loading", "copying", "indexing", "truth", "measuring")

DDL = """CREATE TABLE IF NOT EXISTS filtered_jobs (
    id bigserial PRIMARY KEY,
    n integer NOT NULL,
    table_name text NOT NULL,
    state text NOT NULL DEFAULT 'queued',
    requested_at timestamptz NOT NULL DEFAULT now(),
    started_at timestamptz,
    finished_at timestamptz,
    worker text,
    backend_pid integer,
    done integer NOT NULL DEFAULT 0,
    total integer NOT NULL DEFAULT 0,
    attempts integer NOT NULL DEFAULT 0,
    built boolean NOT NULL DEFAULT false,
    error text
);
CREATE UNIQUE INDEX IF NOT EXISTS filtered_jobs_live ON filtered_jobs (n)
    WHERE state NOT IN ('done', 'failed')"""

COLUMNS = (
    "id, n, table_name, state, requested_at, started_at, finished_at, worker, backend_pid,"
    " done, total, attempts, built, error"
)


@dataclass(frozen=True)
class Job:
    id: int
    n: int
    table_name: str
    state: str  # queued, waiting, embedding, loading, copying, indexing, truth, measuring, done,
    # or failed
    requested_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    worker: str | None
    backend_pid: int | None
    done: int
    total: int
    attempts: int
    built: bool  # this job built the filtered table (False: it was there already)
    error: str | None

    @property
    def running(self) -> bool:
        return self.state not in ("done", "failed")

    def elapsed(self) -> float:
        if self.started_at is None:
            return 0.0
        end = self.finished_at or datetime.now(self.started_at.tzinfo)
        return (end - self.started_at).total_seconds()


def ensure_table(db: Database) -> None:
    def create() -> None:
        with db.transaction() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(hashtext('filtered_jobs'))")
            conn.execute(DDL)

    db.once("filtered_jobs", create)


_wake = threading.Event()


def request(db: Database, ds: Dataset, n: int) -> Job:
    """The live job preparing size `n`'s filtered table, or a new one in the queue."""
    ensure_table(db)
    table = filtered_tables.table_name(n, ds.dimension)
    for _ in range(5):
        row = db.fetchone(
            f"INSERT INTO filtered_jobs (n, table_name) VALUES (%s, %s)"
            f" ON CONFLICT (n) WHERE state NOT IN ('done', 'failed') DO NOTHING"
            f" RETURNING {COLUMNS}",
            (n, table),
        )
        if row is None:
            row = db.fetchone(
                f"SELECT {COLUMNS} FROM filtered_jobs WHERE n = %s"
                " AND state NOT IN ('done', 'failed')",
                (n,),
            )
        if row is not None:
            _wake.set()
            return Job(*row)
    raise RuntimeError(f"could not queue a job for {n:,} rows")  # pragma: no cover


def get(db: Database, job_id: int) -> Job | None:
    ensure_table(db)
    row = db.fetchone(f"SELECT {COLUMNS} FROM filtered_jobs WHERE id = %s", (job_id,))
    return Job(*row) if row else None


def last(db: Database, n: int) -> Job | None:
    """The newest job for size `n`, in any state."""
    ensure_table(db)
    row = db.fetchone(
        f"SELECT {COLUMNS} FROM filtered_jobs WHERE n = %s ORDER BY id DESC LIMIT 1", (n,)
    )
    return Job(*row) if row else None


@dataclass(frozen=True)
class Progress:
    fraction: float | None
    text: str


def progress(db: Database, job: Job) -> Progress:
    """Where `job` stands, read now from its row and the server's progress views."""
    n = f"{job.n:,} rows"
    if job.state == "queued":
        row = db.fetchone(
            "SELECT count(*) FROM filtered_jobs WHERE id < %s AND state NOT IN ('done', 'failed')",
            (job.id,),
        )
        ahead = int(row[0]) if row else 0
        return Progress(0.0, f"Queued for {n}" + (f": {ahead} ahead of it." if ahead else "."))
    if job.state == "waiting":
        return Progress(0.0, f"{n}: waiting for the recall-table builds of this size to finish.")
    if job.state == "embedding":
        return Progress(
            job.done / max(1, job.total),
            f"Embedding the passages {n} need: {job.done:,} of {job.total:,} done "
            f"({job.elapsed():.0f} s so far)…",
        )
    if job.state == "loading":
        rows = builds.copy_progress(db, job.backend_pid) if job.backend_pid else None
        fraction = min(1.0, rows / job.n) if rows else 0.0
        return Progress(fraction, f"Loading the recall table's {n} (binary COPY)…")
    if job.state == "copying":
        return Progress(
            None,
            f"Copying {n} into {job.table_name} with their categories and chapters, and "
            f"their B-tree indexes ({job.elapsed():.0f} s so far)…",
        )
    if job.state == "indexing":
        p = builds.index_progress(db, job.table_name)
        if p is None:
            return Progress(None, f"Building the HNSW indexes of {job.table_name}…")
        done = f", {p.tuples_done:,} vectors" if p.tuples_done else ""
        return Progress(
            p.fraction(),
            f"Building the HNSW indexes of {job.table_name} — server phase “{p.phase}”{done} "
            f"({job.elapsed():.0f} s so far).",
        )
    if job.state == "truth":
        return Progress(
            job.done / max(1, job.total),
            f"Computing the exact filtered ground truths: {job.done} of {job.total} categories "
            "done (one exact scan per query and category).",
        )
    if job.state == "measuring":
        return Progress(
            job.done / max(1, job.total),
            f"Measuring the default query sets: {job.done} of {job.total}.",
        )
    if job.state == "failed":
        return Progress(None, f"Preparing the filtered table of {n} failed: {job.error}")
    return Progress(1.0, f"The filtered table of {n} is ready.")


# ---------------------------------------------------------------------------------------
# Running jobs


def _set(db: Database, job_id: int, **fields: object) -> None:
    assignments = ", ".join(f"{k} = %s" for k in fields)
    db.fetchall(
        f"UPDATE filtered_jobs SET {assignments} WHERE id = %s RETURNING 1",
        (*fields.values(), job_id),
    )


def run(db: Database, ds: Dataset, job: Job, lane: AbstractContextManager | None = None) -> None:
    """Do what `job` asks (rows, table, truths, default query sets), recording each step.
    The loads and builds run inside `lane` (the recall queue's lock for the size's lane)."""

    def backend(pid: int) -> None:
        _set(db, job.id, backend_pid=pid)

    with lane or nullcontext():
        if not recall_tables.table_status(db, ds, job.n).loaded and ds.missing(job.n):
            _embed(db, ds, job)
        _set(db, job.id, state="loading")
        builds.load_table(db, ds, job.n, on_backend=backend)
        before = filtered_tables.status(db, ds, job.n)
        table = filtered_tables.build(
            db, ds, job.n, on_phase=lambda state: _set(db, job.id, state=state),
            on_backend=backend,
        )  # fmt: skip
    if before is None:  # a new build: what was stored for an older one goes
        truths.forget(db, table.name)
        filtered_search.forget(db, table.name)
        _set(db, job.id, built=True)
    filters = filtered_search.category_filters()
    _set(db, job.id, state="truth", done=0, total=len(filters))
    for i, f in enumerate(filters, start=1):
        filtered_search.truth(db, ds, table, f)
        _set(db, job.id, done=i)
    cells = filtered_search.default_cells()
    _set(db, job.id, state="measuring", done=0, total=len(cells))
    for i, cell in enumerate(cells, start=1):
        filtered_search.stored_or_measured(db, ds, table, cell)
        _set(db, job.id, done=i)


def _embed(db: Database, ds: Dataset, job: Job) -> None:
    """The passages the size's rows need that the embedding cache lacks (as a recall job
    embeds them: in batches, under the lock every process shares; lib/jobs.py)."""
    _set(db, job.id, state="embedding", done=0, total=ds.missing(job.n))
    builds.embed_rows(db, ds, job.n, lambda done, todo: _set(db, job.id, done=done, total=todo))
    if job.n > ds.n_real:
        ds.generator  # noqa: B018 (fitted once, before the load)


class Worker:
    """Runs queued filtered-table jobs in this process, one at a time across every process."""

    def __init__(self, db: Database, ds: Dataset):
        self.db = db
        self.ds = ds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="filtered-jobs", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        _wake.set()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                ensure_table(self.db)
                row = self.db.fetchone(
                    "SELECT EXISTS (SELECT 1 FROM filtered_jobs"
                    " WHERE state NOT IN ('done', 'failed'))"
                )
                if row and row[0]:
                    self._drain()
            except (DatabaseUnavailable, psycopg.OperationalError):
                pass  # the server is away; try again on the next round
            except Exception:  # a worker must never die
                traceback.print_exc()
            _wake.wait(POLL_SECONDS)
            _wake.clear()

    def _drain(self) -> None:
        with psycopg.connect(self.db.conninfo, autocommit=True, connect_timeout=10) as conn:
            got = conn.execute("SELECT pg_try_advisory_lock(hashtext(%s))", (LOCK,)).fetchone()
            if not (got and got[0]):
                return  # another process runs the queue
            conn.execute(
                "UPDATE filtered_jobs SET state = CASE WHEN attempts >= %s THEN 'failed'"
                " ELSE 'queued' END, error = CASE WHEN attempts >= %s THEN"
                " 'interrupted ' || attempts || ' times (the process running it stopped)'"
                " END, backend_pid = NULL WHERE state = ANY(%s)",
                (MAX_ATTEMPTS, MAX_ATTEMPTS, list(RUNNING)),
            )
            while not self._stop.is_set():
                row = conn.execute(
                    f"UPDATE filtered_jobs SET state = 'waiting', started_at = now(),"
                    f" worker = %s, attempts = attempts + 1"
                    f" WHERE id = (SELECT id FROM filtered_jobs WHERE state = 'queued'"
                    f"   ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING {COLUMNS}",
                    (worker_name(),),
                ).fetchone()
                if row is None:
                    return
                self._run(conn, Job(*row))

    @contextmanager
    def _lane(self, conn: psycopg.Connection, n: int) -> Iterator[None]:
        """Hold the recall queue's lock of `n`'s lane (wait for it), so that no recall-table
        build shares the cores with ours."""
        lane = f"recall_jobs_lane_{lane_of(n)}"
        while True:
            got = conn.execute("SELECT pg_try_advisory_lock(hashtext(%s))", (lane,)).fetchone()
            if got and got[0]:
                break
            if self._stop.is_set():
                raise Stopped
            time.sleep(POLL_SECONDS)
        try:
            yield
        finally:
            conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (lane,))

    def _run(self, conn: psycopg.Connection, job: Job) -> None:
        try:
            _set(self.db, job.id, started_at="now")
            run(self.db, self.ds, job, self._lane(conn, job.n))
        except Stopped:
            return  # the next worker requeues the job
        except Exception as e:  # shown on the page; the job can be requested again
            error = str(e) if isinstance(e, HarnessError) else f"{type(e).__name__}: {e}"
            try:
                _set(self.db, job.id, state="failed", error=error.strip(), finished_at="now")
            except (DatabaseUnavailable, psycopg.Error):
                pass  # the server went away; the next worker requeues the job
            traceback.print_exc()
        else:
            _set(self.db, job.id, state="done", finished_at="now")


class Stopped(Exception):
    """The worker was stopped while its job waited for its lane."""


def wait(db: Database, job: Job, timeout: float = 900) -> Job:
    """Block until `job` ends (for the command line and tests); the job as it ended."""
    deadline = time.monotonic() + timeout
    current: Job | None = job
    while time.monotonic() < deadline:
        current = get(db, job.id)
        if current is None or not current.running:
            break
        time.sleep(0.2)
    assert current is not None
    return current
