"""Streamlit helpers shared by every page: the sidebar, the shared database and models.

The only module in lib/ that imports Streamlit. Cached resources are shared by every
session and never mutated; per-user state is a few names and numbers in session_state.
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st

from lib import data_directory
from lib.corpus import load_items
from lib.database import Database, DatabaseUnavailable, DataDirectoryMismatch, open_database
from lib.embeddings.base import EmbeddingError, EmbeddingModel
from lib.embeddings.local import use_one_thread_per_query
from lib.embeddings.registry import ModelChoice, default_model_name, load_model, model_choices
from lib.psql import Script, short_value
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
]

MODEL_KEY = "model_name"


@functools.cache
def existing_pages() -> list[tuple[str, str, str, str]]:
    return [p for p in PAGES if (PROJECT_DIR / p[0]).exists()]


@st.cache_resource(show_spinner="Starting PostgreSQL…")
def _open_database(url: str | None) -> Database:
    return open_database(url)


def _database() -> Database:
    return _open_database(os.environ.get("DATABASE_URL") or None)


def database(*, creates_tables: bool = True) -> Database:
    """The shared Database, answering now (one pooled round trip); otherwise one clear message
    with the fix, and the page stops. The app reconnects by itself when the server is back.
    A page that `creates_tables` (every page but the home page) also stops, with the GRANT
    that fixes it, when this user may not create tables where the lab keeps them."""
    try:
        db = _database()
        db.check()
        if creates_tables:
            _require_create(db)
        return db
    except DatabaseUnavailable as e:
        st.error(f"**PostgreSQL is not available.** {e.problem}", icon=":material/error:")
        st.info(f"**How to fix:** {e.fix}")
        if isinstance(e, DataDirectoryMismatch):
            st.button(
                f"Move {e.pgdata.name} aside and start an empty PostgreSQL {e.bundled}",
                on_click=_move_data_directory_aside,
                args=(e.pgdata, e.bundled),
                icon=":material/drive_file_move:",
                help="Renames the directory (nothing is deleted); the lab rebuilds its tables.",
            )
        st.stop()


@st.cache_data(ttl=10, show_spinner=False)
def _create_denied(conninfo: str) -> tuple[str, str] | None:
    """None when this user may create tables in the schema the lab's tables go to (the first
    of its search_path that exists); else the problem and the statement that fixes it. Asked
    again after ten seconds, so a grant made meanwhile is seen at the next click."""
    from psycopg import sql

    db = _database()
    with db.connection() as conn:
        user, schema, database_name, allowed = conn.execute(
            "SELECT current_user, current_schema(), current_database(),"
            " coalesce(has_schema_privilege(current_schema(), 'CREATE'), false)"
        ).fetchone()
        if allowed:
            return None
        if schema is None:
            problem = (
                f"User {user} has no schema to create the lab's tables in: no schema of its "
                "search_path exists in this database."
            )
            fix = sql.SQL("CREATE SCHEMA {} AUTHORIZATION {};").format(
                sql.Identifier(user), sql.Identifier(user)
            )
        else:
            problem = (
                f"User {user} may not create tables in schema {schema} of database "
                f"{database_name}, and the lab keeps its tables there (each model's corpus, "
                "the recall tables, their jobs)."
            )
            fix = sql.SQL("GRANT CREATE ON SCHEMA {} TO {};").format(
                sql.Identifier(schema), sql.Identifier(user)
            )
        return problem, fix.as_string(conn)


def _require_create(db: Database) -> None:
    denied = _create_denied(db.conninfo)
    if denied is None:
        return
    problem, fix = denied
    st.error("**This database user may not create tables.**", icon=":material/lock:")
    st.text(problem)  # names from the server, shown as text
    st.info(
        "**How to fix:** run this as the database's owner (or a superuser), then click again; "
        "or point `DATABASE_URL` at a database this user owns; or unset `DATABASE_URL` to use "
        "the embedded server."
    )
    st.code(fix, language="sql")
    st.stop()


def _move_data_directory_aside(pgdata: Path, bundled: int) -> None:
    moved = data_directory.move_aside(pgdata, expected=bundled)
    if moved is not None:
        st.toast(f"Moved to {moved}", icon=":material/drive_file_move:")


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


@st.cache_resource(show_spinner=False)
def _memory_keeper():
    """This process's lib.memory.Keeper (started once, by the first page drawn; not under
    AppTest, which has no server)."""
    from streamlit import runtime

    from lib import memory

    if not runtime.exists():
        return None
    return memory.start_keeper(_server_sessions)[0]


def _server_sessions():
    """The server's sessions, read on its event loop (the only thread that touches them).
    Closed sessions whose TTL passed are dropped here and shut down as a close would (Streamlit
    itself drops them, without a shutdown, at the next disconnect: their uploaded files stayed).
    None when the event loop is busy; Streamlit internals that changed raise, and stop it."""
    import asyncio
    import concurrent.futures

    from streamlit import runtime

    from lib.memory import Sessions

    rt = runtime.get_instance()
    mgr = rt._session_mgr

    async def read() -> Sessions:
        with mgr._storage_lock:
            expired = mgr._session_storage._cache.expire()
        for _, info in expired:
            info.session.shutdown()
        return Sessions(mgr.num_active_sessions(), len(mgr.list_sessions()), len(expired))

    future = asyncio.run_coroutine_threadsafe(read(), rt._get_async_objs().eventloop)
    try:
        return future.result(timeout=10)
    except concurrent.futures.TimeoutError:
        future.cancel()
        return None


def sidebar(*, model_picker: bool = True) -> None:
    """Draw the page list, the model picker and the database facts in the sidebar."""
    _memory_keeper()
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
        f"{info.location}  \nPostgreSQL {info.server_version} · pgvector "
        f"{info.pgvector_version} in this database, {info.pgvector_available} on the server"
    )
    if info.pgvector_outdated:
        st.warning(info.pgvector_outdated, icon=":material/warning:")


def show_sql(script: Script) -> None:
    """Show a script as it ran, ready to paste into psql, and what its parameters are."""
    st.code(script.text(), language="sql")
    params = script.parameters()
    if params:
        st.caption(
            "`\\bind … \\g` binds the values to `$1`, `$2`, … (psql 16 or later): "
            + " · ".join(f"{plain(name)} = {plain(short_value(v))}" for name, v in params)
            + "."
        )


WORD_JOINER = "\u2060"  # invisible, zero width


def plain(text: str) -> str:
    """`text` escaped for st.markdown and friends, so that it shows as typed: no link, no
    emphasis, no math, no HTML, no emoji shortcode.

    Backslash escapes cover Markdown's syntax. Three things are found in the text after
    escapes are read, so they are broken another way: bare addresses (https://…, www.…,
    name@host), by an invisible word joiner; shortcodes (:smile:), by writing the colon as
    a character reference, which Streamlit's check for them does not read as a colon."""
    text = re.sub(r"(?i)(https?)(?=:)|(www)(?=\.)|(?=@)", lambda m: m.group(0) + WORD_JOINER, text)
    escaped = re.sub(r"([!-/:-@\[-`{-~])", r"\\\1", text)
    return escaped.replace("\\:", "&#58;")


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


