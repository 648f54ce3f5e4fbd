"""The Distance metrics page's entry points: results that depend only on their parameters,
cached and shared by every session.

They are `st.cache_resource`: a hit returns the stored object itself, where `st.cache_data`
would unpickle a copy on every click. Nothing here is mutated after it is made (frozen
dataclasses, frames and dicts that the page only reads)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import streamlit as st

from lib.lessons.metrics import rankings as metrics
from lib.lessons.metrics import view as tables
from lib.lessons.metrics.vector_arrows import picture_data
from lib.ui import derived
from lib.ui.connection import shared_database

# ---- results that depend only on their parameters, shared by every session --------------
# Each is a query that ran (the Script inside says what ran); asked again with the same
# parameters, by anyone, it is not run again. The corpus tables are rebuilt only when the
# corpus changes, which restarts the app.

Points = tuple[tuple[str, tuple[float, float]], ...]


@dataclass(frozen=True)
class Picture:
    """What the picture's fragment shows for one set of arrows, numpy's and Postgres's."""

    names: tuple[str, ...]
    docs: np.ndarray  # as drawn (not normalised)
    query: np.ndarray
    ours: dict[str, list[metrics.Ranked]]
    agreement: metrics.Agreement
    rankings_frame: pa.Table  # as st.dataframe shows it (converted once, here)
    pg: metrics.PostgresRankings
    engines_frame: pa.Table
    same: dict[str, bool]  # per metric: Postgres orders as numpy does
    gap: float  # the largest difference between numpy's value and Postgres's
    script_text: str


@st.cache_resource(max_entries=512, show_spinner=False)
def picture(points: Points, normalise: bool) -> Picture:
    """The arrows ranked in numpy and by Postgres under each operator, and their tables."""
    names, docs, query = metrics.split(dict(points))
    used_docs = metrics.normalised(docs) if normalise else docs
    used_query = metrics.normalised(query[None, :])[0] if normalise else query
    ours = metrics.numpy_rankings(names, used_docs, used_query)
    pg = metrics.postgres_rankings(shared_database(), names, docs, query, normalise=normalise)
    for a in (docs, query):
        a.setflags(write=False)
    return Picture(
        tuple(names), docs, query, ours, metrics.agreement(ours),
        derived.arrow(tables.rankings_table(ours)), pg,
        derived.arrow(tables.engines_table(ours, pg.rankings)),
        metrics.orders_match(used_docs, used_query, ours, pg.rankings),
        metrics.largest_difference(ours, pg.rankings), pg.script.text(),
    )  # fmt: skip


@st.cache_resource(max_entries=512, show_spinner=False)
def arrows(points: Points, normalise: bool, metric_key: str) -> dict[str, Any]:
    """What the vector arrows component draws for these arrows under one metric."""
    p = picture(points, normalise)
    return picture_data(
        p.names, p.docs, p.query, metric_key, p.ours[metric_key], normalise=normalise
    )


@st.cache_resource(max_entries=256, show_spinner=False)
def corpus_rankings(
    table: str, query: np.ndarray, k: int, scaled_ids: tuple[str, ...] = (), factor: float = 1.0
):
    """The corpus's top k under each operator, some documents scaled on the way."""
    return metrics.corpus_rankings(
        shared_database(), table, query, k=k, scaled_ids=list(scaled_ids), factor=factor
    )


@st.cache_resource(max_entries=256, show_spinner=False)
def corpus_frame(
    table: str, query: np.ndarray, k: int, scaled_ids: tuple[str, ...], factor: float
) -> pa.Table:
    """`corpus_rankings` as the page's table (converted for st.dataframe once, here)."""
    real = corpus_rankings(table, query, k, scaled_ids, factor)
    return derived.arrow(tables.corpus_table(real.rankings, list(scaled_ids), factor))


@st.cache_resource(max_entries=128, show_spinner=False)
def operator_plans(table: str, query: np.ndarray):
    """EXPLAIN ANALYZE (no timings) of the top 10 under each operator."""
    return metrics.operator_plans(shared_database(), table, query)


@st.cache_resource(max_entries=16, show_spinner=False)
def norm_range(table: str) -> tuple[float, float]:

    return metrics.norm_range(shared_database(), table)


@st.cache_resource(max_entries=16, show_spinner=False)
def index_opclasses(table: str) -> list[tuple[str, str]]:

    return metrics.index_opclasses(shared_database(), table)
