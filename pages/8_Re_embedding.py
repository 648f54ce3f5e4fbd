"""Re-embedding: the model is part of the data. The mixed-models trap and its guard, a live
zero-downtime migration to another model under a stream of queries, before and after, and
drift you can watch."""

import streamlit as st

from lib.core import jobs as queue
from lib.core.view import PlainFigure, when
from lib.harness.reembed import ReembedError
from lib.lessons.reembed import cached, demo, jobs, view
from lib.ui import connection, derived, nav, resources, room, text

st.set_page_config(page_title="Re-embedding", page_icon="🔄", layout="wide")
nav.sidebar(model_picker=False)

st.title("Re-embedding")
st.markdown(
    f"Similarity is a property of the model. **{demo.A}** and **{demo.B}** both make 384 "
    "numbers per passage, so PostgreSQL takes either model's vectors in a `vector(384)` column "
    "and compares them without a word, and the answers are wrong. This page measures that on a "
    "real table, shows a query shape that cannot mix two models, then moves the table to the "
    "other model while queries keep running, and ends with the drift that tells you when a "
    "table and its questions have moved apart."
)

db = connection.database()
resources.worker()  # this process takes its part in the job queue
ran = cached.stored_sizes()
offered = sorted(set(cached.sizes()) | set(ran)) or [demo.DEFAULT_SIZE]
if st.session_state.get("reembed_size") not in offered:
    # the lesson's size if it has a stored run or no size has one; else a size that has one
    fits = [v for v in offered if v <= demo.DEFAULT_SIZE] or offered
    default = demo.DEFAULT_SIZE if demo.DEFAULT_SIZE in ran or not ran else ran[-1]
    st.session_state["reembed_size"] = default if default in offered else fits[-1]
n = st.select_slider(
    "Rows in the demo table", options=offered, key="reembed_size", format_func=lambda v: f"{v:,}",
    help="The first rows of the recall tables, their vectors read from the embedding cache "
    "(and any size with a stored run).",
)  # fmt: skip
st.caption(
    f"{demo.DEFAULT_SIZE:,} rows by default, the lesson's: they hold the answers of enough "
    f"labelled queries to show nDCG. Re-embedding them with {demo.B} takes a few minutes on two "
    "cores (the README's bench: 243 s of backfill at 82 rows/s); 2,000 rows take well under a "
    "minute, for a room that wants to watch the whole run. `make prepare` runs the default size. "
    "Only sizes whose passages are all in the embedding cache are offered: nothing is embedded "
    "with the old model here."
)


@connection.progress_fragment(run_every=1.0)
def job_progress(reader, job_id: int, what: str) -> None:
    job = reader.get(db, job_id)
    if job is None or not job.running:
        cached.clear()
        st.rerun(scope="app")
    p = jobs.progress(db, job, what)
    st.progress(p.fraction or 0.0, text=p.text)
    st.caption(f"Everyone on this page shares this run (job {job.id}); it goes on if you leave.")
    if room.instructor():
        st.button("Cancel", key=f"reembed_cancel_{job_id}", on_click=queue.cancel,
                  args=(db, job_id), help="Stops it for everyone.")  # fmt: skip


def named_sql(label: str, key: str, statements: dict[str, str]) -> None:
    """Named statements, as they ran, in an expander drawn only when open (no statement text
    is sent unasked)."""
    box = st.expander(label, key=key, on_change="rerun")
    if box.open:
        with box:
            for name, sql_text in statements.items():
                st.markdown(f"**{name}**")
                st.code(sql_text, language="sql")


def start(kind: str, label: str, what: str) -> None:
    if st.button(label, icon=":material/play_arrow:", key=f"start_{kind}") and room.may(what):
        jobs.request(db, kind, n)
        st.rerun()


found = cached.stored("migration", n)
live = jobs.migration.live(db, n)
if live is not None:
    st.info(f"Re-embedding `{demo.qualified(n)}` now. The page fills in when it ends.")
    job_progress(jobs.migration, live.id, f"the migration of {n:,} rows")
    st.stop()
if found is None:
    last = jobs.migration.last(db, n)
    if last is not None and last.state == "failed":
        st.error(f"The last run failed: {text.plain(last.error or '')}", icon=":material/error:")
    st.info(
        f"Nothing measured for {n:,} rows yet. One run builds `{demo.qualified(n)}` (id, body and "
        f"{demo.A}'s vectors, HNSW), measures the trap, then re-embeds it with {demo.B} while a "
        "thread keeps sending k-NN queries through the readers' view, cuts over, and measures "
        "before and after. Everyone then reads that run.",
        icon=":material/pending:",
    )
    start(jobs.MIGRATION, f"Build {n:,} rows and re-embed them live", f"Re-embedding {n:,} rows")
    st.stop()

report = found.report
trap = report["trap"]
st.caption(
    f"Run of {when(found.ran_at.isoformat())}, {found.seconds:.0f} s in all, on "
    f"`{report['table']}` ({n:,} rows)."
)

