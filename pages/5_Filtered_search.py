"""Filtered search: a WHERE clause on an approximate index returns fewer rows than LIMIT;
pgvector 0.8's iterative scans and the other fixes, measured side by side."""

import streamlit as st

from lib.core.view import when
from lib.dataset import passages, recall_tables
from lib.harness.recall import HarnessError
from lib.lessons.filtered import cached, jobs, tables, view
from lib.lessons.filtered import search as fs
from lib.lessons.filtered.tables import BY_VALUE, PARTIAL, SELECTIVITIES, TWIN
from lib.ui import connection, derived, nav, resources, room, text

st.set_page_config(page_title="Filtered search", page_icon="🔎", layout="wide")
nav.sidebar(model_picker=False)

st.title("Filtered search")
st.markdown(
    "Add a filter to an approximate nearest-neighbour query — `WHERE category = 3 ORDER BY "
    "embedding <=> $1 LIMIT 10` — and it can return **fewer rows than its LIMIT**, or the "
    "wrong ones. The HNSW index hands the executor its `hnsw.ef_search` nearest candidates "
    "(40 by default) and the filter then throws away those that do not match: with a filter "
    "that matches 10% of the rows, about 4 survive. pgvector 0.8 can keep scanning the graph "
    "until LIMIT is met (`hnsw.iterative_scan`), up to `hnsw.max_scan_tuples` rows. Every "
    "figure below comes from the lab's 100 held-out queries run against a real table, "
    "compared with the exact filtered answer."
)

db = connection.database()
ds = resources.recall_dataset()
resources.worker()  # this process takes its part in the job queue

n = st.select_slider(
    "Rows in the table",
    options=tables.SIZES,
    value=tables.offered_size(st.query_params.get("rows")),
    key="filtered_size",
    format_func=lambda v: f"{v:,}",
    help="Each size is its own table, built once from the recall table's rows and kept: "
    f"{tables.table_name(tables.DEFAULT_SIZE, ds.dimension)}, …",
)

# ---- preparation: a queue in PostgreSQL, shared by every session and every process ------
table = tables.status(db, ds, n)
last = jobs.last(db, n)
job = last if last is not None and last.running else None
if job is None and table is None:
    # Rows whose passages are not embedded yet: say how long that takes, start on a click.
    estimate = (
        None
        if recall_tables.table_status(db, ds, n).loaded
        else resources.embedding_estimate(ds.fingerprint(), n)
    )
    if last is not None and last.state == "failed":
        st.error(
            f"Preparing {n:,} rows failed: {text.plain(last.error or '')}", icon=":material/error:"
        )
        if st.button("Try again") and room.may(f"Preparing the filtered table of {n:,} rows"):
            with room.refusals():
                job = jobs.request(db, ds, n)
    elif (
        estimate is not None and estimate.seconds > passages.ASK_ABOVE_SECONDS and room.instructor()
    ):
        st.info(
            f"**The {n:,}-row tables are not built on this server yet.** {estimate.sentence()}; "
            "then the rows are loaded, the filtered table and its indexes built and the default "
            "query sets measured. It runs in the server's shared queue, where everyone asking "
            "for this size shares it, and goes on if you leave the page. Smaller sizes are "
            "quicker; `make prepare` builds every size before a class.",
            icon=":material/schedule:",
        )
        if st.button(f"Embed and build {n:,} rows", key=f"filtered_embed_{n}") and room.may(
            f"Preparing the filtered table of {n:,} rows"
        ):
            with room.refusals():
                job = jobs.request(db, ds, n)
    elif room.may(f"Preparing the filtered table of {n:,} rows (not prepared on this server)"):
        with room.refusals():
            job = jobs.request(db, ds, n)


