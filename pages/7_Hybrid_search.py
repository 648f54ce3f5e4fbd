"""Hybrid search: full text and vectors fused in one SQL statement, BM25 three ways, and a
re-rank, each run on a query and measured on the labelled test queries."""

import pyarrow as pa
import streamlit as st

from lib.core.embeddings import voyage
from lib.core.embeddings.base import EmbeddingError
from lib.core.view import when
from lib.harness import evals
from lib.harness.recall import HarnessError
from lib.lessons.hybrid import cached, live, reports, view
from lib.ui import connection, derived, nav, report_view, resources, stored_reports, text

st.set_page_config(page_title="Hybrid search", page_icon="🔀", layout="wide")
nav.sidebar(model_picker=False)

st.title("Hybrid search")
st.markdown(
    "Vectors match meaning; full-text search matches words. A query naming an identifier "
    "(`sched_load_balance`, `--parseopt`, `scanf()`) needs the word, and a question worded "
    "unlike its answer needs the meaning. **Hybrid search** runs both in one SQL statement and "
    "fuses the two ranked lists. This page runs a query through each ranker side by side, then "
    "shows what each one scores on the lab's labelled **test** queries, with intervals."
)

db = connection.database()
ds = resources.recall_dataset()
resources.worker()  # this process takes its part in the job queue

n = stored_reports.pick_size(db, ds, cached.evaluable, cached.stored, "hybrid_size")
found = stored_reports.report_or_stop(
    db, reports.SUITE, n, cached.stored, cached.evaluable,
    "the vector index, full text, BM25 in SQL and as a sparsevec, RRF with each BM25, convex "
    "fusion, and RRF re-ranked by MaxSim (it also builds the size's BM25 tables)",
)  # fmt: skip
report = found.report
labelled = report["labelled"]
doc_id = evals.lab_doc_ids(ds)
st.caption(
    f"{report['queries']:,} test queries on `{found.table}` and its text table "
    f"`{report['text_table']}`; measured {when(found.ran_at.isoformat())} in "
    f"{found.seconds:.1f} s; model {report['model']}."
)

# ---- one query through every ranker ---------------------------------------------------------
st.subheader("One query through every ranker")
st.markdown(
    "Each list is a query that ran just now. **Full text** is `ts_rank_cd` over "
    "`websearch_to_tsquery` (every word required). `ts_rank_cd` is not BM25: it counts how often "
    "and how close the words occur, with no weight for how rare a word is (IDF) and no "
    "allowance for a passage's length. **BM25 in SQL** computes Okapi BM25 from the `tsvector`s "
    "in the query itself, IDF from the table's own statistics; **BM25 as sparsevec** stores each "
    "row's BM25 term weights as pgvector's `sparsevec` and ranks by `<#>`, so one database holds "
    "both sides. The **fused** list is one statement: two ranked CTEs and a FULL OUTER JOIN, as "
    "in pgvector-python's `rrf.py`."
)


