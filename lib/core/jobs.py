"""The lab's one job queue: long work (loading, index builds, ground truths, sweeps) kept in
PostgreSQL, so every app process, `make prepare` and the command lines share it.

A kind of job supplies only its steps: `register(kind, run)`, where `run(ctx)` does the work
and reports through its `Context`. The queue supplies the rest:

- `request` joins the live job of (kind, key) or queues a new one; a unique index allows one
  live job per key, so thirty people asking for the same build get one job;
- lanes: a `Worker` runs one thread per lane, and a lane's session advisory lock lets one
  job at a time run in it across every process, so two builds never share the cores;
- retries: a worker whose process dies loses the lane's lock with its connection, and the
  next worker to take the lane puts the interrupted job back in the queue (or fails it after
  `MAX_ATTEMPTS`);
- progress: the job's row (its state, counters and facts), read by any process;
- cancel: `cancel` ends a queued job at once; a running one is asked to stop at its next
  step and its current statement is cancelled on the server (`pg_cancel_backend`), so its
  transaction rolls back and nothing is left half-built.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from lib.core.database import Database, DatabaseUnavailable

MAX_ATTEMPTS = 3
POLL_SECONDS = 1.0
ENDED = ("done", "failed", "cancelled")

DDL = """CREATE TABLE IF NOT EXISTS lab_jobs (
    id bigserial PRIMARY KEY,
    kind text NOT NULL,
    key jsonb NOT NULL,
    lane text NOT NULL,
    table_name text,
    state text NOT NULL DEFAULT 'queued',
    requested_at timestamptz NOT NULL DEFAULT now(),
    started_at timestamptz,
    finished_at timestamptz,
    worker text,
    backend_pid integer,
    done integer NOT NULL DEFAULT 0,
    total integer NOT NULL DEFAULT 0,
    attempts integer NOT NULL DEFAULT 0,
    cancel_requested boolean NOT NULL DEFAULT false,
    facts jsonb NOT NULL DEFAULT '{}',
    notices text[] NOT NULL DEFAULT '{}',
    error text
);
CREATE UNIQUE INDEX IF NOT EXISTS lab_jobs_live ON lab_jobs (kind, key)
    WHERE state NOT IN ('done', 'failed', 'cancelled');
