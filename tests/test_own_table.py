"""Your own table: listed, checked, measured, and never written to."""

import numpy as np
import pytest

from lib.harness.recall import measure
from lib.lessons.recall import vector_columns as vc

pytestmark = pytest.mark.db


@pytest.fixture(scope="module")
def own(db):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((600, 16)).astype(np.float32)
    with db.transaction() as conn:
        conn.execute("CREATE SCHEMA IF NOT EXISTS mine")
        conn.execute("DROP TABLE IF EXISTS mine.docs, mine.mixed, mine.bare")
        conn.execute("CREATE TABLE mine.docs (doc_id bigint PRIMARY KEY, emb vector(16))")
        with conn.cursor().copy("COPY mine.docs (doc_id, emb) FROM STDIN") as cp:
            for i, v in enumerate(x):
                cp.write_row((i, None if i % 100 == 0 else "[" + ",".join(map(str, v)) + "]"))
        conn.execute("CREATE INDEX docs_hnsw ON mine.docs USING hnsw (emb vector_l2_ops)")
        conn.execute("CREATE TABLE mine.mixed (emb vector)")
        conn.execute("INSERT INTO mine.mixed VALUES ('[1,2,3]'), ('[1,2]'), ('[3,4]'), (NULL)")
        conn.execute("CREATE TABLE mine.bare (id int PRIMARY KEY, emb vector(3))")
        conn.execute("INSERT INTO mine.bare VALUES (1, '[1,2,3]'), (2, '[3,2,1]')")
    return {c.qualified + "." + c.column: c for c in vc.vector_columns(db)}


def test_every_vector_column_on_the_server_is_listed_with_its_index(own):
    docs = own["mine.docs.emb"]
    assert docs.dimension == 16 and docs.key == "doc_id" and docs.type == "vector(16)"
    assert [(i.name, i.kind, i.operator) for i in docs.indexes] == [("docs_hnsw", "hnsw", "<->")]
    assert own["mine.mixed.emb"].dimension is None and own["mine.mixed.emb"].key == "ctid"


def test_mixed_dimensions_get_a_clear_message(db, own):
    with pytest.raises(vc.ColumnProblem, match=r"mixes vectors of 2 different sizes"):
        vc.check_column(db, own["mine.mixed.emb"])


def test_a_column_without_an_index_gets_a_clear_message(db, own):
    with pytest.raises(vc.ColumnProblem, match="no HNSW or IVFFlat index") as e:
        vc.check_column(db, own["mine.bare.emb"])
    assert "CREATE INDEX ON mine.bare USING hnsw (emb vector_cosine_ops)" in str(e.value)


def test_null_vectors_are_counted_and_explained(db, own):
    facts = vc.check_column(db, own["mine.docs.emb"])
    assert facts.nulls == 6 and facts.rows == 594
    assert any("6 of 600 rows have a NULL vector" in w for w in facts.warnings)
    assert facts.target.operator == "<->"


def test_recall_of_your_own_index_is_measured_without_writing(db, own):
    def writes():
        # Every row version's xmin: any insert, update or delete changes this. (The
        # statistics views lag by up to a second, so they cannot prove "no writes".)
        return db.fetchone(
            "SELECT count(*),"
            " md5(string_agg(doc_id::text || ':' || xmin::text, ',' ORDER BY doc_id))"
            " FROM mine.docs"
        )

    before = writes()
    facts = vc.check_column(db, own["mine.docs.emb"])
    queries = vc.sample_queries(db, own["mine.docs.emb"], 50)
    assert queries.shape == (50, 16)
    report = measure(db, facts.target, queries, knobs={"hnsw.ef_search": 1000})
    assert report.index == "docs_hnsw" and report.exact_proved
    assert report.recall["mean"] == 1.0
    assert report.index_settings["transaction_read_only"] == "on"
    assert writes() == before


def test_find_column_names_the_choices_when_ambiguous(db, own):
    assert vc.find_column(db, "mine.docs").column == "emb"
    with pytest.raises(vc.ColumnProblem, match="no readable vector column"):
        vc.find_column(db, "mine.nothing")