@connection.progress_fragment(run_every=1.0)
def build_progress(job_id: int, ready: bool) -> None:
    running = jobs.get(db, job_id)
    if running is None or not running.running:
        st.rerun(scope="app")
    p = jobs.progress(db, running)
    st.progress(p.fraction or 0.0, text=p.text)
    st.caption(
        "This goes on if you leave the page; everyone asking for this size shares it "
        f"(job {running.id}, requested {running.requested_at:%H:%M:%S})."
        + (" The measurements below fill in as it goes." if ready else "")
    )


if job is not None:
    build_progress(job.id, table is not None)
if table is None:
    st.stop()

with st.expander("How the table is built (once, then kept)", icon=":material/table:"):
    st.markdown(
        f"`{table.name}` holds the {table.n:,} rows of `{table.source}` with two filter columns. "
        "**category** gives each row, in an order shuffled by a hash of its id (so it has "
        "nothing to do with the vector), a value whose share of the rows is known: "
        + ", ".join(
            f"{c.value} ({table.counts.get(c.value, 0):,} rows, {c.label})" for c in SELECTIVITIES
        )
        + f", {PARTIAL.value} ({table.counts.get(PARTIAL.value, 0):,} rows: the twin of "
        f"{TWIN.value}, with a partial HNSW index of its own) and 0 for the rest. **chapter** "
        "is the manual and chapter of the passage behind a real row (NULL for a generated one). "
        f"Built {table.built_at:%Y-%m-%d %H:%M} UTC: copy and B-trees "
        f"{table.copy_seconds:.1f} s, HNSW index {table.index_seconds:.1f} s, partial index "
        f"{table.partial_seconds:.1f} s (maintenance_work_mem {table.maintenance_work_mem})."
    )
    st.code(
        "\n\n".join(s.psql() for s in tables.build_statements(table.n, ds.dimension)),
        language="sql",
    )


def measure_button(cells: list, label: str, key: str) -> None:
    """A button that measures `cells` (those not stored yet) and reruns the fragment."""
    if st.button(label, key=key, icon=":material/play_arrow:") and room.may(
        "Measuring these filters", shared=False
    ):
        cached.filtered_measure(n, table.built_at, cells)
        st.rerun(scope="fragment")


def statements(label: str, cells: list):
    """A collapsed expander that runs and shows each cell's statement only while open."""
    box = st.expander(label, on_change="rerun")
    if box.open:
        with box:
            for c in cells:
                st.markdown(f"**{view.path_label(c)}**")
                text.show_sql(cached.filtered_script(n, table.built_at, c, 0))
    return box


