"""The Index tuning page's entry points, cached by their parameters and shared by every
session: stored sweeps, the gallery's plans, one query of a configuration."""

from __future__ import annotations

from typing import Any

import streamlit as st

from lib.core.psql import run
from lib.dataset.index_configs import Config, ConfigQuery
from lib.harness import recall
from lib.lessons.tuning import frontier
from lib.lessons.tuning import gallery as index_gallery
from lib.ui.connection import database
from lib.ui.resources import recall_dataset


@st.cache_resource(max_entries=64, show_spinner=False)
def tuning_sweep(sweep_id: int):
    """A stored sweep's points, read once per process and shared, never copied: a stored
    sweep never changes, and no page mutates it."""
    return frontier.load(database(), sweep_id, ids=False)


@st.cache_data(max_entries=64, ttl=600, show_spinner="Running EXPLAIN (ANALYZE, BUFFERS)…")
def gallery_case(key: str, table: str, loaded_at: Any, index: str, built_at: Any, query: int):
    """One "why isn't my index used?" case, both statements EXPLAIN ANALYZE'd on `table`
    (cached by the table as loaded and the index as built, for ten minutes)."""
    ds = recall_dataset()
    case = index_gallery.BY_KEY[key]
    return index_gallery.run_case(database(), case, table, ds.dimension, ds.queries[query])


@st.cache_data(max_entries=64, ttl=600, show_spinner=False)
def config_query(
    table: str, config: dict, oversample: int, knob: str, value: int, built_at: Any, query: int
):
    """One query of a configuration at one knob value, run now with its distance column, and
    (for binary quantization) its EXPLAIN ANALYZE: the statement as the sweep ran it."""
    ds = recall_dataset()
    shape = ConfigQuery(table, Config.from_json(config), ds.dimension, oversample)
    settings = frontier.settings_for(knob, value)
    q = ds.queries[query]
    rows = run(database(), [shape.statement(q, recall.K, with_distance=True)], settings)
    plan = None
    if shape.config.kind == "binary":
        plan = run(database(), [shape.statement(q, recall.K, explain=True)], settings)
    return rows, plan
