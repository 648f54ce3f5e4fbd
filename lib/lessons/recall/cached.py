"""The Recall at scale page's entry points, cached by their parameters and shared by every
session: stored measurements, one query side by side, the server's vector columns.

The measurements are `st.cache_resource`: a hit returns the stored report itself (the page
only reads it), where `st.cache_data` unpickled a copy on every click."""

from __future__ import annotations

from typing import Any

import streamlit as st

from lib.harness import recall, truths
from lib.lessons.recall import generator_check
from lib.lessons.recall import vector_columns as vc
from lib.ui.connection import database
from lib.ui.resources import recall_dataset


@st.cache_data(max_entries=4, ttl=60, show_spinner=False)
def generator_checks(fingerprint: str):
    """Real against generated rows as stored for this dataset (generator_check.py)."""
    return generator_check.stored(database(), recall_dataset())


@st.cache_resource(
    max_entries=128, ttl=600, show_spinner="Running the query set through the index…"
)
def recall_report(table: str, loaded_at: Any, index: str, built_at: Any, knobs: tuple, rows: int):
    """recall@10 of `index` on `table` under `knobs`, measured against the stored truth.

    Shared by every session for ten minutes: the page shows when it ran, and a learner can
    ask for a new run (`recall_report.clear(...)` with the same arguments)."""
    ds = recall_dataset()
    truth = truths.load(database(), table, loaded_at, ds.queries_fingerprint, recall.K)
    if truth is None:
        raise recall.HarnessError(f"no stored ground truth for {table} yet")
    return recall.measure(
        database(), recall.generated_target(table), ds.queries, knobs=dict(knobs),
        truth=truth, rows=rows,
    )  # fmt: skip


@st.cache_resource(max_entries=256, ttl=600, show_spinner=False)
def recall_side_by_side(
    table: str, loaded_at: Any, index: str, built_at: Any, knobs: tuple, query: int
):
    """One query's exact top 10 and the index's answer (cached like `recall_report`)."""
    ds = recall_dataset()
    return recall.side_by_side(
        database(), recall.generated_target(table), ds.queries[query], knobs=dict(knobs)
    )


@st.cache_data(ttl=60, show_spinner=False)
def vector_columns():
    """The server's readable vector columns (asked again at most once a minute)."""
    return vc.vector_columns(database())
