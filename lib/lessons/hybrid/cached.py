"""The Hybrid search page's entry points, cached by their parameters and shared by every
session: the stored report, the text side's cost beside the vector index's, and one query run
now through every ranker."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import streamlit as st

from lib.dataset import bm25_tables, text_tables
from lib.dataset.recall_tables import table_status
from lib.lessons.hybrid import live, reports
from lib.ui.connection import database, shared_database
from lib.ui.resources import query_vector, recall_dataset
from lib.ui.stored_reports import StoredOf

# The newest stored report of a size: asked again at most every 15 s, read once by its id, and
# the object itself on a hit (lib/ui/stored_reports.py).
stored = StoredOf(reports.SUITE)


# No TTL: the count follows from the labels and the size's sample, which do not change while
# the process runs (it took about 50 ms a size, and the size picker asks for every size).
@st.cache_data(max_entries=16, show_spinner=False)
def evaluable(n: int) -> int:
    return reports.evaluable(recall_dataset(), n)


@dataclass(frozen=True)
class Costs:
    """What each side's index took to build and takes on disk."""

    hnsw: str
    hnsw_seconds: float | None
    hnsw_bytes: int
    gin: str
    gin_seconds: float
    gin_bytes: int
    text_bytes: int
    bm25_seconds: float | None
    bm25_bytes: int
    bm25_terms: int | None


@st.cache_data(max_entries=8, ttl=60, show_spinner=False)
def costs(n: int, ran_at: Any) -> Costs | None:
    db, ds = database(), recall_dataset()
    status = table_status(db, ds, n)
    text = text_tables.text_status(db, ds, n)
    if status.index is None or text is None:
        return None
    bm25 = bm25_tables.status(db, text.name)
    sizes = db.fetchone(
        "SELECT pg_relation_size(to_regclass(%s)),"
        " coalesce(pg_total_relation_size(to_regclass(%s)), 0)"
        " + coalesce(pg_total_relation_size(to_regclass(%s)), 0)",
        (status.index.name, bm25.name if bm25 else None, bm25.terms_table if bm25 else None),
    )
    return Costs(
        status.index.name, status.index.build_seconds, int(sizes[0]),
        text.index, text.index_seconds, text.index_bytes, text.table_bytes,
        bm25.build_seconds if bm25 else None, int(sizes[1]), bm25.terms if bm25 else None,
    )  # fmt: skip


# The rankers' answers are kept as they are (st.cache_resource: a hit is the object itself,
# never a copy; nothing changes them), each by what it depends on, so a knob of the fusion
# runs the fused statement again and nothing else. `ran_at` is the stored report's, so a size
# loaded again is asked again.


@st.cache_resource(max_entries=8, ttl=15, show_spinner=False)
def sides(n: int, ran_at: Any) -> tuple:
    """Size `n`'s vector and text sides (reports.sides: three catalog reads), once for every
    ranker of a query, and looked up again at most every 15 s."""
    return reports.sides(shared_database(), recall_dataset(), n, text_tables.table_name(n))


# The page has checked the server (connection.database()) before it calls these: they use the
# shared pool as it is, not one more round trip each.
@st.cache_resource(max_entries=512, ttl=600, show_spinner="Running the query…")
def alone(n: int, ran_at: Any, kind: str, text: str, k1: float, b: float) -> live.Ranked:
    db, ds = shared_database(), recall_dataset()
    vector = query_vector(ds.model_name, text)
    return live.alone(
        db, ds, n, text_tables.table_name(n), kind, text, vector, k1, b, sides(n, ran_at)
    )


@st.cache_resource(max_entries=512, ttl=600, show_spinner="Fusing…")
def fused(n: int, ran_at: Any, text: str, knobs: live.Knobs) -> live.Ranked:
    db, ds = shared_database(), recall_dataset()
    vector = query_vector(ds.model_name, text)
    return live.fused(db, ds, n, text_tables.table_name(n), text, vector, knobs, sides(n, ran_at))


@st.cache_resource(max_entries=256, ttl=600, show_spinner="Re-ranking…")
def reranked(n: int, ran_at: Any, text: str, knobs: live.Knobs) -> live.Ranked:
    fused_list = fused(n, ran_at, text, replace(knobs, rerank=0, reranker="maxsim"))
    return live.reranked(recall_dataset(), text, fused_list, knobs.rerank, knobs.reranker)


def run(n: int, ran_at: Any, text: str, knobs: live.Knobs) -> list[live.Ranked]:
    """`text` through every ranker on size `n`, each answer from its own cache."""
    k1, b = knobs.k1, knobs.b
    out = [
        alone(n, ran_at, kind, text, *((k1, b) if kind == "bm25" else (live.K1, live.B)))
        for kind in live.ALONE
    ]
    out.append(fused(n, ran_at, text, replace(knobs, rerank=0, reranker="maxsim")))
    if knobs.rerank:
        out.append(reranked(n, ran_at, text, knobs))
    return out


@st.cache_data(max_entries=512, ttl=600, show_spinner=False)
def passages(keys: tuple[int, ...]) -> list[str]:
    return live.texts(recall_dataset(), keys)
