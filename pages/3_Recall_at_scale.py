"""Recall at scale: exact scan versus an approximate index, measured as the table grows."""

from datetime import UTC, datetime

import streamlit as st

from lib.core import jobs as queue
from lib.core.view import when
from lib.dataset import builds, index_specs, passages, recall_tables, sizing
from lib.dataset.index_specs import IndexSpec
from lib.harness import recall, size_drop, size_jobs
from lib.lessons.recall import cached, own_jobs, view
from lib.ui import connection, derived, nav, resources, room, text

st.set_page_config(page_title="Recall at scale", page_icon="📈", layout="wide")
nav.sidebar(model_picker=False)

st.title("Recall at scale")
st.markdown(
    "An exact scan compares the query with every row, so its top 10 is the truth. An "
    "approximate index (HNSW, IVFFlat) visits only part of the table, and as the table grows "
    "it **silently** returns some rows that are not among the true nearest: the query still "
    "returns 10 rows, nothing errors. You need no labels to see it. Run the same queries "
    "through the exact scan and through the index, and diff the two: that share is "
    "**recall@10**. Move the size and watch it, measured live in PostgreSQL."
)

db = connection.database()
ds = resources.recall_dataset()
resources.worker()  # this process takes its part in the job queue
state = st.session_state
state.setdefault("recall_points", [])
state.setdefault("recall_sizes", list(recall_tables.SIZES))
if "recall_size" not in state:  # a link may ask for a size: ?rows=500000
    state["recall_size"] = recall_tables.offered_size(st.query_params.get("rows"), 500)


def _use_custom_size() -> None:
    # What the field shows now, parsed again: the button builds exactly that, or nothing.
    try:
        n = sizing.parse_rows(state["recall_custom"])
    except ValueError as e:
        state["recall_refusal"] = str(e)
        return
    plan = sizing.plan_size(
        n,
        ds.dimension,
        memory=sizing.memory_available(),
        disk=sizing.disk_available(db),
    )
    state["recall_refusal"] = plan.reason
    if plan.ok:
        state["recall_sizes"] = sorted(set(state["recall_sizes"]) | {n})
        state["recall_size"] = n


controls, knob_col = st.columns([3, 2], gap="large")
with controls:
    n = st.select_slider(
        "Rows in the table",
        options=state["recall_sizes"],
        key="recall_size",
        format_func=lambda v: f"{v:,}",
        help="Each size is its own table, built once and kept: "
        f"{recall_tables.table_name(500, ds.dimension)}, …",
    )
    # Lazy: its estimate and free-disk check run only while someone has it open.
    other_size = st.popover("Another size…", key="recall_other_size", on_change="rerun")
    if other_size.open:
        with other_size:
            state.setdefault("recall_custom", "1,000,000")
            custom = st.text_input(
                "Rows", key="recall_custom", help="Digits with or without commas, or 1e6.",
                placeholder="1,000,000 — then press Enter",
            )  # fmt: skip
            try:
                rows_wanted = sizing.parse_rows(custom)
            except ValueError as e:
                st.error(text.plain(str(e)), icon=":material/error:")
            else:
                plan = sizing.plan_size(
                    rows_wanted, ds.dimension,
                    memory=sizing.memory_available(), disk=sizing.disk_available(db),
                )  # fmt: skip
                if plan.ok:
                    seconds = sizing.seconds_estimate(db, rows_wanted)
                    st.caption(sizing.describe_plan(plan, seconds))
                    embedding = resources.embedding_estimate(ds.fingerprint(), rows_wanted)
                    if embedding is not None:
                        st.caption(f"Before that: {embedding.sentence()}.")
                    if room.instructor():
                        st.button(
                            f"Build and measure {rows_wanted:,} rows", on_click=_use_custom_size
                        )
                    else:
                        room.may(f"Building {rows_wanted:,} rows")
                else:
                    st.error(f"**Refused.** {plan.reason}", icon=":material/block:")
    if state.get("recall_refusal"):
        st.error(f"**Not built:** {text.plain(state['recall_refusal'])}", icon=":material/block:")

status = recall_tables.table_status(db, ds, n)
index = status.index
kind = index.kind if index else "hnsw"
with knob_col:
    real = ds.real_rows(n)
    st.caption(
        f"**{n:,} rows**: {real:,} real passages of the {ds.corpus.titles()} manuals, "
        f"embedded by {ds.model_name} ({ds.dimension} dimensions)"
        + (
            f". Real rows end at row {ds.n_real:,}: the {n - real:,} past it come from a "
            "seeded generator fitted to real rows (compared with real rows below)"
            if n > real
            else ""
        )
        + f". The {len(ds.queries)} queries are other real passages, held out of every table."
    )