CREATE INDEX IF NOT EXISTS lab_jobs_lane ON lab_jobs (lane, id)
    WHERE state NOT IN ('done', 'failed', 'cancelled')"""

COLUMNS = (
    "id, kind, key, lane, table_name, state, requested_at, started_at, finished_at, worker,"
    " backend_pid, done, total, attempts, cancel_requested, facts, notices, error"
)
LIVE = "state NOT IN ('done', 'failed', 'cancelled')"


@dataclass(frozen=True)
class Job:
    """One row of lab_jobs, as read. `state` is 'queued', a step the kind names while it
    runs, or one of ENDED; `facts` are what the job recorded (what it built, its timings)."""

    id: int
    kind: str
    key: dict
    lane: str
    table_name: str | None
    state: str
    requested_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    worker: str | None
    backend_pid: int | None
    done: int
    total: int
    attempts: int
    cancel_requested: bool
    facts: dict = field(default_factory=dict)
    notices: tuple[str, ...] = ()
    error: str | None = None

    @property
    def running(self) -> bool:
        return self.state not in ENDED

    def elapsed(self) -> float:
        if self.started_at is None:
            return 0.0
        end = self.finished_at or datetime.now(self.started_at.tzinfo)
        return (end - self.started_at).total_seconds()

    def fact(self, name: str, default: Any = None) -> Any:
        return self.facts.get(name, default)


def _job(row: tuple) -> Job:
    values = list(row)
    values[16] = tuple(values[16] or ())
    return Job(*values)


class View:
    """A job as one kind reads it: the queue's fields, the fields of its key (`view.n` is
    `job.key["n"]`), the facts a subclass names in FACTS (name: value until recorded), and
    the properties a subclass adds."""

    FACTS: dict[str, Any] = {}

    def __init__(self, job: Job):
        self.job = job

    def __getattr__(self, name: str) -> Any:
        if name == "job":
            raise AttributeError(name)
        if name in self.job.key:
            return self.job.key[name]
        if name in self.FACTS:
            return self.job.fact(name, self.FACTS[name])
        return getattr(self.job, name)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, View) and other.job == self.job

    def __hash__(self) -> int:
        return hash(self.job.id)


@dataclass(frozen=True)
class Reader:
    """How a kind's module reads its jobs, as its `View`: by id, the newest for a size (any
    state, or live only), and waiting for one to end."""

    view: type
    kind: str

    def get(self, db: Database, job_id: int) -> Any:
        job = get(db, job_id)
        return self.view(job) if job is not None and job.kind == self.kind else None

    def last(self, db: Database, n: int) -> Any:
        """The newest job for size `n`, in any state."""
        found = newest(db, self.kind, {"n": n})
        return self.view(found) if found is not None else None

    def live(self, db: Database, n: int) -> Any:
        """The newest queued or running job for size `n`."""
        found = find(db, self.kind, {"n": n}, live=True)
        return self.view(found[0]) if found else None

    def wait(self, db: Database, job: View, timeout: float = 900) -> Any:
        """Block until `job` ends (command lines and tests); the job as it ended."""
        return self.view(wait(db, job.job, timeout))


@dataclass(frozen=True)
class Progress:
    """What a progress bar shows: a fraction (or None when unknown) and a sentence."""

    fraction: float | None
    text: str


def waiting(db: Database, job: Job | View, what: str) -> Progress | None:
    """A job's progress before it runs: queued (behind how many in its lane) or starting;
    None once it runs."""
    if job.state == "queued":
        ahead = position(db, job.job if isinstance(job, View) else job)
        where = f"in the {job.lane}-table queue" if job.lane in ("small", "big") else "queued"
        behind = f"{ahead} job{'s' if ahead != 1 else ''} ahead of it {where}"
        return Progress(0.0, f"Queued for {what}: " + (behind + "." if ahead else "starting…"))
    if job.state == "starting":
        return Progress(0.0, f"{what}: starting…")
    return None


def counted(job: Job | View, text: str) -> Progress:
    """A step's progress told by the job's counters."""
    return Progress(job.done / max(1, job.total), text)


def ended(job: Job | View, what: str, ready: str) -> Progress | None:
    """An ended job's progress: `what` failed (with its error) or was cancelled, or `ready`;
    None while it runs."""
    if job.state == "failed":
        return Progress(None, f"{what} failed: {job.error}")
    if job.state == "cancelled":
        return Progress(None, f"{what} was cancelled; nothing half-built was kept.")
    if job.state == "done":
        return Progress(1.0, ready)
    return None


class Cancelled(Exception):
    """The job was cancelled while it ran."""


class Stopped(Exception):
    """The worker is stopping; the job goes back to the queue for the next worker."""


@dataclass
class Context:
    """What a running job reports through. `step` and `count` write the job's row and raise
    Cancelled once a cancel was asked, so every progress report is also a cancel check."""

    db: Database
    job: Job
    env: Any = None
    stopping: Callable[[], bool] = lambda: False

    def _update(self, fields: dict[str, Any]) -> None:
        assignments = ", ".join(f"{k} = %s" for k in fields)
        row = self.db.fetchone(
            f"UPDATE lab_jobs SET {assignments} WHERE id = %s RETURNING cancel_requested",
            (*fields.values(), self.job.id),
        )
        if row and row[0]:
            raise Cancelled
        if self.stopping():
            raise Stopped

    def step(self, state: str, **counters: int) -> None:
        """The job is now at `state` (with `done`/`total` counters, if given)."""
        self._update({"state": state, **counters})

    def count(self, done: int, total: int | None = None) -> None:
        """How far the current step is."""
        self._update({"done": done} if total is None else {"done": done, "total": total})

    def backend(self, pid: int) -> None:
        """The server process running the job's current statement (for progress and cancel)."""
        self._update({"backend_pid": pid})

    def record(self, **facts: Any) -> None:
        """Add `facts` (JSON values) to what the job records."""
        self.db.fetchall(
            "UPDATE lab_jobs SET facts = facts || %s WHERE id = %s RETURNING 1",
            (Jsonb(facts), self.job.id),
        )

    def notice(self, text: str) -> None:
        self.db.fetchall(
            "UPDATE lab_jobs SET notices = notices || %s WHERE id = %s RETURNING 1",
            ([text], self.job.id),
        )