# ---- 1. the trap ---------------------------------------------------------------------------------
st.subheader("The trap")
st.markdown(
    f"The table holds {demo.A}'s vectors. Each of {report['held_out']} held-out passages (never in "
    f"the table) is used as a query twice: embedded by {demo.A} (right) and by {demo.B} (wrong), "
    "each run as an exact scan."
)
c1, c2, c3 = st.columns(3)
c1.metric("Errors from the wrong model's queries", 0 if min(trap["rows"]) else "?",
          help="No error: same dimension, same type.")  # fmt: skip
c1.caption(f"Every one returned {min(trap['rows'])} rows.")
c2.metric("Right top 10 found by the wrong query", f"{trap['mean']:.0%}")
c2.caption(f"Mean over {report['held_out']} queries; chance is {trap['chance']:.1%}.")
nd = trap["ndcg"]
if "right" in nd:
    c3.metric("nDCG@10, right → wrong model", f"{nd['right']:.3f} → {nd['wrong']:.3f}")
    c3.caption(f"{nd['queries']} labelled test queries whose answers the table holds.")
else:
    c3.metric("nDCG@10 on labelled queries", "too few")
    c3.caption(
        f"{n:,} rows hold the answers of only {nd['queries']} labelled test queries (fewer than "
        f"{nd['min']}), so no nDCG here; 20,000 rows hold enough."
    )
overlaps = derived.of(
    report, "overlaps", lambda: PlainFigure(view.overlap_figure(report).to_dict())
)
st.plotly_chart(overlaps, width="stretch", config={"displayModeBar": False})
box_trap_sql = st.expander(
    "The wrong query, as it ran (the first of them)", key="reembed_trap_sql", on_change="rerun"
)
if box_trap_sql.open:  # drawn only when open: no statement text sent unasked
    with box_trap_sql:
        st.code(trap["example"], language="sql")

st.subheader("The guard")
model_now = cached.view_model(n)
g = cached.guard(n, found.id, model_now)
if g is None:
    st.info("The demo table is gone (reset): run it again to see the guard.")
else:
    st.markdown(
        "Readers never query the vector column: they query a **view** whose `model` column is a "
        "literal naming the model behind it, and every k-NN statement filters on the model that "
        "embedded its query. The view as it stands now:"
    )
    st.code(g.view_sql, language="sql")
    left, right = st.columns(2)
    with left:
        st.markdown("**A query embedded by the other model**, run now: 0 rows, and this error:")
        st.text(g.refused)
        st.code(g.refused_sql, language="sql")
        st.caption("Its plan, `EXPLAIN (COSTS OFF)`: the filter is folded to a one-time false, "
                   "no row is even scanned.")  # fmt: skip
        st.code("\n".join(g.plan), language="text")
    with right:
        st.markdown(f"**The same shape with {g.view_model}'s query**, run now: {g.answered} rows.")
        st.code(g.answered_sql, language="sql")

# ---- 2. live -------------------------------------------------------------------------------------
st.subheader("Zero-downtime re-embedding, live")
b = report["backfill"]
st.markdown(
    f"A shadow column `{report['to_column']}` (no default, no rewrite), a backfill of "
    f"{b['batches']} batches of one transaction each, `CREATE INDEX CONCURRENTLY`, then the "
    "cutover in one transaction; all the while one thread sent k-NN queries through "
    f"`{report['view']}`, {demo.PAUSE * 1000:.0f} ms apart, each recorded."
)
st.plotly_chart(cached.latency_figure(found.id, n), width="stretch",
                config={"displayModeBar": False})  # fmt: skip
st.caption(view.latency_caption(report))
st.markdown(view.verdict(report))
st.dataframe(derived.table_of(report, "phases", lambda: view.phases_frame(report)), width="stretch")
ceiling = report["ceiling"]
st.caption(
    f"Backfill: {b['rows']:,} rows in {b['seconds']:.1f} s = **{b['rate']:,.0f} rows/s**, "
    f"{b['rate'] / ceiling['rate']:.0%} of {ceiling['model']}'s ceiling here "
    f"({ceiling['rate']:,.0f} passages/s on {ceiling['sample']} passages with no query stream, "
    f"measured just before); embedding {b['embed_seconds']:.1f} s, writing "
    f"{b['write_seconds']:.1f} s. HNSW built concurrently in **{report['index_seconds']:.2f} s**."
)
box_ran_sql = st.expander(
    "Every statement that ran, each kind once (with how often and how long)",
    key="reembed_ran_sql",
    on_change="rerun",
)
if box_ran_sql.open:  # drawn only when open: no statement text sent unasked
    with box_ran_sql:
        st.caption("Parameters too long to print (a batch's vectors) are described in a comment.")
        for r in report["ran"]:
            st.markdown(f"**{r['what']}**: {r['count']}×, {r['seconds']:.2f} s in all")
            st.code(r["text"], language="sql")
        st.markdown("**k-NN through the view** (the stream's queries)")
        st.code(report["knn"], language="sql")

