"""The Evals page's entry points, cached by their parameters and shared by every session: the
stored report, the passages a drill-down shows, one query run now through each system."""

from __future__ import annotations

from typing import Any

import streamlit as st
from psycopg import sql

from lib.core.psql import Script
from lib.dataset import text_tables
from lib.harness import evals
from lib.lessons.evals import reports
from lib.ui.connection import database
from lib.ui.resources import model, recall_dataset
from lib.ui.stored_reports import StoredOf

# The newest stored report of a size: asked again at most every 15 s, read once by its id, and
# the object itself on a hit (lib/ui/stored_reports.py).
stored = StoredOf(reports.SUITE)


# No TTL: the count follows from the labels and the size's sample, which do not change while
# the process runs (it took about 50 ms a size, and the size picker asks for every size).
@st.cache_data(max_entries=16, show_spinner=False)
def evaluable(n: int) -> int:
    return reports.evaluable(recall_dataset(), n)


@st.cache_data(max_entries=64, ttl=600, show_spinner=False)
def passages(text_table: str, doc_ids: tuple[str, ...]) -> dict[str, str]:
    """The passage of each doc id, read from the size's text table."""
    rows = database().fetchall(
        sql.SQL("SELECT chunk_id, body FROM {} WHERE chunk_id = ANY(%s)")
        .format(sql.Identifier(text_table))
        .as_string(),
        (list(doc_ids),),
    )
    return dict(rows)


@st.cache_data(max_entries=64, ttl=600, show_spinner="Running the query through each system…")
def live_query(n: int, ran_at: Any, query_id: str) -> list[tuple[str, Script]]:
    """One labelled query run now through each of the page's systems, as the Scripts that
    ran (the SQL shown, and what pasting it into psql gives)."""
    db, ds = database(), recall_dataset()
    found = stored(n)
    if found is None:
        return []
    query = found.report["labelled"][query_id]
    text = text_tables.table_name(n)
    vector = evals.query_vectors(model(ds.model_name), [query["text"]], ds.cache)[0]
    out = []
    for system in reports.systems(db, ds, n, text):
        value = vector if system.input == evals.VECTOR else query["text"]
        out.append((system.label, system.script(db, value)))
    return out
