"""Distance metrics: numpy and a real Postgres rank the same vectors the same way.

Property-based (hypothesis) against the session's real PostgreSQL: for random vectors,
normalised or not, Postgres's <=>, <-> and <#> orders equal numpy's (ties may swap only
among values float32 cannot tell apart); normalising makes the three orders one.
"""

from __future__ import annotations

import math

import numpy as np
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import sql

from lib.lessons.metrics import rankings as metrics
from lib.lessons.metrics.rankings import METRICS
from lib.lessons.metrics.vector_arrows import picture_data

pytestmark = pytest.mark.db

PROPERTY = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

# Half-integers make exact ties (and zero vectors) common; free floats make near-ties.
grid = st.integers(-6, 6).map(lambda i: i / 2)
free = st.floats(-50, 50, width=32, allow_subnormal=False)


@st.composite
def vector_sets(draw, values=None):
    dim = draw(st.integers(2, 12))
    n = draw(st.integers(1, 10))
    element = values if values is not None else draw(st.sampled_from([grid, free]))
    docs = np.array(
        draw(st.lists(st.lists(element, min_size=dim, max_size=dim), min_size=n, max_size=n)),
        dtype=np.float32,
    )
    query = np.array(draw(st.lists(element, min_size=dim, max_size=dim)), dtype=np.float32)
    names = [f"d{i:02d}" for i in range(n)]
    return names, docs, query


def assert_close(a: float, b: float, scale: float) -> None:
    if math.isnan(a) or math.isnan(b):
        assert math.isnan(a) and math.isnan(b), (a, b)
    else:
        assert abs(a - b) <= 1e-5 * max(scale, abs(a), abs(b)), (a, b)


@PROPERTY
@given(vector_sets(), st.booleans())
def test_postgres_ranks_like_numpy_under_every_metric(db, case, normalise):
    names, docs, query = case
    pg = metrics.postgres_rankings(db, names, docs, query, normalise=normalise)
    if normalise:
        docs, query = metrics.normalised(docs), metrics.normalised(query[None, :])[0]
    ours = metrics.numpy_rankings(names, docs, query)
    assert all(metrics.orders_match(docs, query, ours, pg.rankings).values())
    for m in METRICS:
        scale = metrics.rounding_scale(docs, query, m)
        value = {r.name: r.value for r in ours[m.key]}
        for r in pg.rankings[m.key]:
            assert_close(value[r.name], r.value, scale)


@PROPERTY
@given(vector_sets())
def test_normalising_makes_the_three_orders_equal(db, case):
    names, docs, query = case
    keep = [i for i, v in enumerate(docs) if np.any(v)]
    if not keep or not np.any(query):
        return  # a zero vector has no direction to normalise (see the zero-vector test)
    names = [names[i] for i in keep]
    docs = docs[keep]
    pg = metrics.postgres_rankings(db, names, docs, query, normalise=True)
    cosine = pg.rankings["cosine"]
    for m in METRICS:
        # Each metric's order is also an order by cosine distance (ties may swap).
        assert metrics.same_order(cosine, pg.rankings[m.key]), m.key


def test_lesson_example_puts_a_different_document_first_under_each_metric(db):
    names, docs, query = metrics.split(metrics.example("lesson"))
    ours = metrics.numpy_rankings(names, docs, query)
    pg = metrics.postgres_rankings(db, names, docs, query)
    tops = {m.key: pg.rankings[m.key][0].name for m in METRICS}
    assert tops == {"cosine": "A", "l2": "C", "ip": "B"}
    assert {m.key: ours[m.key][0].name for m in METRICS} == tops
    assert not metrics.agreement(ours).agree

    normal = metrics.postgres_rankings(db, names, docs, query, normalise=True)
    assert metrics.agreement(normal.rankings).agree


def test_zero_vector_has_nan_cosine_in_postgres_and_ranks_last(db):
    names, docs, query = metrics.split(metrics.example("zero"))
    assert metrics.zero_vectors(names, docs) == ["D"]
    pg = metrics.postgres_rankings(db, names, docs, query)
    ours = metrics.numpy_rankings(names, docs, query)
    for rankings in (pg.rankings, ours):
        last = rankings["cosine"][-1]
        assert last.name == "D" and math.isnan(last.value) and math.isnan(last.score)
        d_l2 = next(r for r in rankings["l2"] if r.name == "D")
        assert d_l2.value == pytest.approx(float(np.linalg.norm(query)), rel=1e-6)
        d_ip = next(r for r in rankings["ip"] if r.name == "D")
        assert d_ip.value == 0
    # What Postgres itself says, without our code in between.
    row = db.fetchone("SELECT '[0,0]'::vector <=> '[3,1]'::vector, l2_normalize('[0,0]'::vector)")
    assert math.isnan(row[0]) and list(row[1].to_list()) == [0, 0]


