"""Recall on your own table, measured as a kind of job in the one queue (lib/core/jobs.py).

The measurement is 100 exact scans of the learner's table and the same 100 queries through
its index: in a room, work everyone pays for. As a job, it runs once per key — schema, table,
column and the query-time knob (`hnsw.ef_search` or `ivfflat.probes`) — however many people
ask while it runs; its lane is the table's (`size_jobs.lane_of` of its estimated rows), so it
never shares the cores with a build of the same lane; each exact scan may take at most
EXACT_TIMEOUT_MS (lower than the harness's default); and what it found is kept in the job's
facts, so the page shows the newest result for the key, with when it ran, without running
the scans again. Everything it runs only reads, in read-only transactions.

Facts: `report` (recall.RecallReport.to_dict(): recall mean/min, rows, queries, index,
latencies, plans, settings, when each side ran), `target` (the table, column, key and
operator searched), `first_query` (the query the page shows its SQL bound to), `warnings`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import psycopg

from lib.core import jobs
from lib.core.database import Database
from lib.core.jobs import Progress
from lib.core.psql import Script
from lib.harness import recall
from lib.harness.size_jobs import lane_of
from lib.lessons.recall import vector_columns as vc

KIND = "own_recall"
QUERIES = 100
EXACT_TIMEOUT_MS = 10_000  # each exact scan may take this long (the harness allows 60 s)
CHECK_TIMEOUT_MS = 10_000  # and each count of the table's vectors, and the sampling
UNKNOWN_ROWS_LANE = "big"  # a table the server never counted queues with the big ones


class Job(jobs.View):
    """An own-table recall job: the queue's fields, its key and what it recorded."""

    FACTS = {"report": None, "target": None, "first_query": None, "warnings": []}

    @property
    def label(self) -> str:
        return f"{self.schema}.{self.table}.{self.column}"

    def recall_report(self) -> recall.RecallReport | None:
        """The report as the harness made it (without the per-query ids), once done."""
        facts = self.job.fact("report")
        return recall.RecallReport(**facts) if facts else None

    def script(self) -> Script | None:
        """The index's query as the job ran it, bound to the first sampled row (no run)."""
        target, first = self.job.fact("target"), self.job.fact("first_query")
        report = self.job.fact("report")
        if not (target and first and report):
            return None
        t = recall.Target(**target)
        query = np.asarray(first, dtype=np.float32)
        return Script((t.statement(query, recall.K, with_distance=True),), report["index_settings"])


_reader = jobs.Reader(Job, KIND)
get, wait = _reader.get, _reader.wait


def knobs_of(col: vc.VectorColumn, *, ef_search: int = 40, probes: int = 1) -> dict[str, Any]:
    """The knob of the index the measurement will use (the first usable one, as
    vector_columns.check_column picks it)."""
    usable = [i for i in col.indexes if i.valid and i.operator and not i.partial]
    kind = usable[0].kind if usable else "hnsw"
    return recall.knobs_for(kind, ef_search=ef_search, probes=probes)


def key_of(col: vc.VectorColumn, knobs: dict[str, Any]) -> dict[str, Any]:
    return {"schema": col.schema, "table": col.table, "column": col.column, "knobs": knobs}


def last(db: Database, col: vc.VectorColumn, knobs: dict[str, Any], *, done: bool = False):
    """The newest job of this key (any state, or the newest done one: the cached result)."""
    found = jobs.newest(db, KIND, key_of(col, knobs), state="done" if done else None)
    return Job(found) if found is not None else None


def live(db: Database, col: vc.VectorColumn, knobs: dict[str, Any]):
    found = jobs.find(db, KIND, key_of(col, knobs), live=True)
    return Job(found[0]) if found else None


def column(db: Database, schema: str, table: str, name: str) -> vc.VectorColumn:
    """The vector column `name` of `schema`.`table` as the server lists it now."""
    for c in vc.vector_columns(db):
        if (c.schema, c.table, c.column) == (schema, table, name):
            return c
    raise vc.ColumnProblem(f"no readable vector column {name!r} in {schema}.{table} any more")


def estimated_rows(db: Database, col: vc.VectorColumn) -> int | None:
    """The server's estimate of the table's rows (pg_class.reltuples; None if never counted)."""
    row = db.fetchone(
        "SELECT c.reltuples FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = %s AND c.relname = %s",
        (col.schema, col.table),
    )
    return int(row[0]) if row and row[0] is not None and row[0] >= 0 else None


def request(db: Database, col: vc.VectorColumn, knobs: dict[str, Any]) -> Job:
    """The live job measuring this column under `knobs`, or a new one in the queue."""
    rows = estimated_rows(db, col)
    lane = lane_of(rows) if rows is not None else UNKNOWN_ROWS_LANE
    return Job(jobs.request(db, KIND, key_of(col, knobs), lane, col.qualified))


def progress(db: Database, job: Job) -> Progress:
    what = f"recall on {job.label}"
    if (before := jobs.waiting(db, job, f"measuring {what}")) is not None:
        return before
    if job.state == "checking":
        return Progress(None, f"Counting the vectors of {job.label} and checking its index…")
    if job.state == "exact":
        return jobs.counted(
            job,
            f"Exact scans (the ground truth): {job.done} of {job.total} queries "
            f"({job.elapsed():.0f} s so far)…",
        )
    if job.state == "index":
        return Progress(None, f"The same {QUERIES} queries through the index…")
    return jobs.ended(job, f"Measuring {what}", f"Recall on {job.label} is measured.") or (
        Progress(None, job.state)
    )


def _timed_out(step: str, timeout_ms: int) -> vc.ColumnProblem:
    return vc.ColumnProblem(
        f"{step} ran past statement_timeout ({timeout_ms / 1000:g} s) and was cancelled: "
        "the table is too large (or too busy) for this measurement here. Measure it from the "
        "command line (python -m lib.recall), which allows longer."
    )


def run(ctx: jobs.Context) -> None:
    """Check the column, sample its rows as queries, run the exact scans and the index, and
    record the report."""
    db, key = ctx.db, ctx.job.key
    ctx.step("checking")
    col = column(db, key["schema"], key["table"], key["column"])
    try:
        facts = vc.check_column(db, col, timeout_ms=CHECK_TIMEOUT_MS)
        queries = vc.sample_queries(db, col, QUERIES, timeout_ms=CHECK_TIMEOUT_MS)
    except psycopg.errors.QueryCanceled as e:
        raise _timed_out(f"Counting the vectors of {col.label}", CHECK_TIMEOUT_MS) from e
    ctx.step("exact", done=0, total=len(queries))
    try:
        truth = recall.ground_truth(
            db, facts.target, queries, timeout_ms=EXACT_TIMEOUT_MS, progress=ctx.count
        )
    except psycopg.errors.QueryCanceled as e:  # its plan, asked for under the same timeout
        raise _timed_out(f"An exact scan of {col.label}", EXACT_TIMEOUT_MS) from e
    except recall.HarnessError as e:
        if "statement_timeout" in str(e):
            raise _timed_out(f"An exact scan of {col.label}", EXACT_TIMEOUT_MS) from e
        raise
    ctx.step("index")
    report = recall.measure(
        db, facts.target, queries, knobs=key["knobs"], truth=truth, rows=facts.rows
    )
    t = facts.target
    ctx.record(
        report=report.to_dict(),
        target={"schema": t.schema, "table": t.table, "column": t.column, "key": t.key,
                "operator": t.operator},
        first_query=[float(x) for x in queries[0]],
        warnings=list(facts.warnings),
    )  # fmt: skip


jobs.register(KIND, run)