# ---- preparation: a queue in PostgreSQL, shared by every session and every process ------
truth = resources.recall_truth(status) if status.loaded else None
last = size_jobs.last(db, n)  # jobs of one size run in order, so the newest is the live one
job = last if last is not None and last.running else None
if job is None and not (status.ready() and truth is not None):
    # A size whose passages are not embedded yet says how long that takes before it starts.
    estimate = None if status.loaded else resources.embedding_estimate(ds.fingerprint(), n)
    if last is not None and last.state == "failed":
        st.error(
            f"Preparing {n:,} rows failed: {text.plain(last.error or '')}", icon=":material/error:"
        )
        if st.button("Try again") and room.may(f"Preparing {n:,} rows"):
            with room.refusals():
                job = size_jobs.request(db, ds, n, index.spec() if index else None)
    elif not room.instructor():
        room.may(f"Preparing {n:,} rows (not prepared on this server)")
    elif estimate is not None and estimate.seconds > passages.ASK_ABOVE_SECONDS:
        st.info(
            f"**{n:,} rows are not built on this server yet.** {estimate.sentence()}; then "
            "the table is loaded and indexed. It runs in the server's shared queue, where "
            "everyone asking for this size shares it, and goes on if you leave the page.",
            icon=":material/schedule:",
        )
        if st.button(f"Embed and build {n:,} rows", key=f"recall_embed_{n}") and room.may(
            f"Preparing {n:,} rows"
        ):
            with room.refusals():
                job = size_jobs.request(db, ds, n, index.spec() if index else None)
    elif n in st.session_state.get("recall_dropped", ()):  # dropped here: not rebuilt unasked
        st.info(f"**{n:,} rows were dropped.** Nothing of this size is on the server now.")
        if st.button(f"Build {n:,} rows again", key=f"recall_rebuild_dropped_{n}") and room.may(
            f"Preparing {n:,} rows"
        ):
            st.session_state["recall_dropped"] = st.session_state["recall_dropped"] - {n}
            with room.refusals():
                job = size_jobs.request(db, ds, n, index.spec() if index else None)
    elif room.may(f"Preparing {n:,} rows"):  # picking a size that is not built starts it
        with room.refusals():
            job = size_jobs.request(db, ds, n, index.spec() if index else None)


@connection.progress_fragment(run_every=1.0)
def build_progress(job_id: int) -> None:
    running = size_jobs.get(db, job_id)
    if running is None or not running.running:
        st.rerun(scope="app")
    p = size_jobs.progress(db, running)
    st.progress(p.fraction or 0.0, text=p.text)
    for notice in running.notices:
        if builds.GRAPH_NOTICE in notice:
            st.warning(
                f"PostgreSQL: “{text.plain(notice)}” — the build goes on, more slowly, on disk."
            )
    st.caption(
        "This goes on if you leave the page; everyone asking for this size shares it "
        f"(job {running.id}, requested {running.requested_at:%H:%M:%S})."
    )
    if room.instructor():
        st.button(
            "Cancel this build", key=f"recall_cancel_{job_id}", on_click=queue.cancel,
            args=(db, job_id), help="Stops it for everyone; nothing half-built is kept.",
        )  # fmt: skip


if job is not None:
    build_progress(job.id)
elif last is not None and last.state == "done" and last.indexed and last.finished_at:
    if (datetime.now(UTC) - last.finished_at).total_seconds() < 600:
        st.success(
            f"Index built in {last.build_seconds:.1f} s (measured; maintenance_work_mem "
            f"{last.maintenance_work_mem}, {last.workers} parallel "
            f"worker{'s' if last.workers != 1 else ''}).",
            icon=":material/build:",
        )

# ---- the measurement ---------------------------------------------------------------------
# A fragment: moving ef_search (or probes) reruns only this part, not the size controls,
# the queue, the rebuild form or your own table.