def test_zero_query_makes_every_cosine_nan_and_the_order_is_by_name(db):
    names, docs, _ = metrics.split(metrics.example("lesson"))
    query = np.zeros(2, np.float32)
    pg = metrics.postgres_rankings(db, names[::-1], docs[::-1], query)
    assert [r.name for r in pg.rankings["cosine"]] == sorted(names)
    assert all(math.isnan(r.value) for r in pg.rankings["cosine"])


def test_identical_documents_tie_and_come_out_in_name_order_in_both(db):
    # Inserted in reverse name order, so only the explicit tie-break can put A before B.
    names = ["C", "B", "A"]
    docs = np.array([[0.5, 3.0], [2.0, 1.0], [2.0, 1.0]], np.float32)
    query = np.array([1.0, 1.0], np.float32)
    assert metrics.identical_groups(names, docs) == [["A", "B"]]
    pg = metrics.postgres_rankings(db, names, docs, query)
    ours = metrics.numpy_rankings(names, docs, query)
    for m in METRICS:
        for rankings in (pg.rankings, ours):
            order = [r.name for r in rankings[m.key]]
            assert order.index("A") + 1 == order.index("B"), (m.key, order)
        assert [r.name for r in ours[m.key]] == [r.name for r in pg.rankings[m.key]]


def test_the_rankings_write_nothing_each_statement_runs_read_only_on_its_own(db):
    names, docs, query = metrics.split(metrics.example("lesson"))
    for normalise in (False, True):
        pg = metrics.postgres_rankings(db, names, docs, query, normalise=normalise)
        assert "WITH docs (name, embedding) AS" in pg.script.text()
        assert ("l2_normalize(" in pg.script.text()) == normalise
        for statement, result in zip(pg.script.statements, pg.script.results, strict=True):
            # no temporary table, nothing written: each runs alone in a read-only transaction
            rows = db.fetchall(statement.text, settings={"transaction_read_only": "on"})
            assert rows == result.rows


def test_the_corpus_rankings_read_the_shared_table_only(db, minilm_space):
    space = minilm_space
    scaled = [space.items[1].id]
    real = metrics.corpus_rankings(
        db, space.table, space.vectors[0], k=5, scaled_ids=scaled, factor=3.0
    )
    assert "WITH scaled AS" in real.script.text()
    assert scaled[0] == real.rankings["ip"][0].id  # tripled, it leads the inner product
    readonly = {"transaction_read_only": "on"}
    for statement, result in zip(real.script.statements, real.script.results, strict=True):
        with db.transaction(readonly) as conn:
            rows = psycopg.RawCursor(conn).execute(statement.text, statement.params).fetchall()
        assert rows == result.rows


def test_script_shown_is_the_script_that_ran(db):
    names, docs, query = metrics.split(metrics.example("lesson"))
    pg = metrics.postgres_rankings(db, names, docs, query)
    text = pg.script.text()
    assert "('B', '[4,-0.6]'::vector)" in text
    assert "ORDER BY embedding <#> q, name" in text
    assert text.startswith("BEGIN;\n") and text.endswith("COMMIT;")
    # tests/test_sql_blocks.py pastes it into psql; the rankings are made of its rows.
    assert [r[0] for r in pg.script.rows] == [r.name for r in pg.rankings["ip"]]


@pytest.fixture
def indexed_table(db):
    """A real table of unit vectors with an HNSW index for cosine only."""
    table = "test_metrics_explain"
    rng = np.random.default_rng(7)
    vecs = metrics.normalised(rng.normal(size=(300, 8)).astype(np.float32))
    ident = sql.Identifier(table)
    with db.transaction() as conn:
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(ident))
        conn.execute(
            sql.SQL(
                "CREATE TABLE {} (id text PRIMARY KEY, content text, embedding vector(8))"
            ).format(ident)
        )
        with conn.cursor().copy(
            sql.SQL("COPY {} (id, content, embedding) FROM STDIN WITH (FORMAT BINARY)").format(
                ident
            )
        ) as cp:
            cp.set_types(["text", "text", "vector"])
            for i, v in enumerate(vecs):
                cp.write_row((f"doc{i:03d}", f"document {i}", v))
        conn.execute(
            sql.SQL("CREATE INDEX {} ON {} USING hnsw (embedding vector_cosine_ops)").format(
                sql.Identifier(f"{table}_cos"), ident
            )
        )
        conn.execute(sql.SQL("ANALYZE {}").format(ident))
    yield table, vecs
    with db.transaction() as conn:
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(ident))


