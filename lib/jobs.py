"""Preparing recall tables as jobs kept in PostgreSQL, shared by every process.

A job prepares one size for one index spec: it embeds the passages the size needs that the
embedding cache lacks (lib/dataset.py; an estimate is shown before anyone asks for a size that
needs many), fits the generator if the size has generated rows and it was never fitted, loads
the size's table (unless it holds the dataset already), gives it the index (unless it has it),
computes the ground truth of the query set and stores it (lib/truths.py). Jobs are rows of
`recall_jobs`, so every app process, `make prepare` and the command line see one queue:

- `request(db, ds, n, spec)` joins the live job for (n, spec) or queues a new one; a unique
  index allows one live job per (n, spec), so two processes asking at once get one job;
- a `Worker` in each process claims queued jobs. Jobs run in two lanes, small tables
  (up to `BIG` rows) and large ones; a lane's session advisory lock lets one worker at a
  time run that lane, so a large build never shares the 2 cores with another large build,
  and a 500-row table asked for in a workshop is not stuck behind a 500,000-row build;
- a worker whose process dies loses its lock with its connection (and its load or build
  aborts: `client_connection_check_interval`), and the next worker to take the lane puts
  the interrupted job back in the queue;
- `position` says how many jobs are ahead in the lane, `progress` where a job stands, in the
  server's own words where it has them (`pg_stat_progress_copy`,
  `pg_stat_progress_create_index`), whichever process runs it.

Each job row also records what it did (`loaded`, `indexed`, `truth_computed`), which is how
a test proves that two processes asking for the same new size ran one build.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import traceback
from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg.types.json import Jsonb

from lib import builds, recall_tables, truths
from lib.database import Database, DatabaseUnavailable
from lib.dataset import GENERATOR_FIT_ROWS, Dataset
from lib.index_specs import IndexSpec
from lib.recall import HarnessError, K, generated_target, ground_truth
from lib.vectors import duration

BIG = 60_000
LANES = ("small", "big")
RUNNING = ("embedding", "fitting", "loading", "indexing", "truth")
MAX_ATTEMPTS = 3
POLL_SECONDS = 1.0

DDL = """CREATE TABLE IF NOT EXISTS recall_jobs (
    id bigserial PRIMARY KEY,
    n integer NOT NULL,
    spec jsonb NOT NULL,
    table_name text NOT NULL,
    lane text NOT NULL,
    state text NOT NULL DEFAULT 'queued',
    requested_at timestamptz NOT NULL DEFAULT now(),
    started_at timestamptz,
    finished_at timestamptz,
    worker text,
    backend_pid integer,
    truth_done integer NOT NULL DEFAULT 0,
    truth_total integer NOT NULL DEFAULT 0,
    attempts integer NOT NULL DEFAULT 0,
    loaded boolean NOT NULL DEFAULT false,
    indexed boolean NOT NULL DEFAULT false,
    truth_computed boolean NOT NULL DEFAULT false,
    build_seconds double precision,
    load_seconds double precision,
    maintenance_work_mem text,
    workers integer,
    notices text[] NOT NULL DEFAULT '{}',
    error text
);
ALTER TABLE recall_jobs ADD COLUMN IF NOT EXISTS embed_done integer NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS embed_total integer NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS embed_seconds double precision;
CREATE UNIQUE INDEX IF NOT EXISTS recall_jobs_live ON recall_jobs (n, spec)
    WHERE state NOT IN ('done', 'failed');