@st.fragment
def measurement() -> None:
    if kind == "ivfflat":
        lists = index.params.get("lists", 1)
        probes = st.slider(
            "ivfflat.probes — lists searched per query", 1, max(2, lists), 1, key="recall_probes",
            help=f"pgvector's default is 1. This index has {lists} lists.",
        )  # fmt: skip
        knobs = recall.knobs_for("ivfflat", probes=probes)
    else:
        ef = st.slider(
            "hnsw.ef_search — candidates kept during the search", 1, 1000, 40,
            key="recall_ef_search", help="pgvector's default is 40. It must be at least k (10) "
            "to return 10 rows.",
        )  # fmt: skip
        knobs = recall.knobs_for("hnsw", ef_search=ef)

    report = None
    if status.ready() and truth is not None:
        target = recall.generated_target(status.table)
        measured = (
            status.table,
            status.loaded_at,
            index.name,
            index.built_at,
            tuple(knobs.items()),
        )
        try:
            report = cached.recall_report(*measured, n)
        except recall.HarnessError as e:
            st.error(str(e), icon=":material/timer_off:")
        if report is not None:
            new = view.point(report, n, index, knobs, ds)
            state["recall_points"] = view.add_point(state["recall_points"], new)

    points = state["recall_points"]
    if points:
        st.plotly_chart(
            view.figure(points, state["recall_sizes"], ds.n_real),
            width="stretch",
            key="recall_plot",
        )
        st.caption(
            f"{len(points)} measurement{'s' if len(points) != 1 else ''} in this session "
            f"(the plot keeps the latest {view.MAX_POINTS}); hover a point for its parameters "
            "and the time it ran."
        )
    else:
        st.info("The first measurement appears here as soon as the table is ready.")

    if n > ds.n_real:
        st.subheader("Rows past the real ones")
        st.markdown(
            f"The corpus has {ds.n_real:,} real rows; a table of {n:,} takes its other "
            f"{n - ds.n_real:,} from a generator fitted to real rows. Are they as hard for an "
            "approximate index as real rows would be? Compared at equal sizes, with the same "
            "queries and the same index:"
        )
        checks = cached.generator_checks(ds.fingerprint())
        if checks:
            st.dataframe(view.check_frame(checks), hide_index=True, width="stretch")
            st.caption(view.check_caption(checks, len(ds.queries)))
        else:
            st.info(
                "Not measured on this server yet: `make prepare` (or `python -m "
                "lib.lessons.recall.generator_check`) compares real and generated rows in a few "
                "minutes.",
                icon=":material/pending:",
            )

    if report is not None:
        mean, worst = report.recall["mean"], report.recall["min"]
        sentence = (
            f"{report.lesson()} Recall@10 {mean:.3f} on average, {worst:.1f} for the worst query "
            f"(index {index.label()}, {view.knob_label(knobs)})."
        )
        if report.queries_missing:
            st.warning(sentence, icon=":material/visibility_off:")
        else:
            st.success(sentence, icon=":material/check_circle:")
        built = (
            f"Index built {index.built_at:%Y-%m-%d %H:%M} UTC in {index.build_seconds:.1f} s."
            if index.built_at and index.build_seconds
            else ""
        )
        st.caption(
            f"Ground truth: {report.queries} exact scans run at "
            f"{when(report.exact_ran_at)} "
            f"(median {report.exact_latency_ms['p50']:.1f} ms each), whose plan "
            f"({' → '.join(report.exact_plan)}) reads no index. Index queries ran at "
            f"{when(report.index_ran_at)} "
            f"(median {report.index_latency_ms['p50']:.2f} ms). {built}"
        )
        if st.button(
            "Measure again now",
            help="Runs the query set through the index again; "
            "results are otherwise shared by everyone for ten minutes.",
        ) and room.may("Measuring again", shared=False):
            cached.recall_report.clear(*measured, n)
            st.rerun()
        if index.notice:
            st.warning(f"During this index's build PostgreSQL said: “{text.plain(index.notice)}”.")

        # ---- missed answers for one query ----------------------------------------------------
        st.subheader("What the index missed")
        order = sorted(range(report.queries), key=lambda i: report.per_query_recall[i])
        chosen = st.selectbox(
            "Query (the worst first)",
            order,
            format_func=lambda i: view.query_label(ds, i, report.per_query_recall[i]),
            key=f"recall_query_{n}",
        )
        passage = ds.query_passages[chosen]
        shown = text.plain(" ".join(passage.text.split())[:300])
        st.caption(f"Query text: “{shown}” ({text.plain(passage.where())})")
        pair = cached.recall_side_by_side(*measured, chosen)
        exact_run, index_run = pair
        truth_df, got_df = derived.of(
            pair,
            "tables",
            lambda: tuple(
                map(derived.table, view.side_by_side(ds, exact_run.rows, index_run.rows))
            ),
        )
        a, b = st.columns(2)
        a.markdown("**True top 10** (exact scan)")
        a.dataframe(truth_df, width="stretch")
        b.markdown(f"**What the index returned** ({view.knob_label(knobs)})")
        b.dataframe(got_df, width="stretch")
        with a:
            text.show_sql(exact_run)
        with b:
            text.show_sql(index_run)
        st.caption(
            "The harness runs these two statements, without the distance column, for each of the "
            f"{report.queries} query vectors; here `$1` is this query's."
        )
        if st.toggle("EXPLAIN ANALYZE both queries for this query vector", key="recall_explain"):
            q = ds.queries[chosen]
            e1, e2 = st.columns(2)
            e1.code(
                "\n".join(recall.explain(db, target, q, 10, report.exact_settings, analyze=True)),
                language="text",
            )
            e2.code(
                "\n".join(recall.explain(db, target, q, 10, report.index_settings, analyze=True)),
                language="text",
            )


