"""The Evals page's measurement: the lab's labelled test queries that a size can evaluate,
run through five systems (the exact scan, HNSW at three `ef_search` values, full-text
search), scored with intervals by the evals harness, as a job in the one queue; the report
is stored, so everyone reads one run."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from psycopg.types.json import Jsonb

from lib.core import jobs
from lib.core.database import Database
from lib.core.embeddings.registry import load_model
from lib.core.jobs import Progress
from lib.dataset import text_tables
from lib.dataset.passages import Dataset
from lib.dataset.recall_tables import table_status
from lib.harness import evals
from lib.harness import labels as labels_mod
from lib.harness.evals import System
from lib.harness.labels import Labels
from lib.harness.recall import HarnessError, generated_target
from lib.harness.size_jobs import lane_of

KIND = "evals_report"
SPLIT = "test"  # the page reports the held-out test set; nothing is tuned on it
EF_SEARCH = (10, 40, 100)
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
CREATE INDEX IF NOT EXISTS evals_reports_table ON evals_reports (table_name, loaded_at, id)"""


def ensure_table(db: Database) -> None:
    db.ensure("evals_reports", DDL)


def systems(db: Database, ds: Dataset, n: int, text_table: str) -> list[System]:
    """The page's systems on size `n`: exact, HNSW at each of EF_SEARCH, full-text search."""
    status = table_status(db, ds, n)
    if not status.ready() or status.index is None or status.index.kind != "hnsw":
        raise HarnessError(f"the recall table of {n:,} rows is not prepared with an HNSW index")
    target = generated_target(status.table)
    out = [evals.exact_system(target)]
    for ef in EF_SEARCH:
        label = f"HNSW ef_search={ef}"
        out.append(evals.index_system(f"hnsw:{ef}", label, target, status.index.name, ef))
    out.append(evals.fts_system(evals.lab_text_source(text_table)))
    return out


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


def stored(db: Database, ds: Dataset, n: int) -> Stored | None:
    """The newest report for size `n`'s table as it is loaded now, if any."""
    ensure_table(db)
    status = table_status(db, ds, n)
    if not status.loaded:
        return None
    row = db.fetchone(
        "SELECT n, table_name, loaded_at, ran_at, seconds, report FROM evals_reports"
        " WHERE table_name = %s AND loaded_at = %s AND split = %s ORDER BY id DESC LIMIT 1",
        (status.table, status.loaded_at, SPLIT),
    )
    return Stored(*row) if row else None


def measure(
    db: Database,
    ds: Dataset,
    n: int,
    ctx: jobs.Context | None = None,
    labels: Labels | None = None,
    min_queries: int = MIN_QUERIES,
) -> Stored:
    """Run the page's systems over the test queries size `n` can evaluate (of the lab's
    labels, or `labels`), and store the report with the queries and judgements it used."""

    def step(state: str, **counters: int) -> None:
        if ctx is not None:
            ctx.step(state, **counters)

    status = table_status(db, ds, n)
    step("text")
    text, _ = text_tables.build(db, ds, n, on_backend=ctx.backend if ctx else None)
    picked = evals.lab_labels(ds, n, labels or labels_mod.read(), split=SPLIT)
    if len(picked.queries) < min_queries:
        raise HarnessError(
            f"{n:,} rows hold the answers of only {len(picked.queries)} test queries; "
            "evaluate 100,000 rows or more"
        )
    step("embedding", done=0, total=len(picked.queries))
    model = load_model(ds.model_name)
    vectors = evals.query_vectors(model, [q.text for q in picked.queries], ds.cache)
    by_id = {q.id: v for q, v in zip(picked.queries, vectors, strict=True)}
    chosen = systems(db, ds, n, text.name)
    total = len(chosen) * len(picked.queries)
    step("running", done=0, total=total)
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
        target="lab", size=n, table=status.table, text_table=text.name, model=ds.model_name,
        index=status.index.name, split=SPLIT, real_rows=ds.real_rows(n),
        text_index_seconds=text.index_seconds, text_index_bytes=text.index_bytes,
        labelled={
            q.id: {"text": q.text, "kind": q.kind, "judged": picked.qrels.get(q.id, {})}
            for q in picked.queries
        },
    )  # fmt: skip
    ensure_table(db)
    row = db.fetchone(
        "INSERT INTO evals_reports (n, table_name, loaded_at, split, seconds, report)"
        " VALUES (%s, %s, %s, %s, %s, %s) RETURNING n, table_name, loaded_at, ran_at, seconds,"
        " report",
        (n, status.table, status.loaded_at, SPLIT, seconds, Jsonb(report)),
    )
    return Stored(*row)


# ---- the job ------------------------------------------------------------------------------


class Job(jobs.View):
    """An evals job: the queue's fields and its size."""


_reader = jobs.Reader(Job, KIND)
get, last, live, wait = _reader.get, _reader.last, _reader.live, _reader.wait


def request(db: Database, n: int) -> Job:
    """The live job measuring size `n`'s report, or a new one in the queue."""
    return Job(jobs.request(db, KIND, {"n": n, "split": SPLIT}, lane_of(n)))


def progress(db: Database, job: Job) -> Progress:
    """Where `job` stands, in words."""
    what = f"the evals of {job.n:,} rows"
    if (before := jobs.waiting(db, job, what)) is not None:
        return before
    if job.state == "text":
        return Progress(None, f"Building the text side of {job.n:,} rows (tsvector, GIN)…")
    if job.state == "embedding":
        return Progress(None, "Embedding the test queries (once; they are cached)…")
    if job.state == "running":
        return jobs.counted(
            job, f"Running the test queries through each system: {job.done:,} of {job.total:,}."
        )
    return jobs.ended(job, f"Measuring {what}", f"The evals of {job.n:,} rows are stored.") or (
        Progress(None, job.state)
    )


def run(ctx: jobs.Context) -> None:
    measure(ctx.db, ctx.env, ctx.job.key["n"], ctx)


jobs.register(KIND, run)
