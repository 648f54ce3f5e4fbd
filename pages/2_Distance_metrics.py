"""Distance metrics: one set of vectors ranked under cosine, L2 and inner product."""

import streamlit as st

from lib.core.embeddings.base import EmbeddingError
from lib.core.queries import QueryError, check_text
from lib.lessons.metrics import cached, rankings
from lib.lessons.metrics import view as tables
from lib.lessons.metrics.vector_arrows import vector_arrows
from lib.ui import connection, nav, resources, text

st.set_page_config(page_title="Distance metrics", layout="wide")
nav.sidebar()

POINTS = "dm_points"
METRIC = "dm_metric"
NORMALISE = "dm_normalise"
DOC_COUNT = "dm_doc_count"
QUERY_TEXT = "dm_query"
PICK = "dm_query_pick"
GOOD_QUERY = "dm_good_query"
SCALED = "dm_scaled"
FACTOR = "dm_factor"

if POINTS not in st.session_state:
    st.session_state[POINTS] = rankings.example("lesson")

st.title("Distance metrics")
st.markdown(
    "Which document is *closest* to a query depends on how you measure. pgvector has three "
    "operators: `<=>` **cosine** distance, `<->` **Euclidean (L2)** distance and `<#>` "
    "**negative inner product**. Below, documents A–D (add up to eight) and a query are "
    "arrows in two dimensions. Drag any arrow's tip, switch the metric, and watch the "
    "rankings — computed in numpy and again by PostgreSQL — follow."
)


def move(name: str, x: float, y: float) -> None:
    st.session_state[POINTS] = {**st.session_state[POINTS], name: (x, y)}


def load_example(preset: str) -> None:
    st.session_state[POINTS] = rankings.example(preset, st.session_state.get(DOC_COUNT, 4))


def set_doc_count() -> None:
    st.session_state[POINTS] = rankings.with_doc_count(
        st.session_state[POINTS], st.session_state[DOC_COUNT]
    )