@st.fragment
def explore(table: tables.FilteredTable) -> None:
    built = table.built_at
    c1, c2, c3 = st.columns([5, 4, 4], gap="large")
    category = c1.segmented_control(
        "Filter: WHERE category = … (its share of the rows)",
        [c.value for c in SELECTIVITIES],
        default=TWIN.value,
        required=True,
        format_func=lambda v: BY_VALUE[v].label,
        key="filtered_category",
    )
    mode = c1.segmented_control(
        "hnsw.iterative_scan",
        fs.MODES,
        default="off",
        required=True,
        key="filtered_mode",
        help="off: the index returns at most ef_search candidates, the filter keeps what it "
        "keeps. strict_order: it scans on, in exact distance order. relaxed_order: it scans "
        "on and may return rows slightly out of order (faster).",
    )
    k = c2.select_slider("LIMIT k", fs.K_CHOICES, value=fs.DEFAULT_K, key="filtered_k")
    ef = c2.select_slider(
        "hnsw.ef_search — candidates per search",
        fs.EF_CHOICES,
        value=fs.DEFAULT_EF,
        key="filtered_ef",
        help="pgvector's default is 40.",
    )
    mst = c3.select_slider(
        "hnsw.max_scan_tuples — where an iterative scan gives up",
        fs.MAX_SCAN_CHOICES,
        value=fs.DEFAULT_MAX_SCAN,
        format_func=lambda v: f"{v:,}",
        key="filtered_max_scan",
        help="pgvector's default is 20,000. It has no effect when iterative_scan is off.",
    )
    c3.caption(
        f"**{table.n:,} rows**; the filter matches {table.counts.get(category, 0):,} of them. "
        f"The {len(ds.queries)} queries are real passages held out of every table."
    )
    knobs = {"k": k, "ef_search": ef, "max_scan_tuples": mst}
    cell = fs.Cell.of(fs.category_filter(category), "hnsw", mode, **knobs)
    try:
        run = cached.filtered_run(n, built, cell)
    except HarnessError as e:
        st.error(text.plain(str(e)), icon=":material/error:")
        return

    m = st.columns(5)
    m[0].metric(f"Queries short of LIMIT {k}", f"{run.short} of {run.queries}")
    m[1].metric("Rows returned per query", f"{run.mean_rows:.1f}", help="mean over the queries")
    m[2].metric(f"recall@{k}", f"{run.mean_recall:.3f}", help="against the exact filtered truth")
    m[3].metric("Latency p50", f"{run.latency():.2f} ms", help=f"p95 {run.latency(95):.2f} ms")
    m[4].metric(
        "Rows read per query",
        f"{run.median_visited:,.0f}" if run.median_visited is not None else "—",
        help=f"median of the first {len(run.visited)} queries under EXPLAIN (ANALYZE, BUFFERS):"
        " the rows the scan returned plus those its filter removed",
    )
    sentence = view.rows_sentence(run, table)
    if run.short:
        st.warning(sentence, icon=":material/filter_alt_off:")
    else:
        st.success(sentence, icon=":material/check_circle:")
    st.caption(
        view.cost_sentence(run)
        + f" The exact filtered truth: {run.queries} exact scans whose plan "
        f"({' → '.join(run.truth_plan)}) reads no index, run {when(run.truth_ran_at)}."
    )
    if st.button("Measure again now", key="filtered_again") and room.may(
        "Measuring again", shared=False
    ):
        cached.filtered_measure(n, built, [cell], again=True)
        st.rerun(scope="fragment")

    sql_box = st.expander("The statement, as it ran for the first query", on_change="rerun")
    if sql_box.open:
        with sql_box:
            script = cached.filtered_script(n, built, cell, 0)
            text.show_sql(script)
            st.dataframe(
                {c: [r[i] for r in script.rows] for i, c in enumerate(("id", "distance"))},
                hide_index=True,
            )
            st.caption(f"The query set runs this statement for each of the {run.queries} "
                       "query vectors, in one transaction.")  # fmt: skip
    plan_box = st.expander("Its plan: EXPLAIN (ANALYZE, BUFFERS)", on_change="rerun")
    if plan_box.open:
        with plan_box:
            explained = cached.filtered_script(n, built, cell, 0, explain=True)
            st.code("\n".join(r[0] for r in explained.rows), language="text")
            text.show_sql(explained)

    # ---- every selectivity, every mode -------------------------------------------------
    st.subheader("Every selectivity, every mode")
    grid_cells = [
        fs.Cell.of(fs.category_filter(c.value), "hnsw", md, **knobs)
        for c in SELECTIVITIES
        for md in fs.MODES
    ]
    grid = {**cached.filtered_stored(n, built, tuple(grid_cells)), cell: run}
    # drawn once per set of runs (the same run objects until one is measured again)
    shown = tuple(grid.get(c) for c in grid_cells)
    figure = derived.of(shown, ("filtered_figure", k), lambda: view.figure(grid, k))
    st.plotly_chart(figure, width="stretch", key="filtered_plot")
    missing = [c for c in grid_cells if c not in grid]
    if missing:
        st.caption(
            f"{len(missing)} of the {len(grid_cells)} query sets at these settings have not "
            "been measured yet (each is measured once, then shared)."
        )
        measure_button(missing, f"Measure the {len(missing)} missing", "filtered_grid_missing")

    # ---- the fixes, side by side -------------------------------------------------------
    label = BY_VALUE[category].label
    st.subheader(f"The fixes at {label}, side by side")
    fix_cells = fs.fixes(category, k, ef, mst, mode)
    fixes = {**cached.filtered_stored(n, built, tuple(fix_cells)), cell: run}
    frame = derived.table_of(
        tuple(fixes.get(c) for c in fix_cells),
        ("filtered_fixes", table.name),
        lambda: view.fixes_frame([(c, fixes.get(c)) for c in fix_cells], table),
    )
    st.dataframe(frame, width="stretch")
    missing = [c for c in fix_cells if c not in fixes]
    if missing:
        measure_button(missing, f"Measure the {len(missing)} missing", "filtered_fixes_missing")
    planner = [
        fs.Cell.of(fs.category_filter(c.value), "planner", mode, **knobs) for c in SELECTIVITIES
    ]
    chosen = dict(cached.filtered_stored(n, built, tuple(planner)))
    if all(c in chosen for c in planner):
        st.markdown(
            "**What the planner picks on its own:** "
            + "; ".join(
                f"{BY_VALUE[c.filter.value].label}: {view.plan_label(chosen[c], table)}"
                f" ({chosen[c].short} of {chosen[c].queries} short)"
                for c in planner
            )
            + "."
        )
    else:
        measure_button(
            [c for c in planner if c not in chosen],
            "Measure what the planner picks at every selectivity",
            "filtered_planner_missing",
        )
    statements("The statements of the fixes, as they ran for the first query", fix_cells)

    # ---- the trap ------------------------------------------------------------------------
    st.subheader("The trap: a distance threshold that no row meets")
    trap = fs.trap_cells(k, ef, mst)
    traps = cached.filtered_stored(n, built, trap)
    frame = derived.table_of(
        tuple(traps.get(c) for c in trap),
        ("filtered_trap", table.name),
        lambda: view.trap_frame([(c, traps.get(c)) for c in trap], table),
    )
    st.dataframe(frame, width="stretch")
    if all(c in traps for c in trap):
        st.markdown(view.trap_sentence(traps[trap[0]], traps[trap[1]]))
    else:
        measure_button([c for c in trap if c not in traps], "Measure the trap", "filtered_trap")
    box = statements("The trap's statements, as they ran for the first query", trap)
    if box.open:
        with box:
            st.markdown("**The proof that no row is that close: an exact scan**")
            text.show_sql(cached.filtered_proof(n, built, trap[0], 0))


