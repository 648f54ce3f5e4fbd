"""The Index tuning page's heavy work as jobs kept in PostgreSQL, shared by every process:
building a configuration (lib/config_tables.py) and sweeping one (lib/frontier.py).

Jobs are rows of `tuning_jobs`; a unique index allows one live job per (kind, size,
configuration, parameters), so thirty people asking for the same build or the same sweep get
one. A `Worker` in each app process runs them, one at a time across all processes (a session
advisory lock), and each job also takes the recall queue's lane for its size (lib/jobs.py's
lock), so a configuration's build never shares the 2 cores with a recall-table build, and a
sweep's latencies are never measured during one. A worker whose process dies loses its locks
with its connection; the next worker puts its job back in the queue.

Progress is read from the job's row and, while an index builds, from the server's own
`pg_stat_progress_create_index`, whichever process runs it.
"""

from __future__ import annotations

import threading
import time
import traceback
from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg.types.json import Jsonb

from lib import builds, config_tables, frontier, truths
from lib.database import Database, DatabaseUnavailable
from lib.dataset import Dataset
from lib.index_configs import DEFAULT_OVERSAMPLE, Config, copy_table
from lib.jobs import lane_of, worker_name
from lib.recall import HarnessError, K
from lib.recall_tables import table_status

LOCK = "tuning_jobs"
POLL_SECONDS = 1.0
MAX_ATTEMPTS = 3
RUNNING = ("waiting", "starting", "copying", "indexing", "sweeping")

DDL = """CREATE TABLE IF NOT EXISTS tuning_jobs (
    id bigserial PRIMARY KEY,
    kind text NOT NULL,
    n integer NOT NULL,
    config jsonb NOT NULL,
    params jsonb NOT NULL DEFAULT '{}',
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
    result bigint,
    error text
);
CREATE UNIQUE INDEX IF NOT EXISTS tuning_jobs_live ON tuning_jobs (kind, n, config, params)
    WHERE state NOT IN ('done', 'failed')"""

COLUMNS = (
    "id, kind, n, config, params, table_name, state, requested_at, started_at, finished_at,"
    " worker, backend_pid, done, total, attempts, result, error"
)


@dataclass(frozen=True)
class Job:
    id: int
    kind: str  # build or sweep
    n: int
    config: Config
    params: dict
    table_name: str
    state: str  # queued, waiting, starting, copying, indexing, sweeping, done, failed
    requested_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    worker: str | None
    backend_pid: int | None
    done: int
    total: int
    attempts: int
    result: int | None
    error: str | None

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
    values[3] = Config.from_json(values[3])
    return Job(*values)


def ensure_table(db: Database) -> None:
    def create() -> None:
        with db.transaction() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(hashtext('tuning_jobs'))")
            conn.execute(DDL)

    db.once("tuning_jobs", create)


_wake = threading.Event()


def _request(db: Database, kind: str, n: int, config: Config, params: dict, table: str) -> Job:
    ensure_table(db)
    key = (kind, n, Jsonb(config.to_json()), Jsonb(params))
    for _ in range(5):
        row = db.fetchone(
            f"INSERT INTO tuning_jobs (kind, n, config, params, table_name)"
            f" VALUES (%s, %s, %s, %s, %s) ON CONFLICT (kind, n, config, params)"
            f" WHERE state NOT IN ('done', 'failed') DO NOTHING RETURNING {COLUMNS}",
            (*key, table),
        )
        if row is None:
            row = db.fetchone(
                f"SELECT {COLUMNS} FROM tuning_jobs WHERE kind = %s AND n = %s AND config = %s"
                " AND params = %s AND state NOT IN ('done', 'failed')",
                key,
            )
        if row is not None:
            _wake.set()
            return _job(row)
    raise RuntimeError(f"could not queue a {kind} job")  # pragma: no cover


def request_build(db: Database, ds: Dataset, n: int, config: Config) -> Job:
    """The live job building `config` for size `n`, or a new one in the queue."""
    config = config.resolved(n)
    config.check()
    return _request(db, "build", n, config, {}, copy_table(n, ds.dimension, config))


def sweep_params(config: Config, oversample: int | None = None) -> dict:
    """A sweep's parameters as a job keys them: the knob's values, k, the oversampling."""
    params: dict = {"values": list(config.sweep_values()), "k": K}
    if config.kind == "binary":
        params["oversample"] = int(oversample or DEFAULT_OVERSAMPLE)
    return params


