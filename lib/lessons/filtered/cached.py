"""The Filtered search page's entry points, cached by their parameters and shared by every
session: stored or measured query sets, one query as it ran, the trap's proof."""

from __future__ import annotations

from typing import Any

import streamlit as st

from lib.core.kept import Kept
from lib.harness.recall import HarnessError
from lib.lessons.filtered import search as filtered_search
from lib.lessons.filtered import tables as filtered_tables
from lib.ui.connection import database
from lib.ui.resources import recall_dataset


def _filtered_table(n: int, built_at: Any):
    table = filtered_tables.status(database(), recall_dataset(), n)
    if table is None or table.built_at != built_at:
        raise HarnessError(f"the filtered table of {n:,} rows was rebuilt; reload the page")
    return table


# The query set a page shows is st.cache_resource: a hit is the object itself, shared and never
# changed (the page only reads it), where st.cache_data unpickled a copy of every query's
# figures at every click. A Run holds about 54 kB as Python objects (6 kB pickled), so few are
# kept this way.
@st.cache_resource(max_entries=64, ttl=600, show_spinner="Running the query set…")
def filtered_run(n: int, built_at: Any, cell):
    """One filtered query set on size `n`'s filtered table as built: the stored run, or one
    measured now and stored (for every process). Cached here for ten minutes."""
    table = _filtered_table(n, built_at)
    return filtered_search.stored_or_measured(database(), recall_dataset(), table, cell)


@st.cache_data(max_entries=64, ttl=15, show_spinner=False)
def _stored_versions(n: int, built_at: Any, cells: tuple) -> dict:
    """Which of `cells` are stored, and when each was (read again at most every 15 s)."""
    return filtered_search.stored_versions(database(), _filtered_table(n, built_at), cells)


# Stored runs by (size, build, cell, when stored): a stored run never changes, so each is read
# once and every session is handed that object, and what a page draws from the runs is drawn
# once (lib/ui/derived.py). Only which runs are stored, and when, is read again every 15 s:
# reading the runs themselves through st.cache_data unpickled about 20 of them at every click.
_RUNS = Kept(128)


def filtered_stored(n: int, built_at: Any, cells: tuple) -> dict:
    """The runs of `cells` stored so far, by cell."""
    versions = _stored_versions(n, built_at, cells)
    slots = {cell: (n, built_at, cell, at) for cell, at in versions.items()}
    found = {cell: run for cell, slot in slots.items() if (run := _RUNS.get(slot)) is not None}
    missing = [cell for cell in slots if cell not in found]
    if missing:
        read = filtered_search.stored(database(), _filtered_table(n, built_at), missing)
        for cell, run in read.items():
            if cell not in slots:
                continue
            _RUNS.put(slots[cell], run)
            found[cell] = run
    return found


def filtered_measure(n: int, built_at: Any, cells, *, again: bool = False) -> None:
    """Measure `cells` now (those not stored yet, or all of them `again`), with a progress
    bar, and forget the cached reads that did not have them."""
    table = _filtered_table(n, built_at)
    bar = st.progress(0.0)
    for i, cell in enumerate(cells):
        bar.progress(i / len(cells), text=f"{cell.filter.label()}, {cell.path}, {cell.mode}…")
        filtered_search.stored_or_measured(database(), recall_dataset(), table, cell, again=again)
        filtered_run.clear(n, built_at, cell)
    bar.empty()
    _stored_versions.clear()


@st.cache_data(max_entries=128, ttl=600, show_spinner=False)
def filtered_script(n: int, built_at: Any, cell, query: int, explain: bool = False):
    """One query of `cell` run now (or EXPLAIN ANALYZE'd), as the Script a learner pastes."""
    table = _filtered_table(n, built_at)
    q = recall_dataset().queries[query]
    return filtered_search.script(database(), table.name, cell, q, explain=explain)


@st.cache_data(max_entries=32, ttl=600, show_spinner=False)
def filtered_proof(n: int, built_at: Any, cell, query: int):
    """The exact count of rows closer than the trap's threshold, as the Script that ran."""
    table = _filtered_table(n, built_at)
    q = recall_dataset().queries[query]
    return filtered_search.exact_count_script(database(), table.name, cell, q)
