"""Every SQL block the pages show, pasted into the real psql, returns the rows the page got.

Each lib function that runs SQL for a page returns a `lib.core.psql.Script`: the statements with
their parameters, the settings, and each statement's rows. The page shows `Script.text()`;
here that text goes through psql (stdin, as a paste, `\\bind` for the parameters) against
the same PostgreSQL, and every value that comes back is compared with what the page got.
"""

import numpy as np
import pytest
from apptest_util import app_at
from psql_util import PsqlFailed, assert_same_results, psql

from lib.core.psql import Statement, run
from lib.core.queries import text_vector
from lib.dataset import builds, index_specs, recall_tables
from lib.dataset import passages as dataset
from lib.harness import recall
from lib.lessons.metrics import rankings as metrics
from lib.lessons.metrics import view as tables
from lib.lessons.metrics.rankings import Hit
from lib.lessons.space.embedding_space import TOY_VECTOR, cross_model_attempt

pytestmark = pytest.mark.db


@pytest.fixture(scope="module")
def space(minilm_space):
    return minilm_space


# ---- the mechanism ----------------------------------------------------------------------


def test_parameters_of_every_kind_bind_in_psql_as_they_did_in_psycopg(db, pg_url):
    vec = np.array([0.1, -2.5e-8, 3.0], np.float32)
    statement = Statement.of(
        "SELECT $1::vector::text AS v, $2::int + 1 AS n, $3::float8 AS x, $4::text AS s,"
        " cardinality($5::text[]) AS ids, ($5::text[])[2] AS second",
        vec, 41, 0.1, "it's a \\ backslash", ["a b", 'say "hi"', "x,y"],
    )  # fmt: skip
    script = run(db, [statement])
    assert script.rows == [("[0.1,-2.5e-08,3]", 42, 0.1, "it's a \\ backslash", 3, 'say "hi"')]
    assert_same_results(script, pg_url)


def test_settings_are_set_local_inside_begin_and_commit(db, pg_url):
    statement = Statement.of("SELECT current_setting('enable_indexscan') AS s, $1::int AS k", 3)
    script = run(db, [statement], {"enable_indexscan": "off", "statement_timeout": "5s"})
    text = script.text()
    assert text.startswith("BEGIN;\nSET LOCAL enable_indexscan = off;\n")
    assert "SET LOCAL statement_timeout = '5s';" in text and text.endswith("\nCOMMIT;")
    assert script.rows == [("off", 3)]
    assert_same_results(script, pg_url)
    # Outside the transaction the setting is back, in psql as in the pool.
    assert psql(pg_url, text + "\nSHOW enable_indexscan;")[-1].rows == [["on"]]


# ---- Embedding space ---------------------------------------------------------------------


def test_embedding_space_true_neighbours_paste_into_psql(db, pg_url, space, minilm):
    for query in (
        space.point_query(0.1, -0.2),
        space.vector_query(text_vector(minilm, "a small cat"), "text", "a small cat"),
    ):
        answer = space.answer(db, query, 7)
        text = answer.script.text()
        assert text.startswith("BEGIN;\n") and "SET LOCAL enable_indexscan = off;" in text
        assert text.endswith("\\g\nCOMMIT;") and f"FROM {space.table}\n" in text
        assert [n.id for n in answer.in_space] == [r[0] for r in answer.script.rows]
        assert_same_results(answer.script, pg_url)


def test_embedding_space_plan_pasted_into_psql_is_the_plan_shown_and_reads_no_index(
    db, pg_url, space
):
    query = space.point_query(0.0, 0.0)
    plan = space.exact_plan(db, query, 5)
    assert plan.exact and "Seq Scan" in "\n".join(plan.lines)
    printed = assert_same_results(plan.script, pg_url)
    assert [r[0] for r in printed[0].rows] == [r[0] for r in plan.script.rows]
    # The same EXPLAIN where the planner prefers the HNSW index: the check notices.
    indexed = run(db, plan.script.statements, {"enable_seqscan": "off"})
    lines = [r[0] for r in indexed.rows]
    assert "Index Scan" in "\n".join(lines) and not recall.is_exact_text_plan(lines)


def test_embedding_space_cross_model_attempt_fails_in_psql_with_the_same_error(db, pg_url, space):
    attempt = cross_model_attempt(db, space.table, TOY_VECTOR)
    assert attempt.error == "different vector dimensions 384 and 3"
    with pytest.raises(PsqlFailed, match="different vector dimensions 384 and 3"):
        psql(pg_url, attempt.script.text())


# ---- Distance metrics -------------------------------------------------------------------


@pytest.mark.parametrize("preset", ["lesson", "zero", "identical"])
@pytest.mark.parametrize("normalise", [False, True])
def test_distance_metrics_script_pastes_into_psql(db, pg_url, preset, normalise):
    names, docs, query = metrics.split(metrics.example(preset))
    pg = metrics.postgres_rankings(db, names, docs, query, normalise=normalise)
    printed = assert_same_results(pg.script, pg_url)
    assert [[row[0] for row in r.rows] for r in printed] == [
        [r.name for r in pg.rankings[m.key]] for m in metrics.METRICS
    ]