CREATE INDEX IF NOT EXISTS recall_jobs_lane ON recall_jobs (lane, id)
    WHERE state NOT IN ('done', 'failed')"""

COLUMNS = (
    "id, n, spec, table_name, lane, state, requested_at, started_at, finished_at, worker,"
    " backend_pid, truth_done, truth_total, attempts, loaded, indexed, truth_computed,"
    " build_seconds, load_seconds, maintenance_work_mem, workers, notices, error,"
    " embed_done, embed_total, embed_seconds"
)


@dataclass(frozen=True)
class Job:
    """One row of recall_jobs, as read."""

    id: int
    n: int
    spec: IndexSpec
    table_name: str
    lane: str
    state: str  # queued, embedding, fitting, loading, indexing, truth, done, failed
    requested_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    worker: str | None
    backend_pid: int | None
    truth_done: int
    truth_total: int
    attempts: int
    loaded: bool
    indexed: bool
    truth_computed: bool
    build_seconds: float | None
    load_seconds: float | None
    maintenance_work_mem: str | None
    workers: int | None
    notices: tuple[str, ...]
    error: str | None
    embed_done: int = 0
    embed_total: int = 0
    embed_seconds: float | None = None

    @property
    def running(self) -> bool:
        return self.state not in ("done", "failed")

    def elapsed(self) -> float:
        if self.started_at is None:
            return 0.0
        end = self.finished_at or datetime.now(self.started_at.tzinfo)
        return (end - self.started_at).total_seconds()


def _job(row: tuple) -> Job:
    values = list(row)
    values[2] = IndexSpec(**values[2])
    values[21] = tuple(values[21] or ())
    return Job(*values)


def lane_of(n: int) -> str:
    return "big" if n > BIG else "small"


def ensure_table(db: Database) -> None:
    def create() -> None:
        with db.transaction() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(hashtext('recall_jobs'))")
            conn.execute(DDL)

    db.once("recall_jobs", create)


def _spec_json(spec: IndexSpec) -> Jsonb:
    return Jsonb(
        {"kind": spec.kind, "m": spec.m, "ef_construction": spec.ef_construction,
         "lists": spec.lists}
    )  # fmt: skip


def request(db: Database, ds: Dataset, n: int, spec: IndexSpec | None = None) -> Job:
    """The live job preparing (n, spec), or a new one in the queue."""
    spec = (spec or IndexSpec()).resolved(n)
    spec.check()
    ensure_table(db)
    table = recall_tables.table_name(n, ds.dimension)
    for _ in range(5):
        row = db.fetchone(
            f"INSERT INTO recall_jobs (n, spec, table_name, lane) VALUES (%s, %s, %s, %s)"
            f" ON CONFLICT (n, spec) WHERE state NOT IN ('done', 'failed') DO NOTHING"
            f" RETURNING {COLUMNS}",
            (n, _spec_json(spec), table, lane_of(n)),
        )
        if row is None:
            row = db.fetchone(
                f"SELECT {COLUMNS} FROM recall_jobs WHERE n = %s AND spec = %s"
                " AND state NOT IN ('done', 'failed')",
                (n, _spec_json(spec)),
            )
        if row is not None:
            _wake.set()
            return _job(row)
    raise RuntimeError(f"could not queue a job for {n:,} rows")  # pragma: no cover


def get(db: Database, job_id: int) -> Job | None:
    ensure_table(db)
    row = db.fetchone(f"SELECT {COLUMNS} FROM recall_jobs WHERE id = %s", (job_id,))
    return _job(row) if row else None


def live(db: Database, n: int) -> Job | None:
    """The newest queued or running job for size `n` (whatever its index), if any."""
    ensure_table(db)
    row = db.fetchone(
        f"SELECT {COLUMNS} FROM recall_jobs WHERE n = %s AND state NOT IN ('done', 'failed')"
        " ORDER BY id DESC LIMIT 1",
        (n,),
    )
    return _job(row) if row else None


def last(db: Database, n: int) -> Job | None:
    """The newest job for size `n`, in any state."""
    ensure_table(db)
    row = db.fetchone(
        f"SELECT {COLUMNS} FROM recall_jobs WHERE n = %s ORDER BY id DESC LIMIT 1", (n,)
    )
    return _job(row) if row else None


def queue(db: Database) -> list[Job]:
    """Every queued or running job, oldest first."""
    ensure_table(db)
    rows = db.fetchall(
        f"SELECT {COLUMNS} FROM recall_jobs WHERE state NOT IN ('done', 'failed') ORDER BY id"
    )
    return [_job(r) for r in rows]


def position(db: Database, job: Job) -> int:
    """How many jobs of the same lane are queued or running ahead of `job`."""
    row = db.fetchone(
        "SELECT count(*) FROM recall_jobs WHERE lane = %s AND id < %s"
        " AND state NOT IN ('done', 'failed')",
        (job.lane, job.id),
    )
    return int(row[0]) if row else 0


@dataclass(frozen=True)
class Progress:
    """What a progress bar shows: a fraction (or None when unknown) and a sentence."""

    fraction: float | None
    text: str


def progress(db: Database, job: Job) -> Progress:
    """Where `job` stands, read now from its row and the server's progress views."""
    n = job.n
    if job.state == "queued":
        ahead = position(db, job)
        if ahead:
            return Progress(
                0.0,
                f"Queued for {n:,} rows: {ahead} build{'s' if ahead != 1 else ''} ahead of it "
                f"in the {job.lane}-table queue.",
            )
        return Progress(0.0, f"Queued for {n:,} rows: starting…")
    if job.state == "embedding":
        done, total = job.embed_done, max(1, job.embed_total)
        seconds = job.elapsed()
        words = f"Embedding the passages {n:,} rows need: {done:,} of {job.embed_total:,} done"
        if done and seconds > 0:
            rate = done / seconds
            words += f" ({rate:,.0f}/s), about {duration((total - done) / rate)} left"
        return Progress(done / total, words + ". Then the table is loaded and indexed.")
    if job.state == "fitting":
        return Progress(
            None,
            f"Fitting the generator to {GENERATOR_FIT_ROWS:,} real rows (k-means, once per "
            f"corpus and model) for the rows past the real ones ({job.elapsed():.0f} s so far)…",
        )
    if job.state == "loading":
        rows = builds.copy_progress(db, job.backend_pid) if job.backend_pid else None
        if not rows:
            return Progress(0.0, f"Loading {n:,} rows (binary COPY)…")
        return Progress(min(1.0, rows / n), f"Loading rows with binary COPY: {rows:,} of {n:,}.")
    if job.state == "indexing":
        p = builds.index_progress(db, job.table_name)
        label = job.spec.label()
        if p is None:
            return Progress(None, f"Building the {label} index…")
        done = f"{p.tuples_done:,} of {n:,} vectors" if p.tuples_done else ""
        return Progress(
            p.fraction(),
            f"Building the {label} index — server phase “{p.phase}”"
            + (f", {done}" if done else "")
            + f" ({job.elapsed():.0f} s so far).",
        )
    if job.state == "truth":
        return Progress(
            job.truth_done / max(1, job.truth_total),
            f"Computing the ground truth: exact scan {job.truth_done} of {job.truth_total}.",
        )
    if job.state == "failed":
        return Progress(None, f"Preparing {n:,} rows failed: {job.error}")
    return Progress(1.0, f"{n:,} rows ready.")


