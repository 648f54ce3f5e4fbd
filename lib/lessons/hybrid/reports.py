"""The Hybrid search page's measurement: the lab's labelled test queries a size can evaluate,
through the vector index, each lexical ranker, RRF and convex fusion, and RRF re-ranked by
MaxSim, scored with intervals per kind of query; stored, so everyone reads one run
(lib/harness/reports.py)."""

from __future__ import annotations

import re

from lib.core.database import Database
from lib.dataset import bm25_tables
from lib.dataset.passages import Dataset
from lib.dataset.recall_tables import table_status
from lib.harness import evals, hybrid, lexical, rerank
from lib.harness.evals import System
from lib.harness.labels import Query
from lib.harness.recall import HarnessError, generated_target
from lib.harness.reports import MIN_QUERIES, Stored, Suite, evaluable

__all__ = ["MIN_QUERIES", "Stored", "evaluable"]

KIND = "hybrid_report"
EF_SEARCH = 100  # the vector side alone, and each fusion's (= its 100 candidates)
RERANK_TOP = 20

# A token that reads as code rather than English: a_name, name(), a::b, --option, -x, a.b,
# or letters and digits in one word (ext4, x86, i2c, 6pack). A query holding one is filed as
# "identifier", whatever its source; the rest by where the label came from.
IDENTIFIER = re.compile(
    r"\w_\w|\(\)|::|(?:^|\s)--?[A-Za-z]|[a-z]\.[a-z]|\b(?=\w*[A-Za-z])(?=\w*\d)\w+\b"
)
KINDS = {
    "faq": "question", "faq_nooverlap": "question",
    "glossary": "term", "glossary_nooverlap": "term",
    "heading": "known_item",
}  # fmt: skip


def kind_of(q: Query) -> str:
    """identifier, question, term or known_item."""
    if IDENTIFIER.search(q.text):
        return "identifier"
    return KINDS.get(q.kind, q.kind)


def sides(db: Database, ds: Dataset, n: int, text_table: str) -> tuple:
    """Size `n`'s vector side (its k-NN target and HNSW index) and text side (the text table
    as a source, its BM25 tables)."""
    status = table_status(db, ds, n)
    if not status.ready() or status.index is None or status.index.kind != "hnsw":
        raise HarnessError(f"the recall table of {n:,} rows is not prepared with an HNSW index")
    bm25 = bm25_tables.status(db, text_table)
    if bm25 is None:
        raise HarnessError(f"{text_table} has no BM25 tables yet")
    target, index = generated_target(status.table), status.index.name
    return target, index, lexical.lab_text_source(text_table), bm25


def systems(db: Database, ds: Dataset, n: int, text_table: str) -> list[System]:
    """The page's systems on size `n`: HNSW, full text, BM25 two ways, RRF with each BM25,
    convex fusion, and RRF re-ranked by MaxSim."""
    target, index, source, bm25 = sides(db, ds, n, text_table)

    def ranker(kind: str) -> lexical.Ranker:
        return lexical.Ranker(kind, source, bm25 if kind.startswith("bm25") else None)

    return [
        evals.index_system(
            f"hnsw:{EF_SEARCH}", f"HNSW ef_search={EF_SEARCH}", target, index, EF_SEARCH
        ),  # fmt: skip
        evals.fts_system(source),
        hybrid.lexical_system(ranker("bm25")),
        hybrid.lexical_system(ranker("bm25_sparse")),
        hybrid.fusion_system(target, index, ranker("bm25")),
        hybrid.fusion_system(target, index, ranker("bm25_sparse")),
        hybrid.fusion_system(target, index, ranker("bm25"), hybrid.Fusion("convex")),
        hybrid.fusion_system(
            target, index, ranker("bm25"), rerank=rerank.lab_maxsim(ds)(RERANK_TOP)
        ),
    ]


SUITE = Suite("hybrid", KIND, "the hybrid evals", systems, kind_of=kind_of, bm25=True)
stored, measure, request, progress = SUITE.stored, SUITE.measure, SUITE.request, SUITE.progress
get, last, live, wait = SUITE.get, SUITE.last, SUITE.live, SUITE.wait  # type: ignore[attr-defined]
