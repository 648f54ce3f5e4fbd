"""The Re-embedding page's long work, as two kinds of job in the one queue (lib/core/jobs.py):
the live migration of a demo table (`reembed_demo`: build it, measure the trap, re-embed it
under a stream of queries, cut over, measure before and after) and the drift simulation
(`reembed_drift`), each keyed by its size so that everyone asking for one shares one run;
their reports are stored by lib/lessons/reembed/demo.py."""

from __future__ import annotations

from lib.core import jobs
from lib.core.database import Database
from lib.core.jobs import Progress
from lib.dataset.passages import Dataset
from lib.lessons.reembed import demo

MIGRATION, DRIFT = "reembed_demo", "reembed_drift"
LANE = "small"


class Job(jobs.View):
    """A job of this lesson: the queue's fields and its size."""


migration = jobs.Reader(Job, MIGRATION)
drift = jobs.Reader(Job, DRIFT)


def request(db: Database, kind: str, n: int) -> Job:
    """The live job of `kind` for size `n`, or a new one in the queue."""
    table = demo.table_name(n) if kind == MIGRATION else None
    return Job(jobs.request(db, kind, {"n": n}, LANE, table))


STEPS = {
    "building": "Loading {n:,} passages with their {a} vectors and building its HNSW index…",
    "trap": "Querying the table with {b} queries (the trap), exact scans…",
    "ceiling": "Measuring {b}'s passages per second here (its ceiling)…",
    "idle": "Queries running against the view, before anything changes (idle)…",
    "index build": "CREATE INDEX CONCURRENTLY on the new column, queries still running…",
    "ready": "Every row has a {b} vector and its index is valid; queries still running…",
    "cutover": "Cut over (one transaction); queries still running…",
    "measuring": "Measuring before and after: recall@10, nDCG, index sizes…",
    "planning": "Planning the months: which rows arrive when, which questions are asked…",
    "embedding": "Embedding the labelled questions (once; they are cached)…",
}


def progress(db: Database, job: Job, what: str) -> Progress:
    if (before := jobs.waiting(db, job, what)) is not None:
        return before
    if job.state == "backfill":
        return jobs.counted(job, f"Backfill: {job.done:,} of {job.total:,} rows re-embedded, "
                                 "queries still running…")  # fmt: skip
    if job.state in STEPS:
        return Progress(None, STEPS[job.state].format(n=job.n, a=demo.A, b=demo.B))
    return jobs.ended(job, what, f"{what[0].upper()}{what[1:]}: done.") or Progress(None, job.state)


def _migration(ctx: jobs.Context) -> None:
    ds = ctx.env
    assert isinstance(ds, Dataset)
    demo.measure_migration(ctx.db, ds, int(ctx.job.key["n"]), ctx.step, ctx.count)


def _drift(ctx: jobs.Context) -> None:
    ds = ctx.env
    assert isinstance(ds, Dataset)
    demo.measure_drift(ctx.db, ds, int(ctx.job.key["n"]), ctx.step)


jobs.register(MIGRATION, _migration)
jobs.register(DRIFT, _drift)
