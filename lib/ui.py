"""Streamlit helpers shared by every page: the sidebar, the shared database and models.

The only module in lib/ that imports Streamlit. Cached resources are shared by every
session and never mutated; per-user state is a few names and numbers in session_state.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st

from lib.corpus import load_items
from lib.database import Database, DatabaseUnavailable, open_database
from lib.embeddings.base import EmbeddingError, EmbeddingModel
from lib.embeddings.local import use_one_thread_per_query
from lib.embeddings.registry import ModelChoice, default_model_name, load_model, model_choices
from lib.store import ensure_corpus_table
from lib.vectors import embeddable, item_vectors

PROJECT_DIR = Path(__file__).resolve().parent.parent

# (file, label, icon, one line on what the page teaches); pages not written yet are skipped.
PAGES = [
    ("streamlit_app.py", "Home", ":material/home:", "what this is and where to start"),
    (
        "pages/1_Embedding_space.py",
        "Embedding space",
        ":material/scatter_plot:",
        "an embedding is a point; similar inputs land close; the model decides",
    ),
    (
        "pages/2_Distance_metrics.py",
        "Distance metrics",
        ":material/straighten:",
        "cosine `<=>`, L2 `<->`, inner product `<#>`: when they agree and when they don't",
    ),
    (
        "pages/3_Recall_at_scale.py",
        "Recall at scale",
        ":material/query_stats:",
        "exact scan vs HNSW: the index silently skips right answers; measure it",
    ),
]

MODEL_KEY = "model_name"


def existing_pages() -> list[tuple[str, str, str, str]]:
    return [p for p in PAGES if (PROJECT_DIR / p[0]).exists()]


@st.cache_resource(show_spinner="Starting PostgreSQL…")
def _open_database(url: str | None) -> Database:
    return open_database(url)


def _database() -> Database:
    return _open_database(os.environ.get("DATABASE_URL") or None)


def database() -> Database:
    """The shared Database; on failure, one clear message with the fix, and the page stops."""
    try:
        return _database()
    except DatabaseUnavailable as e:
        st.error(f"**PostgreSQL is not available.** {e.problem}", icon=":material/error:")
        st.info(f"**How to fix:** {e.fix}")
        st.stop()


@st.cache_resource(show_spinner=False)
def _choices() -> list[ModelChoice]:
    return model_choices()


@st.cache_resource(show_spinner="Loading the embedding model…")
def model(name: str) -> EmbeddingModel:
    """The shared model object for `name` (weights load once, on first use)."""
    use_one_thread_per_query()
    return load_model(name)


@st.cache_data(max_entries=256, show_spinner=False)
def query_vector(model_name: str, text: str) -> np.ndarray:
    """`model_name`'s query vector for `text`, shared by every page and session (a rerun or a
    second learner asking for the same text does not embed it again)."""
    from lib.queries import text_vector

    return text_vector(model(model_name), text)


def model_name() -> str:
    """The model this session has chosen (the default until the learner picks another)."""
    available = [c.info.name for c in _choices() if c.available]
    name = st.session_state.get(MODEL_KEY)
    if name not in available:
        name = default_model_name() if default_model_name() in available else available[0]
        st.session_state[MODEL_KEY] = name
    return name


def _set_model() -> None:
    st.session_state[MODEL_KEY] = st.session_state["_model_picker"]


def sidebar(*, model_picker: bool = True) -> None:
    """Draw the page list, the model picker and the database facts in the sidebar."""
    with st.sidebar:
        st.markdown("### pgvector lab")
        pages = existing_pages()
        # Streamlit only knows pages when pages/ has some; a lone home page links nowhere.
        for file, label, icon, _ in pages if len(pages) > 1 else []:
            st.page_link(file, label=label, icon=icon)
        st.divider()
        if model_picker:
            choices = _choices()
            names = [c.info.name for c in choices if c.available]
            current = model_name()
            st.selectbox(
                "Embedding model",
                names,
                index=names.index(current),
                key="_model_picker",
                on_change=_set_model,
                help="Every vector on every page comes from this model. "
                "Vectors of two models are never compared.",
            )
            info = next(c.info for c in choices if c.info.name == current)
            st.caption(
                f"{info.dimension} dimensions · embeds {' and '.join(sorted(info.modalities))}"
                + _served_by(current)
            )
            unavailable = [c for c in choices if not c.available]
            if unavailable:
                with st.expander("Other models"):
                    for c in unavailable:
                        st.markdown(f"**{c.info.name}** — {c.howto}")
        _server_facts()


def _served_by(name: str) -> str:
    """Where a remote model's vectors come from, when it is not the vendor's own API."""
    from lib.embeddings import voyage

    url = voyage.configured_base_url()
    if name != voyage.MODEL_NAME or url == voyage.DEFAULT_BASE_URL:
        return ""
    return f"  \nserved by {url} ({voyage.BASE_URL_ENV}), not Voyage AI's own API"


def _server_facts() -> None:
    try:
        info = _database().info()
    except DatabaseUnavailable as e:
        st.error(f"PostgreSQL unavailable: {e.problem}")
        return
    except Exception as e:  # the sidebar must never take a page down
        st.error(f"PostgreSQL did not answer: {e}")
        return
    st.markdown("**Database**")
    st.caption(
        f"{info.location}  \nPostgreSQL {info.server_version} · pgvector {info.pgvector_version}"
    )


def show_sql(sql: str, params: Mapping[str, Any] | Sequence[Any] | None = None) -> None:
    """Show the SQL that ran, as a learner could paste it into psql, and its parameters."""
    st.code(sql.strip(), language="sql")
    if params:
        st.caption("Parameters: " + describe_params(params))


def describe_params(params: Mapping[str, Any] | Sequence[Any]) -> str:
    """Parameters as text, with vectors shown by their size rather than all their numbers."""
    items = params.items() if isinstance(params, Mapping) else enumerate(params, start=1)
    return " · ".join(f"`{k}` = {_short(v)}" for k, v in items)


def _short(value: Any) -> str:
    shape = getattr(value, "shape", None)
    if shape is not None and len(shape) >= 1 and shape[-1] > 8:
        head = ", ".join(f"{x:.3f}" for x in value.ravel()[:3])
        return f"vector({shape[-1]}) [{head}, …]"
    if isinstance(value, str) and len(value) > 80:
        return repr(value[:77] + "…")
    return repr(value)


def embedding_error(e: EmbeddingError) -> None:
    st.error(str(e), icon=":material/error:")


@dataclass(frozen=True)
class Corpus:
    """The corpus as one model sees it: what it embedded, what it could not, and where."""

    model_name: str
    items: tuple  # CorpusItem, in the order of `vectors`' rows
    skipped: tuple  # CorpusItem the model cannot embed (photos under a text-only model)
    vectors: np.ndarray  # read-only float32 (len(items), dimension)
    table: str  # the Postgres table holding them, with an HNSW index


@st.cache_resource(show_spinner="Embedding the corpus and loading it into PostgreSQL…")
def corpus(model_name: str) -> Corpus:
    """The lesson corpus embedded by `model_name` and loaded into its table (shared, read-only)."""
    m = model(model_name)
    everything = load_items()
    items = embeddable(m, everything)
    skipped = tuple(it for it in everything if it not in items)
    vectors = item_vectors(m, items)
    vectors.setflags(write=False)
    table = ensure_corpus_table(_database(), model_name, items, vectors)
    return Corpus(model_name, tuple(items), skipped, vectors, table)


@st.cache_resource(show_spinner="Loading the passage vectors and their generator…")
def recall_dataset():
    """The recall page's dataset: real passage vectors, held-out queries, fitted generator."""
    from lib.datasets import load_dataset

    return load_dataset()


@st.cache_resource(show_spinner=False)
def _recall_builds(url: str | None):
    from lib.builds import BuildManager

    return BuildManager(_open_database(url), recall_dataset())


def recall_builds():
    """The one BuildManager of this server process: every session shares its jobs."""
    return _recall_builds(os.environ.get("DATABASE_URL") or None)