Runner = Callable[[Context], None]
_kinds: dict[str, Runner] = {}
_wake = threading.Event()  # set by request(): a worker in this process looks at once


def register(kind: str, run: Runner) -> None:
    """Make `kind` runnable by this process's workers (each kind's module does it once)."""
    _kinds[kind] = run


def kinds() -> tuple[str, ...]:
    return tuple(sorted(_kinds))


def ensure_table(db: Database) -> None:
    db.ensure("lab_jobs", DDL)


def request(
    db: Database,
    kind: str,
    key: dict,
    lane: str,
    table_name: str | None = None,
    facts: dict | None = None,
) -> Job:
    """The live job of (kind, key), or a new one queued in `lane` with `facts` recorded from
    the start (such as the disk it will take, `disk_bytes`, which `pending_disk_bytes` adds)."""
    ensure_table(db)
    for _ in range(5):
        row = db.fetchone(
            f"INSERT INTO lab_jobs (kind, key, lane, table_name, facts)"
            f" VALUES (%s, %s, %s, %s, %s)"
            f" ON CONFLICT (kind, key) WHERE {LIVE} DO NOTHING RETURNING {COLUMNS}",
            (kind, Jsonb(key), lane, table_name, Jsonb(facts or {})),
        )
        if row is None:
            row = db.fetchone(
                f"SELECT {COLUMNS} FROM lab_jobs WHERE kind = %s AND key = %s AND {LIVE}",
                (kind, Jsonb(key)),
            )
        if row is not None:
            _wake.set()
            return _job(row)
    raise RuntimeError(f"could not queue a {kind} job")  # pragma: no cover


def pending_disk_bytes(db: Database, *, besides: tuple[str, dict] | None = None) -> int:
    """The disk the live jobs said they will take (their `disk_bytes` fact), in every process,
    leaving out the job of `besides` (kind, key) if it is live."""
    ensure_table(db)
    kind, key = besides or ("", {})
    row = db.fetchone(
        "SELECT coalesce(sum((facts->>'disk_bytes')::bigint), 0) FROM lab_jobs"
        f" WHERE {LIVE} AND NOT (kind = %s AND key = %s)",
        (kind, Jsonb(key)),
    )
    return int(row[0]) if row else 0


def get(db: Database, job_id: int) -> Job | None:
    ensure_table(db)
    row = db.fetchone(f"SELECT {COLUMNS} FROM lab_jobs WHERE id = %s", (job_id,))
    return _job(row) if row else None


def find(db: Database, kind: str, contains: dict | None = None, *, live: bool = False) -> list[Job]:
    """Jobs of `kind` whose key contains `contains`, newest first (only live ones if `live`)."""
    ensure_table(db)
    rows = db.fetchall(
        f"SELECT {COLUMNS} FROM lab_jobs WHERE kind = %s AND key @> %s"
        + (f" AND {LIVE}" if live else "")
        + " ORDER BY id DESC",
        (kind, Jsonb(contains or {})),
    )
    return [_job(r) for r in rows]


def newest(db: Database, kind: str, contains: dict, *, state: str | None = None) -> Job | None:
    """The newest job of `kind` whose key contains `contains` (in `state`, if given): one
    row read, however many times the same work was asked for before."""
    ensure_table(db)
    row = db.fetchone(
        f"SELECT {COLUMNS} FROM lab_jobs WHERE kind = %s AND key @> %s"
        + (" AND state = %s" if state is not None else "")
        + " ORDER BY id DESC LIMIT 1",
        (kind, Jsonb(contains), *((state,) if state is not None else ())),
    )
    return _job(row) if row else None


