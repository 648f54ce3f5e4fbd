"""The Re-embedding page's entry points, cached by their parameters and shared by every
session: the stored reports, their figures, the guard run now."""

from __future__ import annotations

import streamlit as st

from lib.lessons.reembed import demo, view
from lib.ui.connection import database
from lib.ui.resources import recall_dataset


@st.cache_data(ttl=600, show_spinner=False)
def sizes() -> list[int]:
    return demo.sizes(recall_dataset())


@st.cache_data(ttl=5, show_spinner=False)
def stored_sizes() -> list[int]:
    return demo.stored_sizes(database())


@st.cache_data(max_entries=16, ttl=5, show_spinner=False)
def newest_id(kind: str, n: int) -> int | None:
    """The newest stored report's id (asked again at most every 5 s: a new run shows)."""
    return demo.newest_id(database(), kind, n)


# A stored report never changes: it is read once, and every session is handed that object
# (never a copy), so what the page draws from it is drawn once too (lib/ui/derived.py).
@st.cache_resource(max_entries=16, show_spinner=False)
def stored_report(report_id: int) -> demo.Stored | None:
    return demo.stored_by_id(database(), report_id)


def stored(kind: str, n: int) -> demo.Stored | None:
    """The newest stored report of `kind` for size `n`."""
    report_id = newest_id(kind, n)
    return None if report_id is None else stored_report(report_id)


@st.cache_resource(max_entries=8, show_spinner=False)  # one spec, shared, never copied
def latency_figure(report_id: int, n: int):
    found = stored_report(report_id)
    return view.latency_figure(found.report) if found else None


@st.cache_resource(max_entries=8, show_spinner=False)
def drift_figure(report_id: int, n: int):
    found = stored_report(report_id)
    return view.drift_figure(found.report) if found else None


@st.cache_data(max_entries=8, ttl=2, show_spinner=False)
def view_model(n: int) -> str | None:
    """The model whose vectors the demo table's view serves now (None: no migration)."""
    return demo.view_model(database(), n)


@st.cache_data(max_entries=16, ttl=600, show_spinner="Running the guard now…")
def guard(n: int, report_id: int, model: str | None) -> demo.Guard | None:
    """The guard run now, again whenever the view's model changes."""
    return demo.guard(database(), recall_dataset(), n)


def clear() -> None:
    newest_id.clear()
    stored_sizes.clear()
    view_model.clear()
    guard.clear()
