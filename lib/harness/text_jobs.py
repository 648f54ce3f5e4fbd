"""Building a size's text table (lib/dataset/text_tables.py), as a kind of job in the one
queue (lib/core/jobs.py).

Its key is the size, so everyone asking for the same size's text side gets one build; its
lane is the size's (`size_jobs.lane_of`), so it never shares the cores with a recall-table
build of the same lane. It records what it did: `built`, `load_seconds`, `index_seconds`,
`rows`, `table_bytes` and `index_bytes`.
"""

from __future__ import annotations

from lib.core import jobs
from lib.core.database import Database
from lib.core.jobs import Progress
from lib.dataset import builds, text_tables
from lib.dataset.passages import Dataset
from lib.harness.size_jobs import lane_of

KIND = "text_table"


class Job(jobs.View):
    """A text-table job: the queue's fields, its size, and what it recorded."""

    FACTS = {"built": False} | dict.fromkeys(
        ("load_seconds", "index_seconds", "rows", "table_bytes", "index_bytes")
    )


_reader = jobs.Reader(Job, KIND)
get, last, live, wait = _reader.get, _reader.last, _reader.live, _reader.wait


def request(db: Database, n: int) -> Job:
    """The live job building size `n`'s text table, or a new one in the queue."""
    return Job(jobs.request(db, KIND, {"n": n}, lane_of(n), text_tables.table_name(n)))


def progress(db: Database, job: Job) -> Progress:
    """Where `job` stands, read now from its row and the server's progress views."""
    n = job.n
    if (before := jobs.waiting(db, job, f"the text of {n:,} rows")) is not None:
        return before
    if job.state in ("loading", "starting"):
        return builds.load_step(db, job.backend_pid, n, "the passages")
    if job.state == "indexing":
        return builds.index_step(db, job.table_name, "the GIN index", None, job.elapsed())
    return jobs.ended(job, f"The text of {n:,} rows", f"The text of {n:,} rows is ready.") or (
        Progress(None, job.state)
    )


def run(ctx: jobs.Context) -> None:
    """Build the text table of the job's size unless it is there, recording what it cost."""
    db, ds = ctx.db, ctx.env
    assert isinstance(ds, Dataset)
    n = int(ctx.job.key["n"])
    if text_tables.text_status(db, ds, n) is None:
        built, now = text_tables.build(db, ds, n, on_phase=ctx.step, on_backend=ctx.backend)
        if not now:
            return
        ctx.record(
            built=True, load_seconds=built.load_seconds, index_seconds=built.index_seconds,
            rows=built.rows, table_bytes=built.table_bytes, index_bytes=built.index_bytes,
        )  # fmt: skip


jobs.register(KIND, run)
