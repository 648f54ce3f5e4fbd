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
            assert schemas == ["decoy", "public"]
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