st.markdown(f"**Switch now.** The view serves **{model_now or 'nothing'}**'s vectors.")
k1, k2, k3 = st.columns(3)
for col, to, label, needs in (
    (k1, "rollback", "Roll back", demo.B),
    (k2, "cutover", "Cut over", demo.A),
):
    if col.button(label, key=f"reembed_{to}", disabled=model_now != needs) and room.may(
        f"{label} on {demo.qualified(n)}"
    ):
        try:
            st.session_state["reembed_switch"] = demo.switch(db, n, to)
        except ReembedError as e:
            st.error(text.plain(str(e)))
        cached.clear()
        st.rerun()
if k3.button("Reset: drop the demo table", key="reembed_reset") and room.may(
    f"Dropping {demo.qualified(n)}"
):
    st.session_state["reembed_switch"] = demo.reset(db, n).text()
    cached.clear()
    st.rerun()
if "reembed_switch" in st.session_state:
    st.caption("What the last click ran, in one transaction:")
    st.code(st.session_state["reembed_switch"], language="sql")

# ---- 3. before and after -------------------------------------------------------------------------
st.subheader("Before and after")
before_after = derived.table_of(report, "before after", lambda: view.before_after_frame(report))
st.dataframe(before_after, width="stretch")
st.caption(
    "Each model against its own exact scan (index scans off) on its own column, with the same "
    f"held-out passages as queries; HNSW at `ef_search` = {demo.EF_SEARCH}, the index forced "
    "(`enable_seqscan = off`: a small table's planner would rather scan it) and proved used by "
    "EXPLAIN. nDCG needs labelled queries whose answers the table holds."
)
named_sql("The queries behind it (the first of each)", "reembed_before_after_sql",
          report["examples"])  # fmt: skip

# ---- 4. drift ------------------------------------------------------------------------------------
st.subheader("Drift you can watch")
st.markdown(
    f"Twelve simulated months of a table of {n:,} rows and its query log. The table starts with "
    "four manuals; labelled questions are asked each month; from one month on, a growing share "
    "asks about the fifth manual, whose passages arrive only later. Each signal is one read-only "
    "SQL statement over the table and the log."
)
drifted = cached.stored("drift", n)
live_drift = jobs.drift.live(db, n)
if live_drift is not None:
    job_progress(jobs.drift, live_drift.id, f"the drift of {n:,} rows")
elif drifted is None:
    start(jobs.DRIFT, f"Simulate the months on {n:,} rows", f"Simulating drift on {n:,} rows")
else:
    d = drifted.report
    st.markdown(view.fired_sentence(d))
    st.plotly_chart(cached.drift_figure(drifted.id, n), width="stretch",
                    config={"displayModeBar": False})  # fmt: skip
    st.caption(
        f"{d['rows']:,} rows of the first {d['available']:,}; {sum(d['queries']):,} questions; "
        f"the threshold for 'under' is {d['threshold']:.3f}, the baseline months' 10th percentile "
        "of top-1 similarity. A signal fires when it moves past its baseline by more than three "
        f"standard deviations or a floor. Measured {when(drifted.ran_at.isoformat())} in "
        f"{drifted.seconds:.1f} s."
    )
    named_sql("Each signal's SQL, as it ran", "reembed_drift_sql", d["scripts"])
    box_own_sql = st.expander(
        "The same signals on your own table and query log (text to copy)",
        key="reembed_own_sql",
        on_change="rerun",
    )
    if box_own_sql.open:  # drawn only when open: no statement text sent unasked
        with box_own_sql:
            st.caption(
                "For a table `public.docs (id, embedding)` and a log `public.query_log (asked_at, "
                "embedding)`, per week, without an `added_at` column (with one, `drift.Source(..., "
                "added_at='added_at')` compares each query with the table as it was). Read-only."
            )
            st.code(demo.own_table_sql(d["threshold"]), language="sql")

# ---- 5. what to notice ---------------------------------------------------------------------------
st.subheader("What to notice")
st.markdown(
    "- The wrong model's queries raised no error and returned full pages of rows: only a "
    "measurement shows that they were the wrong rows.\n"
    "- The guard is a column and a `WHERE`, not discipline: a query of the other model gets no "
    "row and a clear error, at no cost (the planner never scans).\n"
    "- The backfill competes with the queries for the same cores: compare p95 during the backfill "
    "with idle, and the backfill's rate with the model's ceiling.\n"
    "- The cutover is one `CREATE OR REPLACE VIEW` in a transaction, and so is the rollback: the "
    "old column stays until you finish.\n"
    "- Drift shows in the queries before it shows in the table: the question-side signals move "
    "when users ask about what is not there yet."
)
