"""The Evals page's measurement: the lab's labelled test queries that a size can evaluate,
run through five systems (the exact scan, HNSW at three `ef_search` values, full-text
search), scored with intervals by the evals harness, as a job in the one queue; the report
is stored, so everyone reads one run (lib/harness/reports.py)."""

from __future__ import annotations

from lib.core.database import Database
from lib.dataset.passages import Dataset
from lib.dataset.recall_tables import table_status
from lib.harness import evals
from lib.harness.evals import System
from lib.harness.recall import HarnessError, generated_target
from lib.harness.reports import MIN_QUERIES, SPLIT, Job, Stored, Suite, evaluable

__all__ = ["MIN_QUERIES", "SPLIT", "Job", "Stored", "evaluable"]

KIND = "evals_report"
EF_SEARCH = (10, 40, 100)


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


SUITE = Suite("evals", KIND, "the evals", systems)
stored, measure, request, progress = SUITE.stored, SUITE.measure, SUITE.request, SUITE.progress
get, last, live, wait = SUITE.get, SUITE.last, SUITE.live, SUITE.wait  # type: ignore[attr-defined]