def request_sweep(
    db: Database, ds: Dataset, n: int, config: Config, oversample: int | None = None
) -> Job:
    """The live job sweeping `config` for size `n`, or a new one in the queue."""
    config = config.resolved(n)
    config.check()
    params = sweep_params(config, oversample)
    return _request(db, "sweep", n, config, params, copy_table(n, ds.dimension, config))


def get(db: Database, job_id: int) -> Job | None:
    ensure_table(db)
    row = db.fetchone(f"SELECT {COLUMNS} FROM tuning_jobs WHERE id = %s", (job_id,))
    return _job(row) if row else None


def live(db: Database, n: int) -> list[Job]:
    """Every queued or running job for size `n`, oldest first."""
    ensure_table(db)
    rows = db.fetchall(
        f"SELECT {COLUMNS} FROM tuning_jobs WHERE n = %s AND state NOT IN ('done', 'failed')"
        " ORDER BY id",
        (n,),
    )
    return [_job(r) for r in rows]


def last_failed(db: Database, n: int, kind: str, config: Config) -> Job | None:
    """The newest job of this kind and configuration, if it failed (else None)."""
    ensure_table(db)
    row = db.fetchone(
        f"SELECT {COLUMNS} FROM tuning_jobs WHERE n = %s AND kind = %s AND config = %s"
        " ORDER BY id DESC LIMIT 1",
        (n, kind, Jsonb(config.resolved(n).to_json())),
    )
    job = _job(row) if row else None
    return job if job is not None and job.state == "failed" else None


@dataclass(frozen=True)
class Progress:
    fraction: float | None
    text: str


def progress(db: Database, job: Job) -> Progress:
    """Where `job` stands, read now."""
    label = job.config.label()
    if job.state == "queued":
        row = db.fetchone(
            "SELECT count(*) FROM tuning_jobs WHERE id < %s AND state NOT IN ('done', 'failed')",
            (job.id,),
        )
        ahead = int(row[0]) if row else 0
        return Progress(0.0, f"Queued: {label}" + (f", {ahead} job(s) ahead." if ahead else "."))
    if job.state == "waiting":
        return Progress(
            0.0, f"{label}: waiting for the recall-table builds of this size's lane to finish."
        )
    if job.state == "starting":
        return Progress(0.0, f"{label}: starting…")
    if job.state == "copying":
        return Progress(
            None, f"Copying the {job.n:,} rows into {job.table_name} ({job.elapsed():.0f} s)…"
        )
    if job.state == "indexing":
        p = builds.index_progress(db, job.table_name)
        if p is None:
            return Progress(None, f"Building the {label} index ({job.elapsed():.0f} s)…")
        done = f", {p.tuples_done:,} of {job.n:,} vectors" if p.tuples_done else ""
        return Progress(
            p.fraction(),
            f"Building the {label} index — server phase “{p.phase}”{done} "
            f"({job.elapsed():.0f} s so far).",
        )
    if job.state == "sweeping":
        knob = frontier.knob_label(job.config.knob)
        return Progress(
            job.done / max(1, job.total),
            f"Sweeping {knob} for {label}: {job.done} of {job.total} values measured.",
        )
    if job.state == "failed":
        return Progress(None, f"{label} failed: {job.error}")
    return Progress(1.0, f"{label}: done.")


# ---------------------------------------------------------------------------------------
# Running jobs


def _set(db: Database, job_id: int, **fields: object) -> None:
    assignments = ", ".join(f"{k} = %s" for k in fields)
    db.fetchall(
        f"UPDATE tuning_jobs SET {assignments} WHERE id = %s RETURNING 1",
        (*fields.values(), job_id),
    )