def test_cosine_index_serves_cosine_only_and_explain_shows_it(db, indexed_table):
    table, vecs = indexed_table
    assert metrics.index_opclasses(db, table) == [(f"{table}_cos", "vector_cosine_ops")]
    result = metrics.operator_plans(db, table, vecs[0])
    plans = {p.metric.key: p for p in result.plans}
    assert plans["cosine"].index == f"{table}_cos"
    assert "Index Scan" in plans["cosine"].text
    for key in ("l2", "ip"):
        assert plans[key].index is None
        assert "Seq Scan" in plans[key].text and "Disabled: true" in plans[key].text
    assert "… 8 values]'::vector" in plans["cosine"].text  # the literal, shortened
    assert "SET LOCAL enable_seqscan = off;" in result.script.text()
    assert result.script.text().count("EXPLAIN (ANALYZE") == 3

    # The operator class decides: an index built with vector_l2_ops serves <-> as well.
    with db.transaction() as conn:
        conn.execute(
            sql.SQL("CREATE INDEX {} ON {} USING hnsw (embedding vector_l2_ops)").format(
                sql.Identifier(f"{table}_l2"), sql.Identifier(table)
            )
        )
    plans = {p.metric.key: p for p in metrics.operator_plans(db, table, vecs[0]).plans}
    assert plans["l2"].index == f"{table}_l2"
    assert plans["ip"].index is None


def test_scaling_in_a_copy_parts_inner_product_and_l2_from_cosine(db, indexed_table):
    table, vecs = indexed_table
    query = vecs[0]
    before = metrics.corpus_rankings(db, table, query, k=10)
    agree, _ = metrics.lists_agree(before.rankings)
    assert agree, "unit vectors: the three top-10 lists are one"
    lifted = [h.id for h in before.rankings["cosine"][7:10]]
    after = metrics.corpus_rankings(db, table, query, k=10, scaled_ids=lifted, factor=5.0)
    assert [h.id for h in after.rankings["cosine"]] == [h.id for h in before.rankings["cosine"]]
    assert after.rankings["ip"][0].id in lifted
    assert not metrics.lists_agree(after.rankings)[0]
    # The shared table was only read.
    norms = db.fetchone(
        sql.SQL("SELECT max(vector_norm(embedding)) FROM {}").format(sql.Identifier(table))
    )
    assert norms[0] == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ValueError):
        metrics.corpus_rankings(db, table, query, factor=0)


def test_picture_marks_the_top_document_and_draws_the_metric():
    names, docs, query = metrics.split(metrics.example("lesson"))
    ours = metrics.numpy_rankings(names, docs, query)
    for key, top, segments in (("cosine", "A", 24), ("l2", "C", 4), ("ip", "B", 5)):
        data = picture_data(names, docs, query, key, ours[key])
        marked = [p["name"] for p in data["points"] if p["top"]]
        assert marked == [top]
        assert len(data["segments"]) == segments
    data = picture_data(names, docs, query, "cosine", ours["cosine"], normalise=True)
    lengths = [math.hypot(p["x"], p["y"]) for p in data["points"]]
    assert lengths == pytest.approx([1.0] * 5)
    assert data["x_range"][1] < metrics.X_RANGE[1]  # the window closes in on the circle


def test_picture_labels_of_twins_and_the_zero_vector_do_not_collide():
    for preset, pair in (("identical", ("C", "D")), ("zero", ("A", "D"))):
        names, docs, query = metrics.split(metrics.example(preset))
        ours = metrics.numpy_rankings(names, docs, query)
        data = picture_data(names, docs, query, "cosine", ours["cosine"])
        spots = {p["name"]: p["textposition"] for p in data["points"]}
        assert spots[pair[0]] != spots[pair[1]], preset


def test_doc_count_adds_and_removes_documents_keeping_the_query():
    points = metrics.with_doc_count(metrics.example("lesson"), 6)
    assert list(points) == ["A", "B", "C", "D", "E", "F", "q"]
    assert list(metrics.with_doc_count(points, 2)) == ["A", "B", "q"]
    assert len(metrics.with_doc_count(points, 99)) == metrics.MAX_DOCS + 1
