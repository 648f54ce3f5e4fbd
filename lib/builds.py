"""Background preparation of recall tables, shared by every session of one app process.

`BuildManager.request(n, spec)` starts (or joins) the job that loads size `n`, gives it the
index `spec`, and computes the ground truth of the query set on it. Jobs run in threads of
the server process, so they go on when the learner leaves the page; two sessions asking for
the same thing get the same job. At most one large job (over `BIG` rows) runs at a time on
these 2 cores; small ones start at once. Across processes, the advisory locks in
lib/datasets.py make a second builder wait for the first and then find the work done.

A job's progress combines its own count of rows sent by COPY with the server's own report
(`pg_stat_progress_copy`, `pg_stat_progress_create_index`), so a build started by another
process shows its index progress too.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field

from lib import datasets
from lib.database import Database
from lib.datasets import Dataset, IndexSpec
from lib.recall import Answers, HarnessError, generated_target, ground_truth

BIG = 60_000


@dataclass
class Job:
    n: int
    spec: IndexSpec
    table: str
    state: str = "queued"  # queued, loading, indexing, truth, done, failed
    rows_loaded: int = 0
    truth_done: int = 0
    truth_total: int = 0
    backend_pid: int | None = None
    notices: list[str] = field(default_factory=list)
    error: str | None = None
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    report: datasets.BuildReport | None = None

    @property
    def key(self) -> tuple[int, IndexSpec]:
        return (self.n, self.spec)

    @property
    def running(self) -> bool:
        return self.state not in ("done", "failed")

    def elapsed(self) -> float:
        return (self.finished or time.monotonic()) - self.started


@dataclass(frozen=True)
class Progress:
    """What a progress bar shows: a fraction (or None when unknown) and a sentence."""

    fraction: float | None
    text: str


class BuildManager:
    """Jobs by (size, index spec) and ground truths by table, for one Database and Dataset."""

    def __init__(self, db: Database, ds: Dataset):
        self.db = db
        self.ds = ds
        self._lock = threading.Lock()
        self._big = threading.Semaphore(1)
        self._jobs: dict[tuple[int, IndexSpec], Job] = {}
        self._truths: dict[tuple[str, object], Answers] = {}

    def request(self, n: int, spec: IndexSpec | None = None) -> Job:
        """The job preparing (n, spec): the running or finished one, or a new one."""
        spec = (spec or IndexSpec()).resolved(n)
        spec.check()
        with self._lock:
            job = self._jobs.get((n, spec))
            if job is not None and job.state != "failed":
                if job.running or self._fresh(job):
                    return job
            job = Job(n, spec, datasets.table_name(n, self.ds.dimension))
            self._jobs[job.key] = job
        threading.Thread(
            target=self._run, args=(job,), name=f"build-{job.table}", daemon=True
        ).start()
        return job

    def _fresh(self, job: Job) -> bool:
        status = datasets.table_status(self.db, self.ds, job.n)
        return status.ready(job.spec) and self.truth(status) is not None

    def active(self, n: int) -> Job | None:
        """The running job for size `n`, if any (whatever its index)."""
        with self._lock:
            running = [j for j in self._jobs.values() if j.n == n and j.running]
        return running[-1] if running else None

    def last(self, n: int) -> Job | None:
        with self._lock:
            jobs = [j for j in self._jobs.values() if j.n == n]
        return max(jobs, key=lambda j: j.started) if jobs else None

    def truth(self, status: datasets.TableStatus) -> Answers | None:
        """The ground truth computed on this table as loaded now, if any."""
        with self._lock:
            return self._truths.get((status.table, status.loaded_at))

    def _run(self, job: Job) -> None:
        big = job.n > BIG
        try:
            if big:
                job.state = "queued"
                self._big.acquire()
            job.started = time.monotonic()
            try:
                self._prepare(job)
            finally:
                if big:
                    self._big.release()
            job.state = "done"
        except Exception as e:  # shown on the page; the job can be requested again
            job.error = (
                str(e) if isinstance(e, HarnessError) else f"{type(e).__name__}: {e}".strip()
            )
            job.state = "failed"
            traceback.print_exc()
        finally:
            job.finished = time.monotonic()

    def _prepare(self, job: Job) -> None:
        db, ds = self.db, self.ds

        def backend(pid: int) -> None:
            job.backend_pid = pid

        def loaded(done: int, total: int) -> None:
            job.rows_loaded = done

        job.state = "loading"
        seconds = datasets.load_table(db, ds, job.n, progress=loaded, on_backend=backend)
        job.state = "indexing"
        job.report = datasets.build_index(
            db, ds, job.n, job.spec, on_notice=job.notices.append, on_backend=backend
        )
        job.report.loaded = seconds is not None
        job.report.load_seconds = seconds
        status = datasets.table_status(db, ds, job.n)
        if self.truth(status) is None:
            job.state = "truth"
            job.truth_total = len(ds.queries)

            def counted(done: int, total: int) -> None:
                job.truth_done = done

            truth = ground_truth(db, generated_target(status.table), ds.queries, progress=counted)
            with self._lock:
                self._truths[(status.table, status.loaded_at)] = truth

    def progress(self, job: Job) -> Progress:
        """Where `job` stands, in the server's own words where it has them."""
        n = job.n
        if job.state == "queued":
            return Progress(0.0, f"Waiting for another large build to finish before {n:,} rows.")
        if job.state == "loading":
            server_rows = (
                datasets.copy_progress(self.db, job.backend_pid) if job.backend_pid else None
            )
            rows = max(job.rows_loaded, server_rows or 0)
            if rows == 0:
                return Progress(0.0, f"Generating and loading {n:,} rows (binary COPY)…")
            return Progress(
                min(1.0, rows / n), f"Loading rows with binary COPY: {rows:,} of {n:,}."
            )
        if job.state == "indexing":
            p = datasets.index_progress(self.db, job.table)
            label = job.spec.label()
            if p is None:
                return Progress(None, f"Building the {label} index…")
            frac = p.fraction()
            done = f"{p.tuples_done:,} of {n:,} vectors" if p.tuples_done else ""
            return Progress(
                frac,
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


def wait(job: Job, timeout: float = 600, poll: Callable[[], None] | None = None) -> Job:
    """Block until `job` ends (for the command line and tests)."""
    deadline = time.monotonic() + timeout
    while job.running and time.monotonic() < deadline:
        if poll:
            poll()
        time.sleep(0.1)
    return job
