"""Evals reports a page reads, measured once as a job in the one queue and stored, so
everyone reads one run.

A `Suite` is a lesson's set of systems (the Evals page's exact scan, HNSW and full text; the
Hybrid search page's rankers and fusions), run over the lab's held-out test queries that a
size can evaluate, scored with intervals by the evals harness (lib/harness/evals.py). Its
report lands in `evals_reports` under the suite's name, tied to the recall table as it was
loaded: a table loaded again has no report until one is measured again.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from psycopg.types.json import Jsonb

from lib.core import jobs
from lib.core.database import Database
from lib.core.embeddings.registry import load_model
from lib.core.jobs import Progress
from lib.dataset import bm25_tables, text_tables
from lib.dataset.passages import Dataset
from lib.dataset.recall_tables import table_status
from lib.harness import evals
from lib.harness import labels as labels_mod
from lib.harness.evals import System
from lib.harness.labels import Labels, Query
from lib.harness.recall import HarnessError
from lib.harness.size_jobs import lane_of

SPLIT = "test"  # the pages report the held-out test set; nothing is tuned on it
MIN_QUERIES = 30  # fewer evaluable queries than this and a size is not offered

DDL = """CREATE TABLE IF NOT EXISTS evals_reports (
    id bigserial PRIMARY KEY,
    n integer NOT NULL,
    table_name text NOT NULL,
    loaded_at timestamptz NOT NULL,
    split text NOT NULL,
    ran_at timestamptz NOT NULL DEFAULT now(),
    seconds double precision NOT NULL,
    report jsonb NOT NULL
);
ALTER TABLE evals_reports ADD COLUMN IF NOT EXISTS suite text NOT NULL DEFAULT 'evals';
CREATE INDEX IF NOT EXISTS evals_reports_table ON evals_reports (table_name, loaded_at, id)"""


def ensure_table(db: Database) -> None:
    db.ensure("evals_reports", DDL)


def evaluable(ds: Dataset, n: int) -> int:
    """How many test queries size `n` can evaluate (every answer passage in its table)."""
    return len(evals.lab_labels(ds, n, split=SPLIT).queries)


@dataclass(frozen=True)
class Stored:
    """A stored report of one size as loaded."""

    n: int
    table: str
    loaded_at: datetime
    ran_at: datetime
    seconds: float
    report: dict


def stored_by_id(db: Database, report_id: int) -> Stored | None:
    """One stored report, by its id."""
    row = db.fetchone(
        "SELECT n, table_name, loaded_at, ran_at, seconds, report FROM evals_reports WHERE id = %s",
        (report_id,),
    )
    return Stored(*row) if row else None


class Job(jobs.View):
    """A report's job: the queue's fields and its size."""


SystemsOf = Callable[[Database, Dataset, int, str], list[System]]


@dataclass(frozen=True)
class Suite:
    """A page's systems, measured on a size as one job (`kind`) and stored as `name`.

    `systems(db, ds, n, text_table)` gives them on size `n`; `kind_of` re-files each query
    under the kind the page reports on (the labels' own kinds when None); `bm25` builds the
    size's BM25 tables beside its text table first."""

    name: str
    kind: str  # the job kind
    what: str  # "the evals", in progress messages
    systems: SystemsOf
    kind_of: Callable[[Query], str] | None = None
    bm25: bool = False

    def __post_init__(self) -> None:
        reader = jobs.Reader(Job, self.kind)
        for attr in ("get", "last", "live", "wait"):
            object.__setattr__(self, attr, getattr(reader, attr))
        jobs.register(self.kind, self._run)

    # -- reading -------------------------------------------------------------------------

    def stored(self, db: Database, ds: Dataset, n: int) -> Stored | None:
        """The newest report for size `n`'s table as it is loaded now, if any."""
        report_id = self.newest_id(db, ds, n)
        return None if report_id is None else stored_by_id(db, report_id)

    def newest_id(self, db: Database, ds: Dataset, n: int) -> int | None:
        """The id of `stored`'s report (the report itself not read)."""
        ensure_table(db)
        status = table_status(db, ds, n)
        if not status.loaded:
            return None
        row = db.fetchone(
            "SELECT max(id) FROM evals_reports"
            " WHERE table_name = %s AND loaded_at = %s AND split = %s AND suite = %s",
            (status.table, status.loaded_at, SPLIT, self.name),
        )
        return None if row is None or row[0] is None else int(row[0])

    def labels(self, ds: Dataset, n: int, labels: Labels | None = None) -> Labels:
        """The test queries size `n` can evaluate, each filed under the suite's kinds."""
        picked = evals.lab_labels(ds, n, labels or labels_mod.read(), split=SPLIT)
        if self.kind_of is None:
            return picked
        queries = tuple(dataclasses.replace(q, kind=self.kind_of(q)) for q in picked.queries)
        return Labels(queries, picked.qrels)

    # -- measuring -----------------------------------------------------------------------

    def measure(
        self,
        db: Database,
        ds: Dataset,
        n: int,
        ctx: jobs.Context | None = None,
        labels: Labels | None = None,
        min_queries: int = MIN_QUERIES,
    ) -> Stored:
        """Run the suite's systems over the test queries size `n` can evaluate (of the lab's
        labels, or `labels`), and store the report with the queries and judgements it used."""

        def step(state: str, **counters: int) -> None:
            if ctx is not None:
                ctx.step(state, **counters)

        status = table_status(db, ds, n)
        step("text")
        text, _ = text_tables.build(db, ds, n, on_backend=ctx.backend if ctx else None)
        extra: dict = {}
        if self.bm25:
            bm25, _ = bm25_tables.build(db, text.name, text.loaded_at)
            extra = {"bm25_seconds": bm25.build_seconds, "bm25_terms": bm25.terms}
        picked = self.labels(ds, n, labels)
        if len(picked.queries) < min_queries:
            raise HarnessError(
                f"{n:,} rows hold the answers of only {len(picked.queries)} test queries; "
                "evaluate 100,000 rows or more"
            )
        step("embedding", done=0, total=len(picked.queries))
        model = load_model(ds.model_name)
        vectors = evals.query_vectors(model, [q.text for q in picked.queries], ds.cache)
        by_id = {q.id: v for q, v in zip(picked.queries, vectors, strict=True)}
        chosen = self.systems(db, ds, n, text.name)
        step("running", done=0, total=len(chosen) * len(picked.queries))
        order = {s.name: i for i, s in enumerate(chosen)}

        def counted(name: str, done: int, _total: int) -> None:
            if ctx is not None:
                ctx.count(order[name] * len(picked.queries) + done)

        started = datetime.now()
        evaluation = evals.evaluate(
            db, chosen, picked, vectors=by_id, doc_id=evals.lab_doc_ids(ds), progress=counted
        )
        seconds = (datetime.now() - started).total_seconds()
        report = evaluation.report(
            target="lab", suite=self.name, size=n, table=status.table, text_table=text.name,
            model=ds.model_name, index=status.index.name, split=SPLIT,
            real_rows=ds.real_rows(n), text_index_seconds=text.index_seconds,
            text_index_bytes=text.index_bytes, **extra,
            labelled={
                q.id: {"text": q.text, "kind": q.kind, "judged": picked.qrels.get(q.id, {})}
                for q in picked.queries
            },
        )  # fmt: skip
        ensure_table(db)
        row = db.fetchone(
            "INSERT INTO evals_reports (n, table_name, loaded_at, split, suite, seconds, report)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING n, table_name, loaded_at, ran_at,"
            " seconds, report",
            (n, status.table, status.loaded_at, SPLIT, self.name, seconds, Jsonb(report)),
        )
        return Stored(*row)

    # -- the job -------------------------------------------------------------------------

    def request(self, db: Database, n: int) -> Job:
        """The live job measuring size `n`'s report, or a new one in the queue."""
        return Job(jobs.request(db, self.kind, {"n": n, "split": SPLIT}, lane_of(n)))

    def progress(self, db: Database, job: Job) -> Progress:
        """Where `job` stands, in words."""
        what = f"{self.what} of {job.n:,} rows"
        if (before := jobs.waiting(db, job, what)) is not None:
            return before
        if job.state == "text":
            side = "tsvector, GIN, BM25" if self.bm25 else "tsvector, GIN"
            return Progress(None, f"Building the text side of {job.n:,} rows ({side})…")
        if job.state == "embedding":
            return Progress(None, "Embedding the test queries (once; they are cached)…")
        if job.state == "running":
            return jobs.counted(
                job,
                f"Running the test queries through each system: {job.done:,} of {job.total:,}.",
            )
        done = f"{self.what[0].upper()}{self.what[1:]} of {job.n:,} rows are stored."
        return jobs.ended(job, f"Measuring {what}", done) or Progress(None, job.state)

    def _run(self, ctx: jobs.Context) -> None:
        self.measure(ctx.db, ctx.env, ctx.job.key["n"], ctx)