def newest_per_key(db: Database, kind: str, field_name: str) -> dict[Any, Job]:
    """The newest job of `kind` for each value of its key's `field_name`."""
    ensure_table(db)
    rows = db.fetchall(
        sql.SQL(
            "SELECT DISTINCT ON (key -> {f}) {cols} FROM lab_jobs WHERE kind = %s"
            " ORDER BY key -> {f}, id DESC"
        )
        .format(f=sql.Literal(field_name), cols=sql.SQL(COLUMNS))
        .as_string(),
        (kind,),
    )
    return {j.key.get(field_name): j for j in map(_job, rows)}


def queue(db: Database) -> list[Job]:
    """Every queued or running job, oldest first."""
    ensure_table(db)
    rows = db.fetchall(f"SELECT {COLUMNS} FROM lab_jobs WHERE {LIVE} ORDER BY id")
    return [_job(r) for r in rows]


def position(db: Database, job: Job) -> int:
    """How many jobs of the same lane are queued or running ahead of `job`."""
    row = db.fetchone(
        f"SELECT count(*) FROM lab_jobs WHERE lane = %s AND id < %s AND {LIVE}",
        (job.lane, job.id),
    )
    return int(row[0]) if row else 0


def cancel(db: Database, job_id: int) -> Job | None:
    """Cancel a job: a queued one ends now; a running one is asked to stop, and the statement
    its server process runs is cancelled. The job as it is after the request."""
    ensure_table(db)
    db.fetchall(
        "UPDATE lab_jobs SET state = 'cancelled', finished_at = now(), cancel_requested = true"
        " WHERE id = %s AND state = 'queued' RETURNING 1",
        (job_id,),
    )
    row = db.fetchone(
        f"UPDATE lab_jobs SET cancel_requested = true WHERE id = %s AND {LIVE}"
        " RETURNING backend_pid",
        (job_id,),
    )
    if row and row[0]:
        db.fetchall("SELECT pg_cancel_backend(%s)", (row[0],))
    return get(db, job_id)


def wait(db: Database, job: Job, timeout: float = 900) -> Job:
    """Block until `job` ends (for the command lines and tests); the job as it ended."""
    deadline = time.monotonic() + timeout
    current: Job | None = job
    while time.monotonic() < deadline:
        current = get(db, job.id)
        if current is None or not current.running:
            break
        time.sleep(0.2)
    assert current is not None
    return current


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def error_text(e: BaseException) -> str:
    """What a failed job says: the message of an error the lab raised on purpose (one whose
    class sets `shown_as_is`), else the exception's type and message."""
    if getattr(e, "shown_as_is", False):
        return str(e).strip()
    return f"{type(e).__name__}: {e}".strip()