def run_sweep(
    db: Database,
    ds: Dataset,
    n: int,
    config: Config,
    *,
    oversample: int | None = None,
    values: list[int] | None = None,
    k: int = K,
    queries: int | None = None,
    runs: int = 1,
    source: str = "app",
    progress=None,
) -> frontier.Sweep:
    """Sweep `config` (built) on size `n` against the stored truth, and store the sweep."""
    config = config.resolved(n)
    status = table_status(db, ds, n)
    truth = truths.of_table(db, ds, status, k)
    if truth is None:
        raise HarnessError(f"{status.table} has no stored ground truth yet")
    (built,) = config_tables.statuses(db, ds, n, status, [config])
    if not built.built:
        raise HarnessError(f"{config.label()} is not built for {n:,} rows")
    shape = built.place.query(int(oversample or DEFAULT_OVERSAMPLE))
    qs = ds.queries[: queries or len(ds.queries)]
    result = frontier.sweep(
        db, shape, qs, truth, config=config, index=built.place.index, values=values, k=k,
        runs=runs, progress=progress,
    )  # fmt: skip
    result.n = n
    result.index_built_at = built.built_at
    result.source_loaded_at = status.loaded_at
    result.source = source
    frontier.store(db, result)
    return result


def run(db: Database, ds: Dataset, job: Job) -> None:
    """Do what `job` asks, recording each step in its row."""
    if job.kind == "build":
        config_tables.build_config(
            db, ds, job.n, job.config,
            on_backend=lambda pid: _set(db, job.id, backend_pid=pid),
            on_phase=lambda phase: _set(db, job.id, state=phase),
        )  # fmt: skip
        return
    params = job.params
    values = params.get("values")
    _set(db, job.id, state="sweeping", total=len(values or job.config.sweep_values()), done=0)
    result = run_sweep(
        db, ds, job.n, job.config, oversample=params.get("oversample"), values=values,
        k=params.get("k", K), progress=lambda done, total: _set(db, job.id, done=done),
    )  # fmt: skip
    _set(db, job.id, result=result.id)


class Worker:
    """Runs queued tuning jobs in this process, one at a time across every process."""

    def __init__(self, db: Database, ds: Dataset):
        self.db = db
        self.ds = ds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="tuning-jobs", daemon=True)
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
                    "SELECT EXISTS (SELECT 1 FROM tuning_jobs"
                    " WHERE state NOT IN ('done', 'failed'))"
                )
                if row and row[0]:
                    self._drain()
            except (DatabaseUnavailable, psycopg.OperationalError):
                pass
            except Exception:  # a worker must never die
                traceback.print_exc()
            _wake.wait(POLL_SECONDS)
            _wake.clear()

    def _drain(self) -> None:
        with psycopg.connect(self.db.conninfo, autocommit=True, connect_timeout=10) as conn:
            got = conn.execute("SELECT pg_try_advisory_lock(hashtext(%s))", (LOCK,)).fetchone()
            if not (got and got[0]):
                return
            conn.execute(
                "UPDATE tuning_jobs SET state = CASE WHEN attempts >= %s THEN 'failed'"
                " ELSE 'queued' END, error = CASE WHEN attempts >= %s THEN"
                " 'interrupted ' || attempts || ' times (the process running it stopped)'"
                " END, backend_pid = NULL WHERE state = ANY(%s)",
                (MAX_ATTEMPTS, MAX_ATTEMPTS, list(RUNNING)),
            )
            while not self._stop.is_set():
                row = conn.execute(
                    f"UPDATE tuning_jobs SET state = 'waiting', started_at = now(),"
                    f" worker = %s, attempts = attempts + 1"
                    f" WHERE id = (SELECT id FROM tuning_jobs WHERE state = 'queued'"
                    f"   ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING {COLUMNS}",
                    (worker_name(),),
                ).fetchone()
                if row is None:
                    return
                self._run(conn, _job(row))

    def _run(self, conn: psycopg.Connection, job: Job) -> None:
        lane = f"recall_jobs_lane_{lane_of(job.n)}"
        while not self._stop.is_set():
            got = conn.execute("SELECT pg_try_advisory_lock(hashtext(%s))", (lane,)).fetchone()
            if got and got[0]:
                break
            time.sleep(POLL_SECONDS)
        else:
            return  # stopping; the next worker requeues the job
        try:
            _set(self.db, job.id, state="starting", started_at="now")
            run(self.db, self.ds, job)
        except Exception as e:  # shown on the page; the job can be requested again
            error = str(e) if isinstance(e, HarnessError) else f"{type(e).__name__}: {e}"
            try:
                _set(self.db, job.id, state="failed", error=error.strip(), finished_at="now")
            except (DatabaseUnavailable, psycopg.Error):
                pass
            traceback.print_exc()
        else:
            _set(self.db, job.id, state="done", finished_at="now")
        finally:
            conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (lane,))


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