# ---------------------------------------------------------------------------------------
# Running jobs

_wake = threading.Event()  # set by request(): a worker in this process looks at once


def _set(db: Database, job_id: int, **fields: object) -> None:
    assignments = ", ".join(f"{k} = %s" for k in fields)
    db.fetchall(
        f"UPDATE recall_jobs SET {assignments} WHERE id = %s RETURNING 1",
        (*fields.values(), job_id),
    )


def embed_for(db: Database, ds: Dataset, job: Job, missing: int) -> None:
    """The embedding step of `job`: the `missing` passages its size needs and the cache
    lacks, its progress in the job's row."""
    _set(db, job.id, state="embedding", embed_total=missing, embed_done=0)
    report = builds.embed_rows(
        db, ds, job.n, lambda done, todo: _set(db, job.id, embed_done=done, embed_total=todo)
    )
    _set(db, job.id, embed_seconds=report.seconds)


def run(db: Database, ds: Dataset, job: Job) -> None:
    """Do what `job` asks (embed, fit, load, index, ground truth), recording each step in its
    row."""
    n, spec = job.n, job.spec
    table = recall_tables.table_name(n, ds.dimension)

    def backend(pid: int) -> None:
        _set(db, job.id, backend_pid=pid)

    def notice(text: str) -> None:
        db.fetchall(
            "UPDATE recall_jobs SET notices = notices || %s WHERE id = %s RETURNING 1",
            ([text], job.id),
        )

    if not recall_tables.table_status(db, ds, n).loaded:
        missing = ds.missing(n)
        if missing:
            embed_for(db, ds, job, missing)
        if n > ds.n_real:
            _set(db, job.id, state="fitting")
            ds.generator  # noqa: B018 (fitted here, once, rather than inside the load)
    _set(db, job.id, state="loading")
    seconds = builds.load_table(db, ds, n, on_backend=backend)
    if seconds is not None:
        truths.forget(db, table)
        _set(db, job.id, loaded=True, load_seconds=seconds)
    _set(db, job.id, state="indexing")
    report = builds.build_index(db, ds, n, spec, on_notice=notice, on_backend=backend)
    if report.indexed:
        _set(
            db, job.id, indexed=True, build_seconds=report.build_seconds,
            maintenance_work_mem=report.maintenance_work_mem, workers=report.workers,
        )  # fmt: skip
    status = recall_tables.table_status(db, ds, n)
    fp = ds.queries_fingerprint
    if truths.of_table(db, ds, status, K) is None:
        _set(db, job.id, state="truth", truth_total=len(ds.queries), truth_done=0)

        def counted(done: int, total: int) -> None:
            if done % 10 == 0 or done == total:
                _set(db, job.id, truth_done=done)

        answers = ground_truth(db, generated_target(table), ds.queries, K, progress=counted)
        truths.store(db, table, status.loaded_at, fp, K, answers)
        _set(db, job.id, truth_computed=True)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Worker:
    """Runs queued jobs in this process: one thread per lane, each taking its lane's lock
    only while it has work, so any process may run the next job."""

    def __init__(self, db: Database, ds: Dataset, lanes: tuple[str, ...] = LANES):
        self.db = db
        self.ds = ds
        self.lanes = lanes
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._loop, args=(lane,), name=f"jobs-{lane}", daemon=True)
            for lane in lanes
        ]
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        self._stop.set()
        _wake.set()
        for t in self._threads:
            t.join(timeout=10)

    def _loop(self, lane: str) -> None:
        ensure_table(self.db)
        lock = f"recall_jobs_lane_{lane}"
        while not self._stop.is_set():
            try:
                if self._has_queued(lane):
                    self._drain(lane, lock)
            except (DatabaseUnavailable, psycopg.OperationalError):
                pass  # the server is away; try again on the next round
            except Exception:  # a worker must never die
                traceback.print_exc()
            _wake.wait(POLL_SECONDS)
            _wake.clear()

    def _has_queued(self, lane: str) -> bool:
        row = self.db.fetchone(
            "SELECT EXISTS (SELECT 1 FROM recall_jobs WHERE lane = %s"
            " AND state NOT IN ('done', 'failed'))",
            (lane,),
        )
        return bool(row and row[0])

    def _drain(self, lane: str, lock: str) -> None:
        """Hold the lane's lock on a connection of our own while jobs are queued."""
        with psycopg.connect(self.db.conninfo, autocommit=True, connect_timeout=10) as conn:
            got = conn.execute("SELECT pg_try_advisory_lock(hashtext(%s))", (lock,)).fetchone()
            if not (got and got[0]):
                return  # another process runs this lane
            self._requeue_interrupted(conn, lane)
            while not self._stop.is_set():
                row = conn.execute(
                    f"UPDATE recall_jobs SET state = 'loading', started_at = now(),"
                    f" worker = %s, attempts = attempts + 1"
                    f" WHERE id = (SELECT id FROM recall_jobs WHERE lane = %s"
                    f"   AND state = 'queued' ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)"
                    f" RETURNING {COLUMNS}",
                    (worker_name(), lane),
                ).fetchone()
                if row is None:
                    return
                self._run(_job(row))

    def _requeue_interrupted(self, conn: psycopg.Connection, lane: str) -> None:
        """Jobs marked running in a lane whose lock we now hold lost their worker."""
        conn.execute(
            "UPDATE recall_jobs SET state = CASE WHEN attempts >= %s THEN 'failed'"
            " ELSE 'queued' END, error = CASE WHEN attempts >= %s THEN"
            " 'interrupted ' || attempts || ' times (the process running it stopped)'"
            " END, backend_pid = NULL WHERE lane = %s AND state = ANY(%s)",
            (MAX_ATTEMPTS, MAX_ATTEMPTS, lane, list(RUNNING)),
        )

    def _run(self, job: Job) -> None:
        try:
            run(self.db, self.ds, job)
        except Exception as e:  # shown on the page; the job can be requested again
            error = str(e) if isinstance(e, HarnessError) else f"{type(e).__name__}: {e}"
            try:
                _set(self.db, job.id, state="failed", error=error.strip(), finished_at="now")
            except (DatabaseUnavailable, psycopg.Error):
                pass  # the server went away; the next worker requeues the job
            traceback.print_exc()
        else:
            _set(self.db, job.id, state="done", finished_at="now")


