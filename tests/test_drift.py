"""Drift on a real PostgreSQL: months of a small table and its query log simulated from the
corpus (labels made from the rows themselves, tests/test_evals.py's `made_labels`), every
signal computed by the SQL the page shows, the late manual's arrival seen by the signals, and
the signals' SQL run on a table without an `added_at` column (your own table)."""

from __future__ import annotations

import pytest
from psql_util import assert_same_results
from test_evals import made_labels

from lib.core.embeddings.cache import EmbeddingCache
from lib.dataset.passages import load_dataset
from lib.harness import drift, evals

pytestmark = pytest.mark.db

N = 2_400  # the first real rows (embedded for the Evals and Hybrid tests too)


@pytest.fixture(scope="module")
def ds():
    ds = load_dataset()
    ds.embed(N)  # the rows' vectors, if no test before this one embedded them
    return ds


@pytest.fixture(scope="module")
def labels(ds):
    return made_labels(ds, N, per_kind=400)


@pytest.fixture(scope="module")
def simulated(db, ds, labels, minilm, tmp_path_factory):
    doc_id = evals.lab_doc_ids(ds)
    doc_row = {doc_id(r): r for r in range(1, N + 1)}
    source_of = lambda r: ds.passage_of(r).source  # noqa: E731
    plan = drift.plan(labels, source_of, doc_row, rows=2_000, available=N, per_month=40)
    cache = EmbeddingCache(tmp_path_factory.mktemp("drift") / "embeddings.sqlite")
    qv = evals.query_vectors(minilm, [q.text for q in labels.queries], cache)
    vectors = dict(zip([q.id for q in labels.queries], qv, strict=True))
    real = ds.real

    def rows(ids):
        import numpy as np

        block = real[0:N]
        return np.stack([block[i - 1] for i in ids])

    drift.build(db, plan, rows, vectors, doc_id, source_of)
    report = drift.measure(db, drift.lab_source(), labels, plan, doc_id)
    return plan, report


def test_the_plan_adds_the_late_manual_in_its_month_and_shifts_the_questions(simulated, ds):
    plan, report = simulated
    late_rows = [m for r, m in plan.rows if ds.passage_of(r).source == plan.late]
    assert late_rows and set(late_rows) == {plan.arrives}
    assert {m for r, m in plan.rows if ds.passage_of(r).source != plan.late} == {0}
    assert all(s == 0 for s in report.late_share[: plan.shift_from])
    assert report.late_share[-1] > 0.3
    assert report.queries == [40] * plan.months


def test_every_signal_is_measured_each_month(simulated):
    _, report = simulated
    for name in ("median_top1", "share_below", "query_distance", "ndcg"):
        assert all(v is not None for v in report.series[name]), name
    assert 0 < report.threshold < 1
    assert report.rows_added[0] > 0 and report.rows_added[8] > 0


def test_the_late_questions_pull_quality_down_until_the_content_arrives(simulated):
    plan, report = simulated
    ndcg = report.series["ndcg"]
    before = sum(ndcg[: plan.shift_from]) / plan.shift_from
    waiting = ndcg[plan.arrives - 1]
    assert waiting < before  # late questions with no answer in the table yet
    assert report.series["ndcg"][plan.arrives] > waiting  # the passages came
    # no signal fires before the questions shift; the new rows' one fires when they arrive
    assert all(m is None or m >= plan.shift_from for m in report.fired.values())
    assert report.fired["share_below"] is not None
    assert report.fired["row_distance"] == plan.arrives
    assert report.first()


def test_the_signals_sql_pasted_into_psql_gives_the_same_rows(simulated, pg_url):
    _, report = simulated
    for script in report.scripts.values():
        assert "SET LOCAL transaction_read_only = on" in script.text()
        assert_same_results(script, pg_url)


def test_the_signals_run_on_a_table_without_added_at_read_only(db, simulated):
    with db.transaction() as conn:
        # the learner's own tables, in public (the lab's are in pgvector_lab)
        conn.execute("DROP TABLE IF EXISTS public.own_docs; DROP TABLE IF EXISTS public.own_log")
        conn.execute("CREATE TABLE public.own_docs AS SELECT id, embedding FROM drift_rows")
        conn.execute(
            "CREATE TABLE public.own_log AS SELECT id, asked_at AS ts, embedding FROM drift_queries"
        )
    own = drift.Source(("public", "own_docs"), "id", "embedding", ("public", "own_log"),
                       "embedding", "ts", None, "week")  # fmt: skip
    from lib.core.psql import run

    got = run(db, [drift.top1_statement(own, 0.5), *drift.centroid_statements(own, drift.START)],
              drift.READ_ONLY)  # fmt: skip
    assert got.error is None
    top1 = got.results[0].rows
    assert sum(r[1] for r in top1) == len(simulated[0].asked)
    assert all(0 <= r[4] <= 1 for r in top1)