class Worker:
    """Runs queued jobs of the kinds registered in this process: one thread per lane, each
    holding its lane's lock only while it has work, so any process may run the next job."""

    def __init__(self, db: Database, env: Any = None, lanes: Iterable[str] = ("small", "big")):
        self.db = db
        self.env = env
        self.lanes = tuple(lanes)
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._loop, args=(lane,), name=f"jobs-{lane}", daemon=True)
            for lane in self.lanes
        ]
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        self._stop.set()
        _wake.set()
        for t in self._threads:
            t.join(timeout=10)

    def _loop(self, lane: str) -> None:
        while not self._stop.is_set():
            try:
                ensure_table(self.db)
                if self._has_queued(lane):
                    self._drain(lane)
            except (DatabaseUnavailable, psycopg.OperationalError):
                pass  # the server is away; try again on the next round
            except Exception:  # a worker must never die
                traceback.print_exc()
            _wake.wait(POLL_SECONDS)
            _wake.clear()

    def _has_queued(self, lane: str) -> bool:
        row = self.db.fetchone(
            f"SELECT EXISTS (SELECT 1 FROM lab_jobs WHERE lane = %s AND kind = ANY(%s) AND {LIVE})",
            (lane, list(_kinds)),
        )
        return bool(row and row[0])

    def _drain(self, lane: str) -> None:
        """Hold the lane's lock on a connection of our own while jobs are queued."""
        with psycopg.connect(self.db.conninfo, autocommit=True, connect_timeout=10) as conn:
            got = conn.execute(
                "SELECT pg_try_advisory_lock(hashtext(%s))", (f"lab_jobs_lane_{lane}",)
            ).fetchone()
            if not (got and got[0]):
                return  # another process runs this lane
            self._requeue_interrupted(conn, lane)
            while not self._stop.is_set():
                row = conn.execute(
                    f"UPDATE lab_jobs SET state = 'starting', started_at = now(), worker = %s,"
                    f" attempts = attempts + 1, backend_pid = NULL"
                    f" WHERE id = (SELECT id FROM lab_jobs WHERE lane = %s AND state = 'queued'"
                    f"   AND kind = ANY(%s) ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)"
                    f" RETURNING {COLUMNS}",
                    (worker_name(), lane, list(_kinds)),
                ).fetchone()
                if row is None:
                    return
                self._run(_job(row))

    def _requeue_interrupted(self, conn: psycopg.Connection, lane: str) -> None:
        """Jobs marked running in a lane whose lock we now hold lost their worker. A statement
        such a job started may still run on the server: it is ended first (and waited for),
        so that the job, run again, never shares the cores with its own ghost."""
        ghosts = conn.execute(
            "SELECT a.pid FROM lab_jobs j JOIN pg_stat_activity a ON a.pid = j.backend_pid"
            " WHERE j.lane = %s AND j.state <> 'queued' AND j.state NOT IN ('done', 'failed',"
            " 'cancelled') AND a.datname = current_database() AND a.pid <> pg_backend_pid()"
            " AND a.state = 'active' AND a.query_start >= j.started_at",
            (lane,),
        ).fetchall()
        pids = [pid for (pid,) in ghosts]
        for pid in pids:
            conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
        deadline = time.monotonic() + 30
        while pids and time.monotonic() < deadline:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)", (pids,)
            ).fetchone()
            if not row or not row[0]:
                break
            time.sleep(0.1)
        conn.execute(
            "UPDATE lab_jobs SET state = CASE WHEN cancel_requested THEN 'cancelled'"
            " WHEN attempts >= %s THEN 'failed' ELSE 'queued' END,"
            " error = CASE WHEN cancel_requested THEN NULL WHEN attempts >= %s THEN"
            " 'interrupted ' || attempts || ' times (the process running it stopped)' END,"
            " finished_at = CASE WHEN cancel_requested OR attempts >= %s THEN now() END,"
            f" backend_pid = NULL WHERE lane = %s AND state <> 'queued' AND {LIVE}",
            (MAX_ATTEMPTS, MAX_ATTEMPTS, MAX_ATTEMPTS, lane),
        )

    def _end(self, job: Job, state: str, error: str | None = None) -> None:
        try:
            self.db.fetchall(
                "UPDATE lab_jobs SET state = %s, error = %s, finished_at = now(),"
                " backend_pid = NULL WHERE id = %s RETURNING 1",
                (state, error, job.id),
            )
        except (DatabaseUnavailable, psycopg.Error):
            pass  # the server went away; the next worker requeues the job

    def _requeue(self, job: Job) -> None:
        try:
            self.db.fetchall(
                "UPDATE lab_jobs SET state = 'queued', backend_pid = NULL,"
                " attempts = greatest(attempts - 1, 0) WHERE id = %s RETURNING 1",
                (job.id,),
            )
        except (DatabaseUnavailable, psycopg.Error):
            pass

    def _run(self, job: Job) -> None:
        ctx = Context(self.db, job, self.env, self._stop.is_set)
        try:
            _kinds[job.kind](ctx)
        except Stopped:
            self._requeue(job)
        except Exception as e:
            current = get(self.db, job.id) if not isinstance(e, Cancelled) else None
            if isinstance(e, Cancelled) or (current is not None and current.cancel_requested):
                self._end(job, "cancelled")
                return
            self._end(job, "failed", error_text(e))  # shown on the page; ask again to retry
            traceback.print_exc()
        else:
            self._end(job, "done")