@st.fragment
def one_query() -> None:
    connection.database()  # a rerun of this part alone checks the server once, here
    how = st.radio(
        "Query", ["A labelled test query", "Your own words"], horizontal=True, key="hybrid_how",
        label_visibility="collapsed",
    )  # fmt: skip
    judged = qid = None
    if how == "A labelled test query":
        order = derived.of(
            report,
            "query order",
            lambda: sorted(
                labelled, key=lambda q: (labelled[q]["kind"], labelled[q]["text"].lower())
            ),
        )
        if st.session_state.get("hybrid_query") not in labelled:
            st.session_state["hybrid_query"] = view.showcase(report) or order[0]
        qid = st.selectbox(
            "A labelled test query", order, key="hybrid_query",
            format_func=lambda q: (
                f"[{labelled[q]['kind'].replace('_', ' ')}] "
                f"{report_view.short(labelled[q]['text'], 90)}"
            ),
            help="It opens on the identifier query where BM25 beats the vector index most.",
        )  # fmt: skip
        query = labelled[qid]["text"]
        judged = labelled[qid]["judged"]
    else:
        query = st.text_input(
            "Your query", key="hybrid_own", max_chars=500,
            placeholder="e.g. git rebase --onto, or: how do I undo a commit?",
        ).strip()  # fmt: skip
        if not query:
            st.info("Type a query: an identifier, a question, a few words.")
            return

    with st.expander("Fusion knobs", expanded=False):
        c1, c2, c3 = st.columns(3)
        side = c1.selectbox(
            "Lexical side of the fusion", ["bm25_sparse", "bm25", "fts", "fts_or"],
            format_func=lambda k: {
                "bm25": "BM25 in SQL", "bm25_sparse": "BM25 as sparsevec <#>",
                "fts": "ts_rank_cd, every word", "fts_or": "ts_rank_cd, any word",
            }[k], key="hybrid_side",
            help="BM25 as sparsevec ranks as BM25 in SQL does (see below) at about half the "
            "cost, so it is the default here.",
        )  # fmt: skip
        method = c1.radio(
            "Fusion", ["rrf", "convex"], horizontal=True, key="hybrid_method",
            format_func={"rrf": "RRF (ranks)", "convex": "convex (scores)"}.get,
            help="RRF adds w/(k + rank) from each side. Convex min-max-normalises each side's "
            "scores over its candidates and adds them, weighted.",
        )  # fmt: skip
        k = c1.select_slider(
            "RRF's k", [1, 5, 10, 20, 30, 40, 50, 60, 80, 100, 150, 200], value=60,
            key="hybrid_k", disabled=method != "rrf",
            help="60 is the RRF paper's and pgvector-python's; Supabase's hybrid_search() uses 50.",
        )  # fmt: skip
        wv = c2.slider("Vector weight", 0.0, 2.0, 1.0, 0.1, key="hybrid_wv")
        wt = c2.slider("Text weight", 0.0, 2.0, 1.0, 0.1, key="hybrid_wt")
        dv = c2.select_slider("Vector candidates", [10, 20, 40, 100, 200], 100, key="hybrid_dv")
        dt = c2.select_slider("Text candidates", [10, 20, 40, 100, 200], 100, key="hybrid_dt")
        k1 = c3.slider(
            "BM25 k1", 0.0, 3.0, 1.2, 0.1, key="hybrid_k1",
            help="How fast a repeated word stops adding (BM25 in SQL only).",
        )  # fmt: skip
        b = c3.slider(
            "BM25 b", 0.0, 1.0, 0.75, 0.05, key="hybrid_b",
            help="How much a long passage is discounted (BM25 in SQL only).",
        )  # fmt: skip
        top = c3.select_slider(
            "Re-rank the fused top", [0, 10, 20, 50], 0, key="hybrid_rerank",
            format_func=lambda v: "no re-rank" if v == 0 else f"{v} rows",
            help="Off at first: a re-rank costs every query its own milliseconds (the table "
            "below measures how many, and what it buys).",
        )  # fmt: skip
        rerankers = ["maxsim", "voyage"] if voyage.available() else ["maxsim"]
        reranker = c3.radio(
            "Re-ranker", rerankers, key="hybrid_reranker", horizontal=True,
            format_func={"maxsim": "MaxSim (offline)",
                         "voyage": f"Voyage {voyage.RERANK_MODEL} (API)"}.get,
            help="MaxSim runs here, over MiniLM's token vectors. Voyage's cross-encoder is "
            "offered when VOYAGE_API_KEY is set; each query then sends its passages to Voyage.",
        )  # fmt: skip
        if side == "bm25_sparse" and (k1, b) != (1.2, 0.75):
            st.caption(
                "The sparsevec weights were built with k1 = 1.2, b = 0.75; its side keeps them."
            )

    knobs = live.Knobs(side, method, float(k), wv, wt, dv, dt, k1, b, top, reranker)
    try:
        ranked = cached.run(n, found.ran_at, query, knobs)
    except (HarnessError, ValueError, EmbeddingError) as e:
        st.error(f"That could not run: {text.plain(str(e))}", icon=":material/error:")
        return

    st.markdown("**Query:**")
    st.text(query)
    if judged is None:
        st.caption("Your own query has no labels, so no row is marked relevant.")
    if judged is not None:
        st.caption("rel: 2 the labelled answer, 1 another passage of its section, 0 neither.")
    cols = st.columns(2)
    for i, r in enumerate(ranked):
        with cols[i % 2]:
            st.markdown(f"**{text.plain(r.label)}**")
            if not r.keys:
                words = "every word" if r.name == "fts" else "any word"
                st.info(f"No row: no passage holds {words} of the query.")
            else:
                frame = derived.table_of(
                    r, ("ranked", qid),
                    lambda r=r: view.ranked_frame(r, cached.passages(r.keys), judged, doc_id),
                )  # fmt: skip
                st.dataframe(
                    frame, height=250, width="stretch",
                    column_config={"passage": st.column_config.TextColumn(width="large")},
                )  # fmt: skip
            took = f"{r.ms:.1f} ms " + (
                "to re-rank (in Python)" if r.script is None else "(round trip)"
            )
            if judged is not None:
                took += f" · {view.found(r, judged, doc_id)}"
            st.caption(took)

    by = {r.name: r for r in ranked}
    if "bm25" in by and "bm25_sparse" in by and (k1, b) == (1.2, 0.75):
        a = live.agreement(by["bm25"], by["bm25_sparse"])
        same, compared = derived.of(report, "bm25 agreement", lambda: live.stored_agreement(report))
        rel = "—" if a.max_relative is None else f"{a.max_relative:.1e}"
        st.caption(
            f"BM25 in SQL against BM25 as sparsevec, this query: same order "
            f"{'yes' if a.same_order else 'no'}, largest relative score difference {rel} over "
            f"{a.compared} rows (float4 weights against float8: tolerance {live.REL:.0e}). On the "
            f"stored run: the same top 10 on {same:,} of {compared:,} test queries."
        )
    box = st.expander("The SQL each ranker ran, run now", key="hybrid_sql", on_change="rerun")
    if not box.open:  # drawn only when open: no statement text sent unasked
        return
    with box:
        st.caption(
            "Each statement as it ran just now, with its settings (`SET LOCAL`, read-only); "
            "pasted into psql with its parameters it gives the same rows. The re-rank runs in "
            "Python over the fused statement's rows."
        )
        for r in ranked:
            if r.script is not None:
                st.markdown(f"**{text.plain(r.label)}**")
                text.show_sql(r.script)