@st.fragment
def picture() -> None:
    # answering now, or one clear message and the fragment stops (this part makes no table)
    connection.database(creates_tables=False)
    controls = st.columns([3, 1], vertical_alignment="bottom")
    metric_key = controls[0].segmented_control(
        "Metric",
        [m.key for m in rankings.METRICS],
        format_func=lambda k: f"{rankings.BY_KEY[k].label}  `{rankings.BY_KEY[k].operator}`",
        default="cosine",
        key=METRIC,
        required=True,
    )
    metric = rankings.BY_KEY[metric_key or "cosine"]
    normalise = controls[1].toggle(
        "Normalise vectors",
        key=NORMALISE,
        help="Scale every arrow to length 1 (pgvector: `l2_normalize`).",
    )

    # Computed once per arrows and setting, shared by every session (numpy's rankings,
    # Postgres's, both tables): a metric switch only picks what it shows.
    points = tuple(st.session_state[POINTS].items())
    shown = cached.picture(points, normalise)
    names, docs, query, ours = list(shown.names), shown.docs, shown.query, shown.ours
    agreement = shown.agreement

    left, right = st.columns([1.3, 1], gap="large")
    with left:
        vector_arrows(cached.arrows(points, normalise, metric.key), key="dm_arrows", on_move=move)
        st.caption(
            "Drag an arrow's tip. ‖…‖ is the arrow's length; the dotted circle is length 1. "
            + {
                "cosine": "The orange arc is the angle to the top document — all cosine sees.",
                "l2": "Dashed lines run from the query's tip to each document's tip: L2.",
                "ip": "Dotted lines drop each tip onto the query's line: inner product "
                "= that shadow's length × the query's length.",
            }[metric.key]
            + (
                " Normalised: every arrow now ends on the circle, and the window closes in."
                if normalise
                else ""
            )
        )
        with st.container(horizontal=True, vertical_alignment="bottom"):
            st.button("Lesson example", on_click=load_example, args=("lesson",))
            st.button("Zero vector", on_click=load_example, args=("zero",))
            st.button("Identical documents", on_click=load_example, args=("identical",))
            st.number_input(
                "Documents",
                min_value=2,
                max_value=rankings.MAX_DOCS,
                value=4,
                key=DOC_COUNT,
                on_change=set_doc_count,
                width=130,
            )
    with right:
        top = ours[metric.key][0]
        if top.undefined:
            st.markdown(f"##### No top document under {metric.short} `{metric.operator}`")
        else:
            st.markdown(
                f"##### Top document under {metric.short} `{metric.operator}`: **{top.name}**"
            )
        st.info(metric.lesson, icon=":material/lightbulb:")
        st.markdown(
            "First under each metric: "
            + " · ".join(f"{m.short} **{ours[m.key][0].name}**" for m in rankings.METRICS)
        )
        # No pandas Styler: marshalling one costs ~10 ms a click; the metric shown is pinned
        # first and marked in its header instead of shaded.
        st.dataframe(
            shown.rankings_frame,
            column_config={
                tables.column(metric): st.column_config.TextColumn(
                    f"▶ {tables.column(metric)}", pinned=True
                )
            },
            width="stretch",
        )
        st.caption("Scores — " + tables.score_legend() + ".")
        if agreement.agree:
            st.success(
                "The three metrics agree: the same order, rank by rank."
                + (
                    " Every arrow has length 1, so cosine, L2 and inner product are one "
                    "ordering seen three ways."
                    if normalise
                    else ""
                ),
                icon=":material/check_circle:",
            )
        else:
            ranks = ", ".join(str(r) for r in agreement.differing_ranks)
            st.warning(
                f"The metrics disagree at rank {ranks} (marked ✗)."
                + (
                    ""
                    if normalise
                    else " Turn on **Normalise vectors** to make every arrow length 1."
                ),
                icon=":material/compare_arrows:",
            )
        bad_input_notes(names, docs, query, normalise)

    st.subheader("The same rankings from PostgreSQL")
    st.markdown(
        "Each operator ranks the documents with `ORDER BY`, ties broken by `name`; the "
        "documents travel inside each statement, as a `docs` list at its top (`WITH docs AS "
        "(VALUES …)`), so every statement runs on its own and nothing is written to the "
        "database. Below: numpy's ranking and Postgres's, side by side, then the script "
        "exactly as it ran — paste it into `psql` to get the same rows."
    )
    table_col, verdict_col = st.columns([2, 1], gap="large")
    with table_col:
        st.dataframe(shown.engines_frame, width="stretch")
    with verdict_col:
        same, gap = shown.same, shown.gap
        st.markdown(
            "\n".join(
                f"- `{m.operator}` {m.returns}: "
                + ("✓ the same order as numpy" if same[m.key] else "✗ **a different order**")
                for m in rankings.METRICS
            )
        )
        st.caption(
            "The numbers are what each operator returns: smaller is closer, for all three. "
            "numpy sums in float32 as pgvector does; the largest difference between numpy's "
            "value and Postgres's for the same document and operator is "
            + ("**0**: every value is the same number." if gap == 0 else f"**{gap:.1e}**.")
        )
    st.code(shown.script_text, language="sql", wrap_lines=True)


def bad_input_notes(names, docs, query, normalise: bool) -> None:
    if rankings.zero_vectors(["q"], query[None, :]):
        st.error(
            "**The query is the zero vector, so every cosine is undefined.** Each `<=>` is "
            "0 / 0 and Postgres returns NaN for all of them; with nothing to sort by, "
            "`ORDER BY embedding <=> q, name` falls back to the names. L2 ranks by length "
            "alone and inner product gives every document 0. Drag the query away from "
            "the origin.",
            icon=":material/block:",
        )
        return
    zeros = rankings.zero_vectors(names, docs)
    if zeros:
        z = zeros[0]
        st.error(
            f"**{z} is the zero vector, so its cosine is undefined.** Cosine divides by both "
            f"lengths: {z}·q / (‖{z}‖ ‖q‖) = 0 / 0. Postgres does not raise an error: "
            f"`{z} <=> q` returns **NaN**, and PostgreSQL sorts NaN after every number, so "
            f"{z} lands last under `<=>` whatever the query. L2 (`<->` = ‖q‖) and inner "
            f"product (`<#>` = 0) are still defined. "
            + ("`l2_normalize` leaves a zero vector at zero. " if normalise else "")
            + "An HNSW or IVFFlat index with `vector_cosine_ops` skips zero vectors entirely, "
            "so an index scan never returns them.",
            icon=":material/block:",
        )
    for group in rankings.identical_groups(names, docs):
        listed = " and ".join(group)
        st.info(
            f"**{listed} are identical**, so every metric gives them exactly the same score: "
            f"a tie. SQL leaves tied rows in no particular order unless told, so every query "
            f"here ends with `ORDER BY <distance>, name` — and numpy sorts by (score, name) "
            f"too. Ties always come out as {', '.join(group)}, in both.",
            icon=":material/drag_handle:",
        )


