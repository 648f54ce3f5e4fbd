"""Preparing the Filtered search page's tables, as a kind of job in the one queue
(lib/core/jobs.py).

A filtered job prepares one size: the recall table's rows (loaded if missing), the filtered
table beside it (tables.py), the exact filtered ground truth of every category (search.py,
stored in `recall_truths`), then the query sets the page opens on (every selectivity under
every iterative-scan mode at pgvector's defaults, stored in `filtered_runs`), so the first
learner to open a size sees them at once. Its key is the size, so thirty people opening the
same size get one build; it runs in the size's lane, so no recall-table build shares the
cores with it.
"""

from __future__ import annotations

from lib.core import jobs
from lib.core.database import Database
from lib.core.jobs import Progress
from lib.dataset import builds, recall_tables, sizing
from lib.dataset.passages import Dataset
from lib.harness import truths
from lib.harness.size_jobs import lane_of
from lib.lessons.filtered import search, tables

KIND = "filtered"


class Job(jobs.View):
    """A filtered-table job: the queue's fields, its size, and whether it built the table."""

    FACTS = {"built": False}


_reader = jobs.Reader(Job, KIND)
get, last, live, wait = _reader.get, _reader.last, _reader.live, _reader.wait


def request(db: Database, ds: Dataset, n: int) -> Job:
    """The live job preparing size `n`'s filtered table, or a new one in the queue."""
    table = tables.table_name(n, ds.dimension)
    what = f"The filtered table of {n:,} rows"
    facts = sizing.check_queued(db, n, ds.dimension, kind=KIND, key={"n": n}, what=what)
    return Job(jobs.request(db, KIND, {"n": n}, lane_of(n), table, facts))


def progress(db: Database, job: Job) -> Progress:
    """Where `job` stands, read now from its row and the server's progress views."""
    n = f"{job.n:,} rows"
    if (before := jobs.waiting(db, job, f"the filtered table of {n}")) is not None:
        return before
    if job.state == "embedding":
        return jobs.counted(
            job,
            f"Embedding the passages {n} need: {job.done:,} of {job.total:,} done "
            f"({job.elapsed():.0f} s so far)…",
        )
    if job.state == "loading":
        return builds.load_step(db, job.backend_pid, job.n, "the recall table's vectors")
    if job.state == "copying":
        return Progress(
            None,
            f"Copying {n} into {job.table_name} with their categories and chapters, and "
            f"their B-tree indexes ({job.elapsed():.0f} s so far)…",
        )
    if job.state == "indexing":
        what = f"the HNSW indexes of {job.table_name}"
        return builds.index_step(db, job.table_name, what, None, job.elapsed())
    if job.state == "truth":
        return jobs.counted(
            job,
            f"Computing the exact filtered ground truths: {job.done} of {job.total} categories "
            "done (one exact scan per query and category).",
        )
    if job.state == "measuring":
        return jobs.counted(job, f"Measuring the default query sets: {job.done} of {job.total}.")
    what = f"Preparing the filtered table of {n}"
    return jobs.ended(job, what, f"The filtered table of {n} is ready.") or Progress(
        None, job.state
    )


# ---------------------------------------------------------------------------------------
# Running jobs


def run(ctx: jobs.Context) -> None:
    """Do what the job asks (rows, table, truths, default query sets), recording each step."""
    db, ds = ctx.db, ctx.env
    n = ctx.job.key["n"]
    if not recall_tables.table_status(db, ds, n).loaded and ds.missing(n):
        embed(ctx, ds, n)
    ctx.step("loading")
    builds.load_table(db, ds, n, on_backend=ctx.backend)
    before = tables.status(db, ds, n)
    table = tables.build(db, ds, n, on_phase=ctx.step, on_backend=ctx.backend)
    if before is None:  # a new build: what was stored for an older one goes
        truths.forget(db, table.name)
        search.forget(db, table.name)
        ctx.record(built=True)
    filters = search.category_filters()
    ctx.step("truth", done=0, total=len(filters))
    for i, f in enumerate(filters, start=1):
        search.truth(db, ds, table, f)
        ctx.count(i)
    cells = search.default_cells()
    ctx.step("measuring", done=0, total=len(cells))
    for i, cell in enumerate(cells, start=1):
        search.stored_or_measured(db, ds, table, cell)
        ctx.count(i)


def embed(ctx: jobs.Context, ds: Dataset, n: int) -> None:
    """The passages the size's rows need that the embedding cache lacks (in batches, under
    the lock every process shares), then the generator if the size needs it."""
    ctx.step("embedding", done=0, total=ds.missing(n))
    builds.embed_rows(ctx.db, ds, n, lambda done, todo: ctx.count(done, todo))
    if n > ds.n_real:
        ds.generator  # noqa: B018 (fitted once, before the load)


jobs.register(KIND, run)