measurement()

# ---- rebuild: the index-time knobs -----------------------------------------------------
st.subheader("Bring recall back")
st.markdown(
    "`hnsw.ef_search` (above) is free to change per query. The graph's own shape — `m` links "
    "per node and `ef_construction` candidates while building — needs a rebuild; so does "
    "switching to IVFFlat, whose `lists` are fixed at build time while `probes` is per query."
)
with st.form("recall_rebuild"):
    c1, c2, c3, c4 = st.columns(4)
    new_kind = c1.radio("Index type", ["hnsw", "ivfflat"], index=0 if kind == "hnsw" else 1)
    m = c2.number_input("m (HNSW)", 2, 100, 16)
    efc = c3.number_input("ef_construction (HNSW)", 4, 1000, 64)
    lists = c4.number_input(
        "lists (IVFFlat)",
        1,
        32768,
        index_specs.default_lists(n),
        help="pgvector's advice: rows/1000",
    )
    spec = IndexSpec(new_kind, int(m), int(efc), int(lists)).resolved(n)
    st.caption(
        f"Replaces the index of the {n:,}-row table for everyone using this server. "
        + view.rebuild_estimate(index, n, spec)
    )
    submitted = st.form_submit_button(f"Rebuild the {n:,}-row index")
if submitted and room.may(f"Rebuilding the {n:,}-row index"):
    try:
        spec.check()
    except ValueError as e:
        st.error(str(e))
    else:
        with room.refusals():
            size_jobs.request(db, ds, n, spec)
            st.rerun()
if index is not None:
    st.caption("Current index, as it was built:")
    st.code(index_specs.index_statement(status.table, index.spec()).psql(), language="sql")
if status.loaded and job is None and room.instructor():
    with st.popover("Drop this size…", icon=":material/delete:", key="recall_drop"):
        st.markdown(
            f"Drops `{status.table}` with its index and ground truth, the Index tuning copies "
            f"made from it and, unless another model has a {n:,}-row table, the passages' text "
            "and BM25 tables of this size: for everyone on this server. Stored measurements "
            f"stay. Building it again takes what `make prepare` took for {n:,} rows."
        )
        sure = st.checkbox("Yes, drop it for everyone", key="recall_drop_sure")
        if st.button(
            f"Drop {n:,} rows", key="recall_drop_go", disabled=not sure, type="primary"
        ) and room.may(f"Dropping {n:,} rows"):
            try:
                dropped = size_drop.drop_size(db, n, ds.dimension)
            except size_drop.SizeBusy as e:
                st.error(text.plain(str(e)), icon=":material/hourglass_top:")
            else:
                st.session_state["recall_dropped"] = {
                    *st.session_state.get("recall_dropped", ()),
                    n,
                }
                st.toast(f"Dropped {', '.join(dropped)}", icon=":material/delete:")
                st.rerun()

# ---- your own table ----------------------------------------------------------------------
# A job in the one queue (own_jobs.py): one run per table, column and knob, whoever asks; the
# page shows the newest result kept for that key and never runs the scans itself.
st.subheader("Your own table")
st.markdown(
    "Any table with a `vector` column on this server: the same harness runs the exact scan "
    "and the index on 100 of its own rows as queries, in read-only transactions, at the "
    "`ef_search` / `probes` set above. It runs in the server's shared queue: everyone asking "
    "for the same table, column and setting gets one run, and its result is kept, with when "
    f"it ran. Here each exact scan may take at most {own_jobs.EXACT_TIMEOUT_MS / 1000:g} s "
    "(`statement_timeout`); a larger table is for the command line (`python -m lib.recall`)."
)