@st.cache_resource(show_spinner="Reading the 310,000 passages of the recall tables…")
def recall_dataset():
    """The recall page's dataset: the real corpus (vectors in the embedding cache), held-out
    queries, and the generator past the real rows."""
    from lib.dataset import load_dataset

    return load_dataset()


@st.cache_resource(show_spinner=False)
def _recall_worker(url: str | None):
    from lib.jobs import Worker

    use_one_thread_per_query()  # a job embedding passages here leaves a core to the room
    return Worker(_open_database(url), recall_dataset())


def recall_worker():
    """This process's worker for the shared queue of recall-table jobs (started once)."""
    return _recall_worker(os.environ.get("DATABASE_URL") or None)


@st.cache_resource(show_spinner=False)
def _tuning_worker(url: str | None):
    from lib.tuning_jobs import Worker

    return Worker(_open_database(url), recall_dataset())


def tuning_worker():
    """This process's worker for the Index tuning page's builds and sweeps (started once)."""
    return _tuning_worker(os.environ.get("DATABASE_URL") or None)


@st.cache_data(max_entries=4, ttl=60, show_spinner=False)
def generator_checks(fingerprint: str):
    """Real against generated rows as stored for this dataset (lib/generator_check.py)."""
    from lib import generator_check

    return generator_check.stored(database(), recall_dataset())


