"""The sidebar every page draws: the page list, the model picker, the database facts; and
the model this session has chosen."""

from __future__ import annotations

import functools
from pathlib import Path

import streamlit as st

from lib.core.database import DatabaseBusy, DatabaseUnavailable, ExtensionMissing
from lib.core.embeddings import voyage
from lib.core.embeddings.registry import default_model_name
from lib.core.lab_schema import LAB_SCHEMA
from lib.ui import resources, st_internals, text
from lib.ui.connection import offer_extension, shared_database

PROJECT_DIR = Path(__file__).resolve().parents[2]

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
    (
        "pages/4_Index_tuning.py",
        "Index tuning",
        ":material/tune:",
        "recall against latency for every setting, quantization, and why an index is not used",
    ),
    (
        "pages/5_Filtered_search.py",
        "Filtered search",
        ":material/filter_alt:",
        "a WHERE clause returns fewer rows than LIMIT; pgvector 0.8's iterative scans fix it",
    ),
    (
        "pages/6_Evals.py",
        "Evals",
        ":material/fact_check:",
        "is the answer right? labelled queries, nDCG with intervals, a regression gate",
    ),
    (
        "pages/7_Hybrid_search.py",
        "Hybrid search",
        ":material/join:",
        "full text and vectors fused in one SQL query, BM25 three ways, re-ranking and its cost",
    ),
    (
        "pages/8_Re_embedding.py",
        "Re-embedding",
        ":material/sync_alt:",
        "the model is part of the data: the mixed-models trap, a live migration, drift",
    ),
]

MODEL_KEY = "model_name"


@functools.cache
def existing_pages() -> list[tuple[str, str, str, str]]:
    return [p for p in PAGES if (PROJECT_DIR / p[0]).exists()]


def model_name() -> str:
    """The model this session has chosen (the default until the learner picks another)."""
    available = [c.info.name for c in resources.model_choices() if c.available]
    name = st.session_state.get(MODEL_KEY)
    if name not in available:
        name = default_model_name() if default_model_name() in available else available[0]
        st.session_state[MODEL_KEY] = name
    return name


def _set_model() -> None:
    st.session_state[MODEL_KEY] = st.session_state["_model_picker"]


def sidebar(*, model_picker: bool = True) -> None:
    """Draw the page list, the model picker and the database facts in the sidebar."""
    st_internals.memory_keeper()
    with st.sidebar:
        st.markdown("### pgvector lab")
        pages = existing_pages()
        # Streamlit only knows pages when pages/ has some; a lone home page links nowhere.
        for file, label, icon, _ in pages if len(pages) > 1 else []:
            st.page_link(file, label=label, icon=icon)
        st.divider()
        if model_picker:
            choices = resources.model_choices()
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
    url = voyage.configured_base_url()
    if name != voyage.MODEL_NAME or url == voyage.DEFAULT_BASE_URL:
        return ""
    return f"  \nserved by {url} ({voyage.BASE_URL_ENV}), not Voyage AI's own API"


def _server_facts() -> None:
    try:
        info = shared_database().info()
    except DatabaseBusy as e:
        st.warning(f"{e.HEADLINE} {text.plain(e.detail)}")
        return
    except ExtensionMissing as e:
        st.error(text.plain(e.problem))
        offer_extension("create", "sidebar")
        return
    except DatabaseUnavailable as e:
        st.error(f"PostgreSQL unavailable: {text.plain(e.problem)}")
        return
    except Exception as e:  # the sidebar must never take a page down
        st.error(f"PostgreSQL did not answer: {text.plain(str(e))}")
        return
    st.markdown("**Database**")
    st.caption(
        f"{info.location}  \nPostgreSQL {info.server_version} · pgvector "
        f"{info.pgvector_version} in this database, {info.pgvector_available} on the server"
        f"  \nThe lab's tables: schema `{LAB_SCHEMA}`. To paste a page's SQL: "
        f"`{info.psql}`"
    )
    if info.pgvector_outdated:
        st.warning(info.pgvector_outdated, icon=":material/warning:")
        if info.kind == "url":  # the lab's own server is updated at start
            offer_extension("update", "sidebar")
