"""Preparing a size of the recall tables, as a kind of job in the one queue (lib/core/jobs.py).

A size job embeds the passages the size needs that the embedding cache lacks, fits the
generator if the size has generated rows, loads the size's table (unless it holds the dataset
already), gives it the index (unless it has it), and computes and stores the ground truth of
the query set (lib/harness/truths.py). Its key is (n, index spec), so two processes asking for
the same new size run one build; its lane is decided by the size, so a 500-row table asked for
in a workshop is not stuck behind a 500,000-row build. It records what it did (`loaded`,
`indexed`, `truth_computed` and their timings).
"""

from __future__ import annotations

from dataclasses import dataclass

from lib.core import jobs
from lib.core.database import Database
from lib.core.jobs import Progress
from lib.core.vectors import duration
from lib.dataset import builds, recall_tables, sizing
from lib.dataset.index_specs import IndexSpec
from lib.dataset.passages import GENERATOR_FIT_ROWS, Dataset
from lib.harness import truths
from lib.harness.recall import K, generated_target, ground_truth

KIND = "size"
BIG = 60_000
LANES = ("small", "big")


def lane_of(n: int) -> str:
    """The lane of a job on a table of `n` rows: large tables queue apart from small ones."""
    return "big" if n > BIG else "small"


class Job(jobs.View):
    """A size job as the pages read it: the queue's fields, and this kind's own."""

    @property
    def spec(self) -> IndexSpec:
        return IndexSpec(**self.job.key["spec"])

    FACTS = dict.fromkeys(("loaded", "indexed", "truth_computed"), False) | dict.fromkeys(
        ("build_seconds", "load_seconds", "maintenance_work_mem", "workers", "embed_seconds")
    )

    @property
    def embed_done(self) -> int:
        return self.job.done if self.job.state == "embedding" else self.job.fact("embed_done", 0)

    @property
    def embed_total(self) -> int:
        return self.job.total if self.job.state == "embedding" else self.job.fact("embed_total", 0)


_reader = jobs.Reader(Job, KIND)
get, last, live, wait = _reader.get, _reader.last, _reader.live, _reader.wait


def _key(spec: IndexSpec, n: int) -> dict:
    return {
        "n": n,
        "spec": {"kind": spec.kind, "m": spec.m, "ef_construction": spec.ef_construction,
                 "lists": spec.lists},
    }  # fmt: skip


def request(db: Database, ds: Dataset, n: int, spec: IndexSpec | None = None) -> Job:
    """The live job preparing (n, spec), or a new one in the queue."""
    spec = (spec or IndexSpec()).resolved(n)
    spec.check()
    table = recall_tables.table_name(n, ds.dimension)
    key = _key(spec, n)
    facts = sizing.check_queued(
        db, n, ds.dimension, kind=KIND, key=key, what=f"The {n:,}-row table", m=spec.m
    )  # SizeRefused past the cap or the free disk
    return Job(jobs.request(db, KIND, key, lane_of(n), table, facts))


def position(db: Database, job: Job) -> int:
    """How many jobs of the same lane are queued or running ahead of `job`."""
    return jobs.position(db, job.job)


def progress(db: Database, job: Job) -> Progress:
    """Where `job` stands, read now from its row and the server's progress views."""
    n = job.n
    if (before := jobs.waiting(db, job, f"{n:,} rows")) is not None:
        return before
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
    if job.state in ("loading", "starting"):
        return builds.load_step(db, job.backend_pid, n, "the vectors")
    if job.state == "indexing":
        what = f"the {job.spec.label()} index"
        return builds.index_step(db, job.table_name, what, n, job.elapsed())
    if job.state == "truth":
        return jobs.counted(
            job, f"Computing the ground truth: exact scan {job.done} of {job.total}."
        )
    return jobs.ended(job, f"Preparing {n:,} rows", f"{n:,} rows ready.") or Progress(
        None, job.state
    )


def embed_for(ctx: jobs.Context, ds: Dataset, n: int, missing: int) -> None:
    """The embedding step: the `missing` passages size `n` needs and the cache lacks."""
    ctx.step("embedding", done=0, total=missing)
    last = [0, missing]

    def counted(done: int, todo: int) -> None:
        last[:] = [done, todo]
        ctx.count(done, todo)

    report = builds.embed_rows(ctx.db, ds, n, counted)
    ctx.record(embed_done=last[0], embed_total=last[1], embed_seconds=report.seconds)


def run(ctx: jobs.Context) -> None:
    """Do what the job asks (embed, fit, load, index, ground truth), recording each step."""
    db, ds = ctx.db, ctx.env
    job = Job(ctx.job)
    n, spec = job.n, job.spec
    table = recall_tables.table_name(n, ds.dimension)
    if not recall_tables.table_status(db, ds, n).loaded:
        missing = ds.missing(n)
        if missing:
            embed_for(ctx, ds, n, missing)
        if n > ds.n_real:
            ctx.step("fitting")
            ds.generator  # noqa: B018 (fitted here, once, rather than inside the load)
    ctx.step("loading")
    seconds = builds.load_table(db, ds, n, on_backend=ctx.backend)
    if seconds is not None:
        truths.forget(db, table)
        ctx.record(loaded=True, load_seconds=seconds)
    ctx.step("indexing")
    report = builds.build_index(db, ds, n, spec, on_notice=ctx.notice, on_backend=ctx.backend)
    if report.indexed:
        ctx.record(
            indexed=True, build_seconds=report.build_seconds,
            maintenance_work_mem=report.maintenance_work_mem, workers=report.workers,
        )  # fmt: skip
    status = recall_tables.table_status(db, ds, n)
    if truths.of_table(db, ds, status, K) is None:
        ctx.step("truth", total=len(ds.queries), done=0)

        def counted(done: int, total: int) -> None:
            if done % 10 == 0 or done == total:
                ctx.count(done)

        answers = ground_truth(db, generated_target(table), ds.queries, K, progress=counted)
        truths.store(db, table, status.loaded_at, ds.queries_fingerprint, K, answers)
        ctx.record(truth_computed=True)


jobs.register(KIND, run)


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
    rows = db.fetchall(
        OVERVIEW_SQL, {"queries": ds.queries_fingerprint, "fingerprint": ds.fingerprint()}
    )
    tables = {r[0]: r for r in rows}
    newest = {n: Job(j) for n, j in jobs.newest_per_key(db, KIND, "n").items()}
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