@st.cache_data(max_entries=64, ttl=10, show_spinner=False)
def embedding_estimate(fingerprint: str, n: int):
    """What a size still needs embedded, and how long that takes here (None: nothing)."""
    return recall_dataset().embedding_estimate(n)


def recall_truth(status):
    """The stored ground truth of a loaded recall table, or None while it is computed."""
    from lib import truths
    from lib.recall import K

    return truths.of_table(database(), recall_dataset(), status, K)


@st.cache_data(max_entries=128, ttl=600, show_spinner="Running the query set through the index…")
def recall_report(table: str, loaded_at: Any, index: str, built_at: Any, knobs: tuple, rows: int):
    """recall@10 of `index` on `table` under `knobs`, measured against the stored truth.

    Shared by every session for ten minutes: the page shows when it ran, and a learner can
    ask for a new run (`recall_report.clear(...)` with the same arguments)."""
    from lib import recall, truths

    ds = recall_dataset()
    truth = truths.load(database(), table, loaded_at, ds.queries_fingerprint, recall.K)
    if truth is None:
        raise recall.HarnessError(f"no stored ground truth for {table} yet")
    return recall.measure(
        database(), recall.generated_target(table), ds.queries, knobs=dict(knobs),
        truth=truth, rows=rows,
    )  # fmt: skip


@st.cache_data(max_entries=256, ttl=600, show_spinner=False)
def recall_side_by_side(
    table: str, loaded_at: Any, index: str, built_at: Any, knobs: tuple, query: int
):
    """One query's exact top 10 and the index's answer (cached like `recall_report`)."""
    from lib import recall

    ds = recall_dataset()
    return recall.side_by_side(
        database(), recall.generated_target(table), ds.queries[query], knobs=dict(knobs)
    )


@st.cache_resource(max_entries=64, show_spinner=False)
def tuning_sweep(sweep_id: int):
    """A stored sweep's points, read once per process and shared, never copied: a stored
    sweep never changes, and no page mutates it."""
    from lib import frontier

    return frontier.load(database(), sweep_id, ids=False)


@st.cache_data(max_entries=64, ttl=600, show_spinner="Running EXPLAIN (ANALYZE, BUFFERS)…")
def gallery_case(key: str, table: str, loaded_at: Any, index: str, built_at: Any, query: int):
    """One "why isn't my index used?" case, both statements EXPLAIN ANALYZE'd on `table`
    (cached by the table as loaded and the index as built, for ten minutes)."""
    from lib import index_gallery

    ds = recall_dataset()
    case = index_gallery.BY_KEY[key]
    return index_gallery.run_case(database(), case, table, ds.dimension, ds.queries[query])


@st.cache_data(max_entries=64, ttl=600, show_spinner=False)
def config_query(
    table: str, config: dict, oversample: int, knob: str, value: int, built_at: Any, query: int
):
    """One query of a configuration at one knob value, run now with its distance column, and
    (for binary quantization) its EXPLAIN ANALYZE: the statement as the sweep ran it."""
    from lib import frontier, recall
    from lib.index_configs import Config, ConfigQuery
    from lib.psql import run

    ds = recall_dataset()
    shape = ConfigQuery(table, Config.from_json(config), ds.dimension, oversample)
    settings = frontier.settings_for(knob, value)
    q = ds.queries[query]
    rows = run(database(), [shape.statement(q, recall.K, with_distance=True)], settings)
    plan = None
    if shape.config.kind == "binary":
        plan = run(database(), [shape.statement(q, recall.K, explain=True)], settings)
    return rows, plan


@st.cache_resource(show_spinner=False)
def _filtered_worker(url: str | None):
    from lib.filtered_jobs import Worker

    return Worker(_open_database(url), recall_dataset())


def filtered_worker():
    """This process's worker for the shared queue of filtered-table jobs (started once)."""
    return _filtered_worker(os.environ.get("DATABASE_URL") or None)


def _filtered_table(n: int, built_at: Any):
    from lib import filtered_tables
    from lib.recall import HarnessError

    table = filtered_tables.status(database(), recall_dataset(), n)
    if table is None or table.built_at != built_at:
        raise HarnessError(f"the filtered table of {n:,} rows was rebuilt; reload the page")
    return table


