"""Evals: is the answer right? Labelled queries made from the corpus, nDCG with intervals,
and a regression shown with its significance."""

import streamlit as st

from lib.core.view import when
from lib.lessons.evals import cached, reports, view
from lib.ui import connection, derived, nav, resources, stored_reports, text

st.set_page_config(page_title="Evals", page_icon="✅", layout="wide")
nav.sidebar(model_picker=False)

st.title("Evals")
st.markdown(
    "Recall against the exact scan says whether an index returns what an exact scan would. It "
    "cannot say whether that answer is **right**. For that you need queries whose right answers "
    "are known. The lab makes them from its own corpus: an FAQ question is answered by the "
    "passage under it, a glossary term by its definition, a section heading by its section "
    "(relevance 2 for the answering passage, 1 for the rest of its section). Then every system "
    "runs the same queries and is scored: **nDCG@10**, recall@10 and @100, MRR@10, each with a "
    "95% bootstrap interval, and every two systems with a paired randomisation test. These are "
    "the lab's held-out **test** queries; nothing on this page tunes anything on them."
)

db = connection.database()
ds = resources.recall_dataset()
resources.worker()  # this process takes its part in the job queue

n = stored_reports.pick_size(db, ds, cached.evaluable, cached.stored, "evals_size")
found = stored_reports.report_or_stop(
    db, reports.SUITE, n, cached.stored, cached.evaluable,
    f"{len(reports.EF_SEARCH) + 2} systems (the exact scan, HNSW at ef_search "
    f"{', '.join(map(str, reports.EF_SEARCH))}, and full-text search)",
)  # fmt: skip

report = found.report
per_kind = ", ".join(
    f"{view.KIND_LABELS.get(k, k)}: {c}" for k, c in report["queries_per_kind"].items()
)
st.caption(
    f"{report['queries']:,} test queries evaluable on `{found.table}` ({per_kind}); "
    f"measured {when(found.ran_at.isoformat())} in {found.seconds:.1f} s; model {report['model']}."
)

# ---- systems × metrics -----------------------------------------------------------------------
st.subheader("Which system finds the right answer")
stored_reports.metrics_and_figure(
    report,
    "Each cell: the mean over the test queries and its 95% bootstrap interval. Latency is "
    "each query's own statement, p50 and p95, as it ran in one transaction.",
)

st.subheader("Where each system wins")
st.dataframe(derived.table_of(report, "kinds", lambda: view.kinds_frame(report)), width="stretch")
st.caption(
    "nDCG@10 per kind of query. Full-text search needs the query's words in the passage; "
    "vectors match meaning. Look at the kinds whose wording shares no word with the answer."
)

# ---- the link to recall ----------------------------------------------------------------------
st.subheader("What a recall@10 costs in nDCG")
link = derived.table_of(report, "recall link", lambda: view.recall_link_frame(report))
st.dataframe(link, width="stretch")
st.caption(
    "Recall@10 here is measured against the exact scan on these same queries (no labels), from "
    "the top 10 each system returned; the difference in nDCG@10 against the exact scan comes "
    "with its interval and the paired test's p-value."
)

# ---- a regression --------------------------------------------------------------------------
st.subheader("A regression, and whether it is real")
labels_of = {s["name"]: s["label"] for s in view.systems(report)}
names = list(labels_of)
c1, c2 = st.columns(2)
baseline = c1.selectbox(
    "Before", names, index=names.index("hnsw:40") if "hnsw:40" in names else 0,
    format_func=labels_of.get, key="evals_before",
)  # fmt: skip
candidate = c2.selectbox(
    "After the change", names, index=names.index("hnsw:10") if "hnsw:10" in names else 1,
    format_func=labels_of.get, key="evals_after",
)  # fmt: skip
if baseline == candidate:
    st.info("Pick two different systems.")
else:
    st.markdown(text.plain(view.verdict(report, baseline, candidate)))
    st.caption(
        "`python -m lib.evals --baseline report.json` applies the same rule in your own CI "
        "and exits non-zero on a regression."
    )

# ---- one query ---------------------------------------------------------------------------
st.subheader("One query, drilled down")
labelled = report["labelled"]
query_ids = derived.of(
    report,
    "query order",
    lambda: sorted(
        view.systems(report)[0]["per_query"],
        key=lambda q: (labelled[q]["kind"], labelled[q]["text"].lower()),
    ),
)
qid = st.selectbox(
    "Query", query_ids, key="evals_query",
    format_func=lambda q: f"[{labelled[q]['kind']}] {view.short(labelled[q]['text'], 90)}",
)  # fmt: skip
judged = labelled[qid]["judged"]
answers = [d for d, r in judged.items() if r == 2]
shown = sorted({d for s in view.systems(report) for d in s["per_query"][qid]["top"]} | set(answers))
passage = cached.passages(report["text_table"], tuple(shown))
st.markdown("**Query:**")
st.text(labelled[qid]["text"])
st.markdown("**Its labelled answer** (relevance 2):")
for d in answers:
    st.text(view.short(passage.get(d, d), 400))
ranks = view.answer_rank(report, qid, answers)
st.caption(
    "The answer came at rank: "
    + " · ".join(f"{name}: {r if r else 'not in the top 10'}" for name, r in ranks.items())
)
tables = derived.of(
    report,
    ("drill", qid),
    lambda: {
        name: derived.table(frame)
        for name, frame in view.drill_rows(report, qid, judged, passage).items()
    },
)
cols = st.columns(2)
for i, (name, frame) in enumerate(tables.items()):
    with cols[i % 2]:
        st.markdown(f"**{name}**")
        st.dataframe(frame, width="stretch")

with st.expander("The SQL each system ran for this query, run now", expanded=False):
    st.caption(
        "Each statement as it ran just now, with its settings (`SET LOCAL`, read-only); pasted "
        "into psql with its parameters it gives the same rows. Its first column is the row id; "
        "the table above shows the passage behind it."
    )
    for name, script in cached.live_query(n, found.ran_at, qid):
        st.markdown(f"**{name}**")
        text.show_sql(script)

st.subheader("What to notice")
st.markdown(
    "- The exact scan is the best a vector index can do, and it is not perfect: the model, not "
    "the index, sets that ceiling.\n"
    "- HNSW at a low `ef_search` loses some of the exact scan's answers (recall@10 below 1), "
    "but nDCG moves less than recall: many lost rows were not the right answer anyway.\n"
    "- Full-text search wins where the query's words are in the answer (headings, terms) and "
    "loses where they are not: that is what hybrid search combines.\n"
    "- A difference is a regression only if it is more than chance: look at the interval and "
    "the p-value before you block a change."
)