@connection.progress_fragment(run_every=1.0)
def own_progress(job_id: int) -> None:
    running = own_jobs.get(db, job_id)
    if running is None or not running.running:
        st.rerun(scope="app")
    p = own_jobs.progress(db, running)
    st.progress(p.fraction or 0.0, text=text.plain(p.text))  # names from the server
    st.caption(
        "This goes on if you leave the page; everyone asking for this table, column and "
        f"setting shares it (job {running.id}, requested {running.requested_at:%H:%M:%S})."
    )
    if room.instructor():
        st.button(
            "Cancel this measurement", key=f"recall_own_cancel_{job_id}", on_click=queue.cancel,
            args=(db, job_id), help="Stops it for everyone; the last result is kept.",
        )  # fmt: skip


def own_result(found: own_jobs.Job) -> None:
    """The stored result of a done job: what it measured, when, and the SQL that ran."""
    own = found.recall_report()
    assert own is not None  # a done job recorded it
    for w in found.warnings:
        st.info(text.plain(w))
    finished = found.finished_at.astimezone(UTC)
    st.metric(
        f"recall@10 of {text.plain(str(own.index))} ({view.knob_label(found.knobs)})",
        f"{own.recall['mean']:.3f}",
        help=f"worst query {own.recall['min']:.1f}; {own.rows:,} rows with a vector",
    )
    st.markdown(own.lesson())
    st.caption(
        f"Measured {finished:%Y-%m-%d %H:%M:%S} UTC (job {found.id}, {found.elapsed():.1f} s). "
        f"Queries: {own.queries} rows sampled from the table itself (each finds itself "
        f"first). Exact median {own.exact_latency_ms['p50']:.1f} ms, index median "
        f"{own.index_latency_ms['p50']:.2f} ms."
    )
    script = found.script()
    if script is not None:
        text.show_sql(script)
        st.caption(
            "The index's query as the job ran it for each sampled row, here bound to the first "
            "one (with its distance column)."
        )


columns = cached.vector_columns()
if not columns:
    st.info("This server has no readable table with a vector column.")
else:
    labels = [c.label for c in columns]
    pick = st.selectbox("Schema, table and column", labels, key="recall_own_column")
    col = columns[labels.index(pick)]
    own_knobs = own_jobs.knobs_of(
        col,
        ef_search=int(state.get("recall_ef_search", 40)),
        probes=int(state.get("recall_probes", 1)),
    )
    newest = own_jobs.last(db, col, own_knobs)
    stored = own_jobs.last(db, col, own_knobs, done=True)
    live = newest if newest is not None and newest.running else None
    label = "Measure again" if stored is not None else "Measure recall on this column"
    if st.button(label, key="recall_own_measure", disabled=live is not None) and room.may(
        "Measuring recall on your table (exact scans of it, a job in the shared queue)"
    ):
        live = newest = own_jobs.request(db, col, own_knobs)
    if live is not None:
        own_progress(live.id)
    elif newest is not None and newest.state == "failed":
        st.error(
            f"Measuring recall on {text.plain(newest.label)} failed: "
            f"{text.plain(newest.error or '')}",
            icon=":material/error:",
        )  # names and messages from the server
    elif newest is not None and newest.state == "cancelled":
        st.info("The last measurement was cancelled.")
    if stored is not None:
        if newest is not None and newest.id != stored.id:
            st.caption("The last result kept for this table, column and setting:")
        own_result(stored)

st.subheader("What to notice")
st.markdown(
    "- Every query returned 10 rows at every size. Nothing tells you which of them are wrong "
    "unless you compare with the exact scan.\n"
    "- Recall falls as the table grows at fixed `ef_search`, while the exact scan's latency "
    "grows with the rows and the index's barely moves: that is the trade.\n"
    "- Raising `ef_search` buys recall back with latency, no rebuild. A larger `m` or "
    "`ef_construction` buys it with build time and memory.\n"
    "- The ground truth is not assumed: its plan is a sequential scan with index scans off, "
    "checked on every run. The settings are `SET LOCAL`, so they end with the transaction."
)
