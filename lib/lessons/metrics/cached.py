"""The Distance metrics page's entry points: results that depend only on their parameters,
cached and shared by every session."""

from __future__ import annotations

import numpy as np
import streamlit as st

from lib.lessons.metrics import rankings as metrics
from lib.ui.connection import shared_database

# ---- results that depend only on their parameters, shared by every session --------------
# Each is a query that ran (the Script inside says what ran); asked again with the same
# parameters, by anyone, it is not run again. The corpus tables are rebuilt only when the
# corpus changes, which restarts the app.


@st.cache_data(max_entries=512, show_spinner=False)
def postgres_rankings(names: tuple[str, ...], docs: np.ndarray, query: np.ndarray, normalise: bool):
    """Distance metrics' 2-D documents ranked by Postgres under each operator."""
    return metrics.postgres_rankings(
        shared_database(), list(names), docs, query, normalise=normalise
    )


@st.cache_data(max_entries=256, show_spinner=False)
def corpus_rankings(
    table: str, query: np.ndarray, k: int, scaled_ids: tuple[str, ...] = (), factor: float = 1.0
):
    """The corpus's top k under each operator, some documents scaled on the way."""
    return metrics.corpus_rankings(
        shared_database(), table, query, k=k, scaled_ids=list(scaled_ids), factor=factor
    )


@st.cache_data(max_entries=128, show_spinner=False)
def operator_plans(table: str, query: np.ndarray):
    """EXPLAIN ANALYZE (no timings) of the top 10 under each operator."""
    return metrics.operator_plans(shared_database(), table, query)


@st.cache_data(max_entries=16, show_spinner=False)
def norm_range(table: str) -> tuple[float, float]:

    return metrics.norm_range(shared_database(), table)


@st.cache_data(max_entries=16, show_spinner=False)
def index_opclasses(table: str) -> list[tuple[str, str]]:

    return metrics.index_opclasses(shared_database(), table)