def test_distance_metrics_corpus_script_pastes_into_psql(db, pg_url, space, minilm):
    query = text_vector(minilm, "a small cat")
    scaled = [space.items[3].id, space.items[8].id]
    real = metrics.corpus_rankings(db, space.table, query, k=10, scaled_ids=scaled, factor=5.0)
    printed = assert_same_results(real.script, pg_url)
    assert [[row[0] for row in r.rows] for r in printed] == [
        [h.id for h in real.rankings[m.key]] for m in metrics.METRICS
    ]
    assert not metrics.lists_agree(real.rankings)[0]  # the scaling took effect in both


def test_distance_metrics_plans_paste_into_psql(db, pg_url, space, minilm):
    query = text_vector(minilm, "a red car")
    result = metrics.operator_plans(db, space.table, query)
    assert_same_results(result.script, pg_url)
    assert [p.index is not None for p in result.plans] == [True, False, False]


def test_numpy_and_postgres_values_are_equal_on_the_pictures_vectors(db):
    """The page states the largest difference; on these 2-D vectors it is exactly 0."""
    for preset in ("lesson", "zero", "identical"):
        names, docs, query = metrics.split(metrics.example(preset, 8))
        pg = metrics.postgres_rankings(db, names, docs, query)
        ours = metrics.numpy_rankings(names, docs, query)
        assert metrics.largest_difference(ours, pg.rankings) == 0.0


# ---- Recall at scale ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def small(db):
    ds = dataset.load_dataset()
    builds.prepare(db, ds, 500)
    return ds, recall.generated_target(recall_tables.table_name(500, ds.dimension))


def test_recall_side_by_side_scripts_paste_into_psql(db, pg_url, small):
    ds, target = small
    exact, got = recall.side_by_side(db, target, ds.queries[3], knobs={"hnsw.ef_search": 10})
    for script in (exact, got):
        text = script.text()
        assert "SET LOCAL transaction_read_only = on;" in text and f"FROM {target.table}\n" in text
        assert_same_results(script, pg_url)
    assert "SET LOCAL enable_indexscan = off;" in exact.text()
    assert "SET LOCAL hnsw.ef_search = 10;" in got.text()
    # The exact side's ids are the harness's ground truth for that query.
    truth = recall.ground_truth(db, target, ds.queries[3:4])
    assert [r[0] for r in exact.rows] == truth.ids[0]


def test_recall_index_statement_is_the_ddl_that_builds_the_index(db, pg_url, small):
    ds, target = small
    spec = index_specs.IndexSpec("hnsw", m=8, ef_construction=32)
    scratch = recall_tables.table_name(321, ds.dimension)
    statement = index_specs.index_statement(scratch, spec)
    assert statement.text.startswith(f"CREATE INDEX {scratch}_hnsw_m8_efc32 ON {scratch}")
    printed = psql(
        pg_url,
        f"BEGIN;\nCREATE TABLE {scratch} (id integer, embedding vector({ds.dimension}));\n"
        f"{statement.psql()}\n"
        f"SELECT indexdef FROM pg_indexes WHERE tablename = '{scratch}';\nROLLBACK;",
    )
    assert (
        "USING hnsw (embedding vector_cosine_ops) WITH (m='8', ef_construction='32')"
        in (printed[0].rows[0][0])
    )


# ---- the pages themselves ----------------------------------------------------------------


@pytest.fixture
def metrics_page(pg_url, monkeypatch):
    at = app_at("pages/2_Distance_metrics.py", pg_url, monkeypatch)
    at.run()
    at.select_slider(key="dm_factor").set_value(5.0).run()  # the lists part: a real test
    assert not at.exception, [e.value for e in at.exception]
    return at


def frame(at, column: str):
    return next(d.value for d in at.dataframe if column in d.value.columns)


def test_every_sql_block_on_distance_metrics_returns_in_psql_what_the_page_shows(
    metrics_page, pg_url
):
    at = metrics_page
    blocks = [c.value for c in at.code if c.proto.language == "sql"]
    assert len(blocks) == 3  # the picture's script, the corpus script, the plans
    docs, corpus, plans = blocks

    # The picture's rankings: the Postgres columns of the side-by-side table.
    shown = frame(at, "<=> Postgres")
    for m, result in zip(metrics.METRICS, psql(pg_url, docs), strict=True):
        assert list(shown[f"{m.operator} Postgres"]) == [
            f"{name}  {tables.number(float(value), 4)}" for name, value, *_ in result.rows
        ]

    # The corpus under each metric: the page's table, rebuilt from psql's rows.
    rankings = {
        m.key: [Hit(i, content, float(v), m.score(float(v))) for i, content, v in result.rows]
        for m, result in zip(metrics.METRICS, psql(pg_url, corpus), strict=True)
    }
    scaled = at.multiselect(key="dm_scaled").value
    rebuilt = tables.corpus_table(rankings, scaled, 5.0)
    corpus_frames = [d.value for d in at.dataframe if "(×5)" in d.value.to_string()]
    assert len(corpus_frames) == 1 and corpus_frames[0].equals(rebuilt)

    # The plans: psql prints the plans the page shows.
    shown_plans = [c.value for c in at.code if c.proto.language == "text"]
    printed = [
        metrics.shorten_vectors("\n".join(r[0] for r in p.rows)) for p in psql(pg_url, plans)
    ]
    assert printed == shown_plans