def test_a_search_path_cannot_send_your_tables_queries_to_another_table(pg_url):
    """public.shadowed is the learner's; decoy.shadowed has the same name, the same vectors
    and other ids, and decoy comes first in the search_path of every connection."""
    from psycopg.conninfo import make_conninfo

    from lib.core.database import Database
    from lib.harness import recall

    rng = np.random.default_rng(11)
    x = rng.standard_normal((200, 8)).astype(np.float32)
    url = make_conninfo(pg_url, options="-c search_path=decoy,public")
    db = Database(url, kind="url", location="decoy first", max_size=2)
    try:
        with db.transaction() as conn:
            conn.execute("CREATE SCHEMA IF NOT EXISTS decoy")
            schemas = conn.execute("SELECT current_schemas(false)").fetchone()[0]
            assert schemas == ["pgvector_lab", "decoy", "public"]  # the lab's, then the URL's
            conn.execute("DROP TABLE IF EXISTS public.shadowed, decoy.shadowed")
            for schema, first in (("public", 0), ("decoy", 10_000)):
                conn.execute(f"CREATE TABLE {schema}.shadowed (id int PRIMARY KEY, e vector(8))")
                with conn.cursor().copy(f"COPY {schema}.shadowed (id, e) FROM STDIN") as cp:
                    for i, v in enumerate(x):
                        cp.write_row((first + i, "[" + ",".join(map(str, v)) + "]"))
            conn.execute("CREATE INDEX ON public.shadowed USING hnsw (e vector_l2_ops)")
            conn.execute("CREATE INDEX ON decoy.shadowed USING hnsw (e vector_l2_ops)")
        col = vc.find_column(db, "public.shadowed")
        facts = vc.check_column(db, col)
        queries = vc.sample_queries(db, col, 5)
        truth = recall.ground_truth(db, facts.target, queries, 10)
        got = recall.run_queries(db, facts.target, queries, 10, recall.index_settings())
        ids = {int(i) for row in [*truth.ids, *got.ids] for i in row}
        assert ids and max(ids) < 10_000  # every answer from public.shadowed
        shown = recall.answer_script(db, facts.target, queries[0], recall.index_settings())
        assert "FROM public.shadowed" in shown.text()
    finally:
        with db.transaction() as conn:
            conn.execute("DROP SCHEMA IF EXISTS decoy CASCADE")
            conn.execute("DROP TABLE IF EXISTS public.shadowed")
        db.close()


# ---- as a job in the one queue (own_jobs.py), and the page that shows its stored result -------


def _worker_run(db, job):
    from lib.core import jobs as queue
    from lib.lessons.recall import own_jobs

    worker = queue.Worker(db, lanes=(job.lane,))
    try:
        return own_jobs.wait(db, job, timeout=300)
    finally:
        worker.stop()


@pytest.fixture(scope="module")
def measured(db, own):
    """mine.docs.emb measured by a job at ef_search=10 (the page's key for that setting)."""
    from lib.lessons.recall import own_jobs

    col = own["mine.docs.emb"]
    job = own_jobs.request(db, col, own_jobs.knobs_of(col, ef_search=10))
    assert job.lane == "small"  # 600 rows, as the server counted them at CREATE INDEX
    done = _worker_run(db, job)
    assert done.state == "done", done.error
    return done


def test_the_job_records_what_the_harness_measures_directly(db, own, measured):
    col = own["mine.docs.emb"]
    facts = vc.check_column(db, col)
    queries = vc.sample_queries(db, col, 100)
    direct = measure(db, facts.target, queries, knobs={"hnsw.ef_search": 10}, rows=facts.rows)
    stored = measured.recall_report()
    assert stored is not None
    for field in ("table", "rows", "queries", "index", "per_query_recall", "recall",
                  "queries_missing", "rows_returned", "exact_plan", "exact_proved"):  # fmt: skip
        assert getattr(stored, field) == getattr(direct, field), field
    assert stored.index == "docs_hnsw" and stored.queries == 100 and stored.rows == 594
    assert stored.exact_settings["statement_timeout"] == "10000ms"  # the job's lower timeout
    assert stored.index_settings["hnsw.ef_search"] == 10
    script = measured.script()  # the SQL the page shows, rebuilt without running it
    assert "FROM mine.docs" in script.text() and "SET LOCAL hnsw.ef_search = 10;" in script.text()
    assert any("NULL vector" in w for w in measured.warnings)