def wait(db: Database, job: Job, timeout: float = 600) -> Job:
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


# ---------------------------------------------------------------------------------------
# What is ready: every size at a glance (the home page, `make prepare`)


@dataclass(frozen=True)
class SizeState:
    n: int
    state: str  # "ready", "building", "queued", "failed" or "not built"
    detail: str


OVERVIEW_SQL = """SELECT t.n, t.real_rows, b.kind, b.params, b.build_seconds,
       EXISTS (SELECT 1 FROM recall_truths r WHERE r.table_name = t.name
               AND r.loaded_at = t.loaded_at AND r.queries = %(queries)s) AS truth
FROM recall_tables t
LEFT JOIN recall_index_builds b
       ON b.table_name = t.name AND to_regclass(b.index_name) IS NOT NULL
WHERE t.fingerprint = %(fingerprint)s AND to_regclass(t.name) IS NOT NULL"""


def sizes_overview(db: Database, ds: Dataset, sizes: tuple[int, ...] = recall_tables.SIZES):
    """Each size's state: ready (table, index and ground truth), building or queued (with
    what is ahead of it), failed, or not built yet."""
    recall_tables.ensure_meta(db)
    truths.ensure_table(db)
    ensure_table(db)
    rows = db.fetchall(
        OVERVIEW_SQL, {"queries": ds.queries_fingerprint, "fingerprint": ds.fingerprint()}
    )
    tables = {r[0]: r for r in rows}
    newest = {
        j.n: j
        for j in map(
            _job,
            db.fetchall(f"SELECT DISTINCT ON (n) {COLUMNS} FROM recall_jobs ORDER BY n, id DESC"),
        )
    }
    out = []
    for n in sorted(set(sizes) | set(tables)):
        job = newest.get(n)
        row = tables.get(n)
        if job is not None and job.state == "queued":
            ahead = position(db, job)
            out.append(SizeState(n, "queued", f"{ahead} ahead in the {job.lane}-table queue"))
        elif job is not None and job.running:
            out.append(SizeState(n, "building", progress(db, job).text))
        elif row is not None and row[2] is not None and row[5]:
            spec = IndexSpec(row[2], **row[3]).label() if row[3] else row[2]
            built = f", built in {row[4]:.1f} s" if row[4] else ""
            out.append(SizeState(n, "ready", f"{spec}{built}; {row[1]:,} real rows"))
        elif job is not None and job.state == "failed":
            out.append(SizeState(n, "failed", job.error or "failed"))
        else:
            estimate = ds.embedding_estimate(n)
            first = f"; {estimate.short()}" if estimate else ""
            out.append(SizeState(n, "not built", "built when someone opens it" + first))
    return out
