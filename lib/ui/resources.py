"""Resources every page shares, made once per process and never mutated: the embedding
models, query vectors, the lesson corpus as each model sees it, the recall tables' dataset,
this process's worker for the job queue, and what sizes are ready."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psycopg
import streamlit as st

from lib.core import vectors
from lib.core.corpus import load_items
from lib.core.embeddings.base import EmbeddingModel
from lib.core.embeddings.cache import EmbeddingCache
from lib.core.embeddings.local import use_one_thread_per_query
from lib.core.embeddings.registry import ModelChoice, load_model
from lib.core.embeddings.registry import model_choices as _model_choices
from lib.core.jobs import Worker
from lib.core.queries import text_vector
from lib.core.store import ensure_corpus_table
from lib.core.vectors import embeddable, item_vectors
from lib.dataset.passages import load_dataset
from lib.harness import size_jobs as jobs
from lib.harness import truths
from lib.harness.evals import query_key
from lib.harness.recall import K
from lib.ui.connection import _open_database, database, shared_database


@st.cache_resource(show_spinner=False)
def model_choices() -> list[ModelChoice]:
    return _model_choices()


@st.cache_resource(show_spinner="Loading the embedding model…")
def model(name: str) -> EmbeddingModel:
    """The shared model object for `name` (weights load once, on first use)."""
    use_one_thread_per_query()
    return load_model(name)


@st.cache_resource(show_spinner=False)
def _embedding_cache(path: str) -> EmbeddingCache:
    return EmbeddingCache(Path(path))


@st.cache_data(max_entries=256, show_spinner=False)
def query_vector(model_name: str, text: str) -> np.ndarray:
    """`model_name`'s query vector for `text`, shared by every page and session (a rerun or a
    second learner asking for the same text does not embed it again). A query the evals
    already embedded (every labelled query, by `make prepare`) is read from the embedding
    cache, the same float32 vector the model gave then; others are embedded now, and not
    written there (typed text stays out of the cache on disk)."""
    m = model(model_name)
    key = query_key(text)
    found = (
        _embedding_cache(str(vectors.cache_path()))
        .get_many(m.info.name, m.info.dimension, [key])
        .get(key)
    )
    return found if found is not None else text_vector(m, text)


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
    table = ensure_corpus_table(shared_database(), model_name, items, vectors)
    return Corpus(model_name, tuple(items), skipped, vectors, table)


@st.cache_resource(show_spinner="Reading the 310,000 passages of the recall tables…")
def recall_dataset():
    """The recall page's dataset: the real corpus (vectors in the embedding cache), held-out
    queries, and the generator past the real rows."""
    return load_dataset()


@st.cache_resource(show_spinner=False)
def _worker(url: str | None):
    use_one_thread_per_query()  # a job embedding passages here leaves a core to the room
    return Worker(_open_database(url), recall_dataset())


def worker():
    """This process's worker for the one job queue (started once): it runs the kinds of job
    that the pages drawn in this process registered."""
    return _worker(os.environ.get("DATABASE_URL") or None)


@st.cache_data(max_entries=64, ttl=10, show_spinner=False)
def embedding_estimate(fingerprint: str, n: int):
    """What a size still needs embedded, and how long that takes here (None: nothing)."""
    return recall_dataset().embedding_estimate(n)


def recall_truth(status):
    """The stored ground truth of a loaded recall table, or None while it is computed."""
    return truths.of_table(database(), recall_dataset(), status, K)


def sizes_overview() -> dict[str, list] | None:
    """Every recall size's state, read now, as columns for a table; None (with a message on
    the page) when this database user may not create the lab's bookkeeping tables."""
    try:
        states = jobs.sizes_overview(database(), recall_dataset())
    except psycopg.errors.InsufficientPrivilege as e:
        st.info(
            "This database user may not create the lab's own tables "
            f"(PostgreSQL said: {e.diag.message_primary}), so Recall at scale cannot build "
            "its sizes here. Grant it CREATE on a schema, or use the embedded server.",
            icon=":material/lock:",
        )
        return None
    return {
        "rows": [f"{s.n:,}" for s in states],
        "state": [s.state for s in states],
        "detail": [s.detail for s in states],
    }


@st.cache_data(ttl=10, show_spinner=False)
def ready_sizes() -> list[int]:
    """The recall sizes ready on this server (asked again at most every ten seconds)."""
    return [s.n for s in jobs.sizes_overview(database(), recall_dataset()) if s.state == "ready"]