@st.cache_data(max_entries=256, ttl=600, show_spinner="Running the query set…")
def filtered_run(n: int, built_at: Any, cell):
    """One filtered query set on size `n`'s filtered table as built: the stored run, or one
    measured now and stored (for every process). Cached here for ten minutes."""
    from lib import filtered_search

    table = _filtered_table(n, built_at)
    return filtered_search.stored_or_measured(database(), recall_dataset(), table, cell)


@st.cache_data(max_entries=64, ttl=15, show_spinner=False)
def filtered_stored(n: int, built_at: Any, cells: tuple):
    """The runs of `cells` stored so far (read again at most every 15 s)."""
    from lib import filtered_search

    return filtered_search.stored(database(), _filtered_table(n, built_at), cells)


def filtered_measure(n: int, built_at: Any, cells, *, again: bool = False) -> None:
    """Measure `cells` now (those not stored yet, or all of them `again`), with a progress
    bar, and forget the cached reads that did not have them."""
    from lib import filtered_search

    table = _filtered_table(n, built_at)
    bar = st.progress(0.0)
    for i, cell in enumerate(cells):
        bar.progress(i / len(cells), text=f"{cell.filter.label()}, {cell.path}, {cell.mode}…")
        filtered_search.stored_or_measured(database(), recall_dataset(), table, cell, again=again)
        filtered_run.clear(n, built_at, cell)
    bar.empty()
    filtered_stored.clear()


@st.cache_data(max_entries=128, ttl=600, show_spinner=False)
def filtered_script(n: int, built_at: Any, cell, query: int, explain: bool = False):
    """One query of `cell` run now (or EXPLAIN ANALYZE'd), as the Script a learner pastes."""
    from lib import filtered_search

    table = _filtered_table(n, built_at)
    q = recall_dataset().queries[query]
    return filtered_search.script(database(), table.name, cell, q, explain=explain)


@st.cache_data(max_entries=32, ttl=600, show_spinner=False)
def filtered_proof(n: int, built_at: Any, cell, query: int):
    """The exact count of rows closer than the trap's threshold, as the Script that ran."""
    from lib import filtered_search

    table = _filtered_table(n, built_at)
    q = recall_dataset().queries[query]
    return filtered_search.exact_count_script(database(), table.name, cell, q)


# ---- results that depend only on their parameters, shared by every session --------------
# Each is a query that ran (the Script inside says what ran); asked again with the same
# parameters, by anyone, it is not run again. The corpus tables are rebuilt only when the
# corpus changes, which restarts the app.


@st.cache_data(max_entries=512, show_spinner=False)
def postgres_rankings(names: tuple[str, ...], docs: np.ndarray, query: np.ndarray, normalise: bool):
    """Distance metrics' 2-D documents ranked by Postgres under each operator."""
    from lib import metrics

    return metrics.postgres_rankings(_database(), list(names), docs, query, normalise=normalise)


@st.cache_data(max_entries=256, show_spinner=False)
def corpus_rankings(
    table: str, query: np.ndarray, k: int, scaled_ids: tuple[str, ...] = (), factor: float = 1.0
):
    """The corpus's top k under each operator, some documents scaled on the way."""
    from lib import metrics

    return metrics.corpus_rankings(
        _database(), table, query, k=k, scaled_ids=list(scaled_ids), factor=factor
    )


@st.cache_data(max_entries=128, show_spinner=False)
def operator_plans(table: str, query: np.ndarray):
    """EXPLAIN ANALYZE (no timings) of the top 10 under each operator."""
    from lib import metrics

    return metrics.operator_plans(_database(), table, query)


@st.cache_data(max_entries=16, show_spinner=False)
def norm_range(table: str) -> tuple[float, float]:
    from lib import metrics

    return metrics.norm_range(_database(), table)


@st.cache_data(max_entries=16, show_spinner=False)
def index_opclasses(table: str) -> list[tuple[str, str]]:
    from lib import metrics

    return metrics.index_opclasses(_database(), table)


def sizes_overview() -> dict[str, list] | None:
    """Every recall size's state, read now, as columns for a table; None (with a message on
    the page) when this database user may not create the lab's bookkeeping tables."""
    import psycopg

    from lib import jobs

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
    from lib import jobs

    return [s.n for s in jobs.sizes_overview(database(), recall_dataset()) if s.state == "ready"]


@st.cache_data(ttl=60, show_spinner=False)
def vector_columns():
    """The server's readable vector columns (asked again at most once a minute)."""
    from lib import vector_columns as vc

    return vc.vector_columns(database())