picture()

st.subheader("Three traps")
trap_cols = st.columns(3, gap="medium")
with trap_cols[0], st.container(border=True):
    st.markdown(
        "**`<#>` returns the *negative* inner product.** Postgres index scans only walk "
        "ascending order, so pgvector negates: the best match has the *smallest* `<#>`. "
        "Write `ORDER BY embedding <#> q` (ascending) and flip the sign to show it: "
        "`(embedding <#> q) * -1`."
    )
with trap_cols[1], st.container(border=True):
    st.markdown(
        "**`<=>` is a distance, not a similarity.** Cosine similarity = `1 - (embedding <=> "
        "q)`: 1 means the same direction, 0 a right angle, −1 opposite. Distance runs 0 to 2. "
        "Sort by the distance ascending, or by the similarity descending — never the "
        "similarity ascending."
    )
with trap_cols[2], st.container(border=True):
    st.markdown(
        "**An index serves one operator.** Build it with the operator class of the operator "
        "you query with:\n\n"
        + "\n".join(f"- `{m.operator}` needs `{m.opclass}`" for m in rankings.METRICS)
        + "\n\nFor a table `items`: `CREATE INDEX ON items USING hnsw (embedding "
        "vector_cosine_ops);`"
    )

st.subheader("Real data: the corpus under each metric")
model_name = nav.model_name()
connection.database()  # answering now, or one clear message and the page stops
corpus = resources.corpus(model_name)
lesson_queries = [it.text for it in corpus.items if it.lesson and it.kind == "text"]


def new_query() -> None:
    st.session_state.pop(SCALED, None)
    st.session_state[PICK] = None


def pick_query() -> None:
    if st.session_state.get(PICK):
        st.session_state[QUERY_TEXT] = st.session_state[PICK]
        st.session_state.pop(SCALED, None)


st.session_state.setdefault(QUERY_TEXT, lesson_queries[0])
typed = st.text_input(
    "Query — type your own and press Enter",
    key=QUERY_TEXT,
    on_change=new_query,
    help="Embedded as a query by the model, then ranked against the corpus in Postgres.",
)
st.pills("…or pick one of the lesson's", lesson_queries, key=PICK, on_change=pick_query)
try:
    checked = check_text(resources.model(model_name), typed)
except QueryError as e:
    st.error(
        f"{e} Showing the last query that worked: “{text.plain(st.session_state[GOOD_QUERY])}”."
        if st.session_state.get(GOOD_QUERY)
        else str(e),
        icon=":material/error:",
    )
    checked = check_text(
        resources.model(model_name), st.session_state.get(GOOD_QUERY) or lesson_queries[0]
    )
if checked.truncated:
    note = checked.note(resources.model(model_name).info)
    st.info(text.plain(note), icon=":material/content_cut:")
try:
    query_vector = resources.query_vector(model_name, checked.text)
except EmbeddingError as e:
    text.embedding_error(e)
    st.stop()
st.session_state[GOOD_QUERY] = checked.text

low, high = cached.norm_range(corpus.table)
info = resources.model(model_name).info
if high - low < 1e-3:
    st.markdown(
        f"`{model_name}` returns **unit-length vectors**: measured in Postgres, "
        f"`vector_norm(embedding)` runs from {low:.6f} to {high:.6f} over the "
        f"{len(corpus.items)} documents of `{corpus.table}`. With every length 1, the three "
        "metrics must agree — check below. Then scale a few documents and watch them part."
    )