def test_two_requests_of_one_key_make_one_job(db, own):
    """While the lane is held (as a worker running a long job holds it), everyone asking for
    the same table, column and setting joins one queued job; another setting is another job."""
    import psycopg

    from lib.core import jobs as queue
    from lib.lessons.recall import own_jobs

    col = own["mine.docs.emb"]
    with psycopg.connect(db.conninfo, autocommit=True) as lane:
        lane.execute("SELECT pg_advisory_lock(hashtext('lab_jobs_lane_small'))")
        first = own_jobs.request(db, col, {"hnsw.ef_search": 77})
        second = own_jobs.request(db, col, {"hnsw.ef_search": 77})
        other = own_jobs.request(db, col, {"hnsw.ef_search": 78})
        try:
            assert first.id == second.id and other.id != first.id
            assert (
                len(queue.find(db, own_jobs.KIND, own_jobs.key_of(col, {"hnsw.ef_search": 77})))
                == 1
            )
        finally:
            for job in (first, other):
                assert queue.cancel(db, job.id).state == "cancelled"


@pytest.fixture(scope="module")
def slow(db):
    """A table whose exact scan takes longer than 1 ms: 20,000 rows of 256 dimensions."""
    with db.transaction() as conn:
        conn.execute("DROP TABLE IF EXISTS mine.slow")
        conn.execute("CREATE TABLE mine.slow (id int PRIMARY KEY, emb vector(256))")
        conn.execute(
            "INSERT INTO mine.slow SELECT i, array_agg(random()::real ORDER BY j)::vector(256)"
            " FROM generate_series(1, 20000) i, generate_series(1, 256) j GROUP BY i"
        )
        conn.execute(
            "CREATE INDEX slow_ivf ON mine.slow USING ivfflat (emb vector_l2_ops) WITH (lists = 1)"
        )
    return next(c for c in vc.vector_columns(db) if c.qualified == "mine.slow")


@pytest.fixture(scope="module")
def timed_out(db, slow):
    """A job on mine.slow whose exact scans may take 1 ms each (the worker reads the limit
    when it runs)."""
    from lib.lessons.recall import own_jobs

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(own_jobs, "EXACT_TIMEOUT_MS", 1)
        return _worker_run(db, own_jobs.request(db, slow, own_jobs.knobs_of(slow)))


def test_an_exact_scan_past_the_timeout_fails_the_job_with_a_clear_message(timed_out):
    assert timed_out.state == "failed"
    assert timed_out.error.startswith(
        "An exact scan of mine.slow.emb (vector(256)) ran past statement_timeout (0.001 s) "
        "and was cancelled"
    )
    assert timed_out.recall_report() is None


def test_the_page_shows_the_stored_result_without_scanning_the_table(
    pg_url, monkeypatch, db, own, measured, slow, timed_out
):
    """The page reads the job's result while another session holds an ACCESS EXCLUSIVE lock
    on mine.docs: a scan of it would wait. A failed job's message shows as plain text."""
    from datetime import UTC

    import psycopg
    from apptest_util import app_at

    from lib.core import jobs as queue
    from lib.lessons.recall import own_jobs
    from lib.ui import room

    monkeypatch.setenv(room.TOKEN_ENV, "a-test-token")  # an attendee: no size is built here
    at = app_at("pages/3_Recall_at_scale.py", pg_url, monkeypatch)
    at.run()
    at.slider(key="recall_ef_search").set_value(10).run()
    col, stored = own["mine.docs.emb"], measured.recall_report()
    key = own_jobs.key_of(col, {"hnsw.ef_search": 10})
    before = len(queue.find(db, own_jobs.KIND, key))
    with psycopg.connect(db.conninfo) as locker:
        locker.execute("LOCK TABLE mine.docs IN ACCESS EXCLUSIVE MODE")
        at.selectbox(key="recall_own_column").set_value(col.label).run()
        assert not at.exception, [e.value for e in at.exception]
        (metric,) = [m for m in at.metric if m.label.startswith("recall@10 of")]
        assert metric.value == f"{stored.recall['mean']:.3f}"
        assert "ef_search=10" in metric.label
        shown = measured.finished_at.astimezone(UTC).strftime("%Y-%m-%d")
        assert any(f"Measured {shown}" in c.value for c in at.caption)
        assert any("FROM mine.docs" in c.value for c in at.code)
        assert [b.label for b in at.button if b.key == "recall_own_measure"] == ["Measure again"]
        locker.rollback()
    assert len(queue.find(db, own_jobs.KIND, key)) == before  # nothing ran again

    at.selectbox(key="recall_own_column").set_value(slow.label).run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("ran past statement\\_timeout" in e.value for e in at.error)