one_query()

# ---- measured on the test queries ------------------------------------------------------------
st.subheader("Measured on the test queries")
stored_reports.metrics_and_figure(
    report,
    "Each cell: the mean over the test queries and its 95% bootstrap interval. Latency is each "
    "query's own statement as the run measured it, p50 and p95 (the re-rank's included).",
    view.SHORT,
)

st.markdown("**Per kind of query** (nDCG@10)")
kinds = derived.table_of(report, "kinds", lambda: report_view.kinds_frame(report, names=view.SHORT))
st.dataframe(kinds, width="stretch")
st.caption(
    "A query is filed as naming an identifier when a word of it reads as code (an underscore, "
    "`()`, `::`, an option, a dotted name, letters and digits together); the rest by where its "
    "label came from."
)

st.markdown("**What fusion and re-ranking gain, and what they cost**")
st.dataframe(derived.table_of(report, "cost", lambda: view.cost_frame(report)), width="stretch")
st.caption(
    "Each system against HNSW alone on the same queries: the difference in nDCG@10, its 95% "
    'bootstrap interval and the paired randomisation test\'s p. "More than chance" applies the '
    "regression gate's rule (p < 0.05 and the interval excludes zero)."
)

costs = cached.costs(n, found.ran_at)
if costs is not None:
    st.markdown("**What the text side costs beside the vector index**")
    mib = 1024 * 1024
    hnsw_built = "—" if costs.hnsw_seconds is None else f"{costs.hnsw_seconds:.1f} s"
    st.table(
        pa.table({
            "index": [f"HNSW `{costs.hnsw}`", f"GIN `{costs.gin}` (tsvector)", "BM25's tables"],
            "built in": [
                hnsw_built, f"{costs.gin_seconds:.1f} s",
                "—" if costs.bm25_seconds is None else f"{costs.bm25_seconds:.1f} s",
            ],
            "size": [
                f"{costs.hnsw_bytes / mib:.1f} MiB", f"{costs.gin_bytes / mib:.1f} MiB",
                f"{costs.bm25_bytes / mib:.1f} MiB"
                + (f" ({costs.bm25_terms:,} lexemes)" if costs.bm25_terms else ""),
            ],
        })
    )  # fmt: skip
    st.caption(
        f"Read from the server now. The text table itself (passages and their generated "
        f"tsvector) takes {costs.text_bytes / mib:.1f} MiB."
    )

# ---- re-rankers --------------------------------------------------------------------------
st.subheader("Re-rankers: what runs here")
st.markdown(
    "- **Offline: MaxSim** (late interaction, in the manner of ColBERT) over all-MiniLM-L6-v2's "
    "own token vectors: each query token's best cosine with any passage token, summed. MiniLM "
    "was trained for pooled sentence vectors, not for this, so its gain is a measurement, not a "
    "promise. It runs in Python on the fused rows, and its time is in the latency above.\n"
    "- **No cross-encoder runs here:** no installable package ships a cross-encoder's weights, "
    "and nothing downloads at run time.\n"
    f"- **With a key:** Voyage's `{voyage.RERANK_MODEL}` (a hosted cross-encoder) through its "
    "rerank endpoint, when `VOYAGE_API_KEY` is set: pick it under *Fusion knobs*. Each query "
    "then sends its candidate passages to Voyage, and the round trip is in its time. "
    + ("It is offered here now." if voyage.available() else "No key is set here.")
)

# ---- what to notice ------------------------------------------------------------------------
st.subheader("What to notice")
notes = []
winners = derived.of(report, "winners", lambda: view.kind_winners(report))
for kind, (vec, lex_label, lex, fused_label, fused, queries) in winners.items():
    name = report_view.KIND_LABELS.get(kind, kind)
    notes.append(
        f"- **{name}** ({queries} queries): HNSW {vec:.3f}, the best lexical ranker "
        f"({lex_label}) {lex:.3f}, the best fusion ({fused_label}) {fused:.3f}."
    )
st.markdown("\n".join(notes))
st.markdown(
    "- Where the query's words are in the answer (identifiers, headings), full text holds its "
    "own and fusion can add what vectors miss; where they are not (questions worded unlike "
    "the answer), full text pulls the fused list down.\n"
    "- RRF ignores how each side's scores are spread; a convex combination depends on it. RRF is "
    "the default because it needs no calibration, not because it always wins: compare them "
    "above, with their intervals.\n"
    "- BM25 in SQL unnests the tsvector of every row holding a query word, so a common word "
    "makes it slow; the same BM25 as a sparsevec is one scan of stored weights. A re-rank adds "
    "its own milliseconds to every query."
)