else:
    st.markdown(
        f"`{model_name}`'s vectors are **not** unit length: `vector_norm(embedding)` runs from "
        f"{low:.3f} to {high:.3f} in `{corpus.table}`, so the three metrics can disagree even "
        "before any scaling."
    )

baseline = cached.corpus_rankings(corpus.table, query_vector, 13)
just_outside = [h.id for h in baseline.rankings["cosine"][10:13]]
content = {it.id: it.text for it in corpus.items}
scale_cols = st.columns([3, 1.2])
scaled = scale_cols[0].multiselect(
    "Scale these documents (on the way, in each query's `scaled` list; the shared table is only "
    "read)",
    list(content),
    default=just_outside if SCALED not in st.session_state else None,
    format_func=lambda i: content.get(i, i),
    key=SCALED,
    help="By default: the three documents cosine ranks 11th to 13th, just outside the top 10.",
)
factor = scale_cols[1].select_slider(
    "by a factor of", [0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0], value=1.0, key=FACTOR
)
real = cached.corpus_rankings(corpus.table, query_vector, 10, tuple(scaled), factor)
agree, differing = rankings.lists_agree(real.rankings)
st.dataframe(
    cached.corpus_frame(corpus.table, query_vector, 10, tuple(scaled), factor), width="stretch"
)
if agree and (factor == 1 or not scaled):
    st.success(
        f"All three top-10 lists agree, rank by rank: `{model_name}` normalises its vectors, so "
        "cosine, L2 and inner product give one order. Now pick a factor above.",
        icon=":material/check_circle:",
    )
elif agree:
    st.success("The three lists still agree.", icon=":material/check_circle:")
else:
    st.warning(
        f"The lists part at rank {', '.join(map(str, differing))}. Cosine ignores the scaling "
        "(same direction); inner product grows with the factor, and L2 moves the scaled "
        "documents away from (×>1) or towards (×<1) the query's tip.",
        icon=":material/compare_arrows:",
    )
with st.expander("The SQL that ran"):
    text.show_sql(real.script)

st.subheader("An index built for one operator does not serve another")
opclasses = cached.index_opclasses(corpus.table)
described = ", ".join(f"`{name}` ({opclass})" for name, opclass in opclasses) or "none"
st.markdown(
    f"`{corpus.table}` has one vector index: {described}. Ask for the top 10 with each "
    "operator under `SET LOCAL enable_seqscan = off`, which makes the planner take any "
    "index that can serve the `ORDER BY`. These are the plans that ran (`EXPLAIN ANALYZE`):"
)
plans = cached.operator_plans(corpus.table, query_vector)
text.show_sql(plans.script)
for plan in plans.plans:
    verdict_col, plan_col = st.columns([1, 2], gap="medium")
    with verdict_col:
        if plan.index:
            st.success(
                f"`{plan.metric.operator}` uses the index: an **Index Scan** on "
                f"`{plan.index}`, built with `{plan.metric.opclass}`.",
                icon=":material/bolt:",
            )
        else:
            st.error(
                f"`{plan.metric.operator}` cannot use it: a **Seq Scan** and a sort, even with "
                f"sequential scans disabled (`Disabled: true`). It needs its own index, built "
                f"with `{plan.metric.opclass}`.",
                icon=":material/block:",
            )
    plan_col.code(plan.text, language="text", wrap_lines=True)

st.subheader("What to notice")
st.markdown(
    """
- **Cosine sees only direction.** Make a document's arrow longer or shorter along the same line:
  its cosine never moves.
- **Inner product rewards length.** A long arrow that points roughly the right way beats a short
  one that points exactly right.
- **L2 is straight distance** between the tips, so length and direction both count.
- **Normalise, and the three agree.** With every vector of length 1, L2² = 2 − 2·cos and
  inner product = cos: one order, three scales. Models that normalise (like `all-MiniLM-L6-v2`
  here) let you pick the cheapest operator — and pgvector's docs suggest `<#>` then.
- **Pick the operator the index was built for.** An HNSW index with `vector_cosine_ops`
  serves `<=>` only; the same query with `<->` quietly scans the whole table.
"""
)