explore(table)

st.subheader("What to notice")
st.markdown(
    "- With `iterative_scan = off`, the rows a filtered query returns depend on the filter's "
    "selectivity, not on LIMIT: at 10% about `ef_search` × 0.1 rows come back, at 1% almost "
    "none. Nothing errors: the result is just short.\n"
    "- `strict_order` and `relaxed_order` keep scanning until LIMIT is met, at the cost of "
    "reading many more rows (see rows read and latency); `hnsw.max_scan_tuples` caps that, "
    "and a query that hits the cap comes back short again.\n"
    "- `relaxed_order` may return rows out of distance order. Re-sorting in a materialized CTE "
    "fixes it only with `ORDER BY distance + 0`: PostgreSQL 17 and later know the CTE's rows "
    "come out in its ORDER BY's order and skip a plain `ORDER BY distance`.\n"
    "- Left alone, the planner picks the B-tree and an exact sort only when it expects few "
    "rows to match: then every matching row is compared, recall is 1 and it is fast. Just "
    "above that selectivity it keeps the HNSW index, and the queries come back short (see what "
    "it picked, above, at each size). A partial HNSW index answers one category as if it were "
    "its own table.\n"
    "- A distance threshold inside the WHERE clause can never stop an iterative scan early: "
    "when no row meets it, the scan reads on to `max_scan_tuples`. Put the threshold outside "
    "a materialized CTE."
)
