"""Hybrid search on a real PostgreSQL: the lexical rankers and the fusions as systems of the
evals harness, each pasted into psql, BM25 two ways against each other and against Python,
RRF against RRF computed in Python from the two sides' lists, every statement read-only,
and the command line.

The table is small (2,000 rows) and the labels are made from its own rows
(tests/test_evals.py's `made_labels`)."""

from __future__ import annotations

import json
import math
from collections import Counter

import numpy as np
import psycopg
import pytest
from psql_util import assert_same_results
from test_evals import made_labels, write_labels

from lib import evals as cli
from lib.core.embeddings.cache import EmbeddingCache
from lib.core.psql import Statement, run
from lib.dataset import bm25_tables, builds, text_tables
from lib.dataset.passages import load_dataset
from lib.dataset.recall_tables import table_status
from lib.harness import evals, hybrid, lexical, rerank
from lib.harness.recall import HarnessError, generated_target

pytestmark = pytest.mark.db

N = 2000
PER_KIND = 30
REL = 1e-5  # how close BM25 as sparsevec (float4 weights) comes to BM25 in SQL (float8)


@pytest.fixture(scope="module")
def ds():
    return load_dataset()


@pytest.fixture(scope="module")
def status(db, ds):
    builds.prepare(db, ds, N)
    return table_status(db, ds, N)


@pytest.fixture(scope="module")
def text(db, ds, status):
    return text_tables.build(db, ds, N)[0]


@pytest.fixture(scope="module")
def bm25(db, text):
    bm25_tables.drop(db, text.name)
    built, now = bm25_tables.build(db, text.name, text.loaded_at)
    assert now
    return built


@pytest.fixture(scope="module")
def labels(ds):
    return made_labels(ds, N, PER_KIND)


@pytest.fixture(scope="module")
def vectors(labels, minilm, tmp_path_factory):
    cache = EmbeddingCache(tmp_path_factory.mktemp("hybrid") / "embeddings.sqlite")
    vecs = evals.query_vectors(minilm, [q.text for q in labels.queries], cache)
    return {q.id: v for q, v in zip(labels.queries, vecs, strict=True)}


@pytest.fixture(scope="module")
def source(text):
    return lexical.lab_text_source(text.name)


def ranker(kind, source, bm25, **knobs) -> lexical.Ranker:
    return lexical.Ranker(kind, source, bm25 if kind.startswith("bm25") else None, **knobs)


@pytest.fixture(scope="module")
def systems(status, source, bm25):
    target = generated_target(status.table)
    index = status.index.name
    return [
        evals.fts_system(source),
        *(hybrid.lexical_system(ranker(k, source, bm25)) for k in lexical.KINDS[1:]),
        hybrid.lexical_system(ranker("bm25", source, bm25, k1=0.9, b=0.4)),
        hybrid.fusion_system(target, index, ranker("bm25", source, bm25)),
        hybrid.fusion_system(target, index, ranker("fts", source, bm25), hybrid.Fusion(k=50)),
        hybrid.fusion_system(
            target, index, ranker("fts_or", source, bm25),
            hybrid.Fusion("convex", vector_weight=0.7, text_weight=0.3, text_depth=40),
        ),
    ]  # fmt: skip


@pytest.fixture(scope="module")
def evaluation(db, ds, systems, labels, vectors):
    return evals.evaluate(
        db, systems, labels, vectors=vectors, doc_id=evals.lab_doc_ids(ds), resamples=1000
    )


def query_of(system, q, vectors):
    if system.input == evals.HYBRID:
        return vectors[q.id], q.text
    return vectors[q.id] if system.input == evals.VECTOR else q.text


# ---- BM25's tables --------------------------------------------------------------------------


def test_bm25_tables_hold_each_lexemes_document_frequency_and_the_mean_length(db, text, bm25):
    rows = tsvectors(db, text.name)
    df = Counter(lex for tv in rows.values() for lex in tv)
    lengths = [sum(tv.values()) for tv in rows.values()]
    assert bm25.docs == N and bm25.terms == len(df)
    assert math.isclose(bm25.avgdl, sum(lengths) / N, rel_tol=1e-12)
    stored = dict(db.fetchall(f"SELECT lexeme, df FROM {bm25.terms_table}"))
    assert stored == dict(df)
    idx = [r[0] for r in db.fetchall(f"SELECT idx FROM {bm25.terms_table} ORDER BY lexeme")]
    assert idx == list(range(1, len(df) + 1))
    assert bm25_tables.status(db, text.name) == bm25
    assert bm25_tables.build(db, text.name, text.loaded_at) == (bm25, False)


def tsvectors(db, table) -> dict[int, dict[str, int]]:
    """Each row's {lexeme: tf}, tf the number of positions its tsvector holds."""
    out: dict[int, dict[str, int]] = {}
    rows = db.fetchall(f"SELECT id, lexeme, cardinality(positions) FROM {table}, unnest(body_tsv)")
    for i, lexeme, tf in rows:
        out.setdefault(i, {})[lexeme] = tf
    return out


def python_bm25(db, text, bm25, query: str, k1: float, b: float) -> dict[int, float]:
    """BM25 of every row holding a query lexeme, computed here from the tsvectors."""
    lexemes = db.fetchone("SELECT tsvector_to_array(to_tsvector('english', %s))", (query,))[0]
    rows = tsvectors(db, text.name)
    df = Counter(lex for tv in rows.values() for lex in tv)
    avgdl = sum(sum(tv.values()) for tv in rows.values()) / N
    scores = {}
    for i, tv in rows.items():
        dl = sum(tv.values())
        s = 0.0
        for t in set(lexemes) & tv.keys():
            idf = math.log(1 + (N - df[t] + 0.5) / (df[t] + 0.5))
            s += idf * tv[t] * (k1 + 1) / (tv[t] + k1 * (1 - b + b * dl / avgdl))
        if s:
            scores[i] = s
    return scores


def test_bm25_in_sql_is_bm25_computed_in_python(db, text, bm25, source, labels):
    for k1, b in ((1.2, 0.75), (0.9, 0.4)):
        system = hybrid.lexical_system(ranker("bm25", source, bm25, k1=k1, b=b), depth=N)
        for q in labels.queries[:4] + labels.queries[-4:]:
            got = {r[0]: r[1] for r in system.script(db, q.text).rows}
            want = python_bm25(db, text, bm25, q.text, k1, b)
            assert got.keys() == want.keys(), q.text
            for i, s in got.items():
                assert math.isclose(s, want[i], rel_tol=1e-9), (q.text, i)


def test_bm25_in_sql_and_as_sparsevec_rank_the_same(db, bm25, source, labels):
    sql_side = hybrid.lexical_system(ranker("bm25", source, bm25), depth=N)
    sparse = hybrid.lexical_system(ranker("bm25_sparse", source, bm25), depth=N)
    compared = 0
    for q in labels.queries:
        a = sql_side.script(db, q.text).rows
        c = sparse.script(db, q.text).rows
        assert {r[0] for r in a} == {r[0] for r in c}, q.text
        by_id = {r[0]: r[1] for r in c}
        for i, s in a:
            assert math.isclose(by_id[i], s, rel_tol=REL), (q.text, i, s, by_id[i])
        # Same order, but for rows whose two scores are within the tolerance of each other.
        exact = dict(a)
        for (i, s), (j, _) in zip(a, c, strict=True):
            assert i == j or math.isclose(s, exact[j], rel_tol=2 * REL), (q.text, i, j)
        compared += len(a)
    assert compared > 1000


def test_bm25_sparse_refuses_knobs_its_weights_were_not_built_with(source, bm25):
    with pytest.raises(ValueError, match="stored weights"):
        ranker("bm25_sparse", source, bm25, k1=2.0)


# ---- every system ---------------------------------------------------------------------------


def test_each_rankers_and_fusions_sql_pasted_into_psql_gives_the_rows_the_runner_got(
    db, pg_url, systems, labels, vectors, evaluation
):
    for system in systems:
        assert "SET LOCAL transaction_read_only = on;" in system.sql_text()
        got = evaluation.run_of(system.name)
        for q in labels.queries[:2] + labels.queries[-2:]:
            script = system.script(db, query_of(system, q, vectors))
            assert_same_results(script, pg_url)
            assert [r[0] for r in script.rows] == got.keys[q.id], (system.name, q.id)


def test_every_statement_is_read_only(db, systems, text):
    for system in systems:
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            run(db, [Statement.of(f"DELETE FROM {text.name} WHERE id = 1")], system.settings)


def test_the_query_text_is_only_ever_a_parameter(db, pg_url, systems, vectors, labels):
    nasty = "x'); DROP TABLE t; -- | & ! <-> :* \\ ''"
    vector = vectors[labels.queries[0].id]
    for system in systems:
        assert nasty not in system.sql
        query = (vector, nasty) if system.input == evals.HYBRID else nasty
        assert_same_results(system.script(db, query), pg_url)


def test_the_fused_plan_reads_the_hnsw_index_and_the_gin_index(evaluation, status, text):
    for name in ("hybrid", "hybrid:rrf:50:text=fts"):
        run_ = evaluation.run_of(name)
        assert status.index.name in evals.indexes_used(run_.plan)
        assert text.index in evals.indexes_used(run_.plan)


# ---- fusion ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["bm25", "fts"])
def test_rrf_in_sql_is_rrf_computed_in_python_from_the_two_sides_lists(
    db, status, source, bm25, labels, vectors, kind
):
    target = generated_target(status.table)
    fusion = hybrid.Fusion(k=50, vector_weight=1.0, text_weight=2.0, vector_depth=30,
                           text_depth=20)  # fmt: skip
    side = ranker(kind, source, bm25)
    fused = hybrid.fusion_system(target, status.index.name, side, fusion, depth=40)
    vector_side = evals.index_system("v", "v", target, status.index.name, 40, depth=30)
    text_side = (
        evals.fts_system(source, depth=20)
        if kind == "fts"
        else hybrid.lexical_system(side, depth=20)
    )
    both = 0
    for q in labels.queries:
        v = vector_side.script(db, vectors[q.id]).rows
        t = text_side.script(db, q.text).rows
        vector_ids = [i for i, _ in sorted(v, key=lambda r: (r[1], r[0]))]
        text_ids = [i for i, _ in sorted(t, key=lambda r: (-r[1], r[0]))]
        want = hybrid.rrf(vector_ids, text_ids, fusion, depth=40)
        rows = fused.script(db, (vectors[q.id], q.text)).rows
        assert [r[0] for r in rows] == [i for i, _ in want], q.text
        for (i, s, vr, tr), (_, ws) in zip(rows, want, strict=True):
            assert math.isclose(s, ws, rel_tol=1e-12)
            assert vr == (vector_ids.index(i) + 1 if i in vector_ids else None)
            assert tr == (text_ids.index(i) + 1 if i in text_ids else None)
        both += sum(1 for r in rows if r[2] and r[3])
    assert both > 0  # some rows were found by both sides


def test_convex_fusion_is_min_max_normalised_scores_weighted(db, status, source, bm25, labels,
                                                            vectors):  # fmt: skip
    target = generated_target(status.table)
    fusion = hybrid.Fusion("convex", vector_weight=0.7, text_weight=0.3, vector_depth=30,
                           text_depth=20)  # fmt: skip
    side = ranker("bm25", source, bm25)
    fused = hybrid.fusion_system(target, status.index.name, side, fusion, depth=50)
    vector_side = evals.index_system("v", "v", target, status.index.name, 40, depth=30)
    text_side = hybrid.lexical_system(side, depth=20)
    for q in labels.queries[:10]:
        v = dict(vector_side.script(db, vectors[q.id]).rows)
        t = dict(text_side.script(db, q.text).rows)
        norm_v = {i: 1.0 if max(v.values()) == min(v.values()) else
                  (max(v.values()) - d) / (max(v.values()) - min(v.values()))
                  for i, d in v.items()}  # fmt: skip
        norm_t = {i: 1.0 if max(t.values()) == min(t.values()) else
                  (s - min(t.values())) / (max(t.values()) - min(t.values()))
                  for i, s in t.items()} if t else {}  # fmt: skip
        want = {i: 0.7 * norm_v.get(i, 0) + 0.3 * norm_t.get(i, 0) for i in v.keys() | t.keys()}
        rows = fused.script(db, (vectors[q.id], q.text)).rows
        assert {r[0] for r in rows} == set(want)
        for i, s, *_ in rows:
            assert math.isclose(s, want[i], rel_tol=1e-6, abs_tol=1e-6)


def test_hybrid_names_read_back_into_the_same_system():
    for text in ("hybrid", "hybrid:rrf:50", "hybrid:convex:text=fts_or:w=0.7/0.3",
                 "hybrid:rrf:60:bm25=0.9/0.4:depth=40/40", "hybrid:text=bm25_sparse"):  # fmt: skip
        spec = hybrid.parse_hybrid(text)
        assert hybrid.parse_hybrid(spec.name) == spec
    assert hybrid.parse_hybrid("hybrid:rrf:60").name == "hybrid"
    for bad in ("hybrid:rrf:x", "hybrid:foo=1", "hybrid:text=dense", "hybrid:w=1",
                "hybrid:depth=0/10", "hybrid:rrf:60:text=fts:text=fts"):  # fmt: skip
        with pytest.raises(ValueError):
            hybrid.parse_hybrid(bad)


def test_fusion_is_measured_beside_vectors_and_full_text(evaluation):
    report = evaluation.report()
    names = [s["name"] for s in report["systems"]]
    assert "hybrid" in names and "bm25" in names
    hybrid_run = evaluation.run_of("hybrid")
    assert max(len(k) for k in hybrid_run.keys.values()) <= 100
    fused = evaluation.scores["hybrid"].mean("ndcg@10")
    assert fused > 0


# ---- the command line -----------------------------------------------------------------------


def test_the_command_line_scores_hybrid_and_bm25_on_a_lab_size(
    pg_url, labels, bm25, tmp_path, monkeypatch
):
    monkeypatch.setenv("EMBEDDING_CACHE_PATH", str(tmp_path / "embeddings.sqlite"))
    queries, qrels = write_labels(labels, tmp_path)
    out = tmp_path / "r.json"
    code = cli.main([
        "--database-url", pg_url, "--size", str(N), "--queries", str(queries),
        "--qrels", str(qrels),
        "--systems", "hnsw:40,bm25,bm25:0.9:0.4,hybrid,hybrid:rrf:50,hybrid:rerank=5",
        "--out", str(out), "--resamples", "1000",
    ])  # fmt: skip
    assert code == 0
    report = json.loads(out.read_text())
    by_name = {s["name"]: s for s in report["systems"]}
    assert set(by_name) == {
        "hnsw:40", "bm25", "bm25:0.9:0.4", "hybrid", "hybrid:rrf:50", "hybrid:rerank=5"
    }  # fmt: skip
    assert by_name["hybrid:rerank=5"]["rerank"].startswith("MaxSim re-rank of the top 5")
    assert report["bm25_table"] == bm25.name
    assert "FULL OUTER JOIN keyword" in by_name["hybrid"]["sql"]
    assert by_name["hybrid:rrf:50"]["parameters"][3] == "k"
    for s in by_name.values():
        assert s["settings"]["transaction_read_only"] == "on"


def test_the_command_line_fuses_on_your_own_table_read_only(
    db, pg_url, status, text, labels, tmp_path, monkeypatch
):
    with db.transaction() as conn:
        conn.execute("DROP SCHEMA IF EXISTS hybrid_own CASCADE")
        conn.execute("CREATE SCHEMA hybrid_own")
        conn.execute(
            "CREATE TABLE hybrid_own.docs (doc text PRIMARY KEY, body text NOT NULL,"
            " embedding vector(384) NOT NULL)"
        )
        conn.execute(
            "INSERT INTO hybrid_own.docs SELECT DISTINCT ON (t.chunk_id) t.chunk_id, t.body,"
            f" r.embedding FROM {status.table} r JOIN {text.name} t USING (id)"
            " ORDER BY t.chunk_id, t.id"
        )
        conn.execute("CREATE INDEX ON hybrid_own.docs USING hnsw (embedding vector_cosine_ops)")
    monkeypatch.setenv("EMBEDDING_CACHE_PATH", str(tmp_path / "embeddings.sqlite"))
    queries, qrels = write_labels(labels, tmp_path)
    out = tmp_path / "own.json"
    common = [
        "--database-url", pg_url, "--table", "hybrid_own.docs", "--id-column", "doc",
        "--text-column", "body", "--queries", str(queries), "--qrels", str(qrels),
        "--resamples", "1000",
    ]  # fmt: skip
    code = cli.main(common + ["--systems", "fts_or,hybrid:text=fts_or", "--out", str(out)])
    assert code == 0
    report = json.loads(out.read_text())
    fused = next(s for s in report["systems"] if s["name"] == "hybrid:text=fts_or")
    assert "to_tsvector('english', body) @@ query" in fused["sql"]
    assert "SELECT doc AS id" in fused["sql"]
    assert fused["metrics"]["ndcg@10"]["mean"] > 0
    assert cli.main(common + ["--systems", "bm25"]) == 1


def test_system_names_with_lexical_and_hybrid_kinds_are_parsed_and_checked():
    names = [s.name for s in cli.parse_systems(["bm25,bm25:0.9:0.4,fts_or,bm25_sparse",
                                                "hybrid:rrf:50,hybrid:convex"])]  # fmt: skip
    assert names == ["bm25", "bm25:0.9:0.4", "fts_or", "bm25_sparse", "hybrid:rrf:50",
                     "hybrid:convex"]  # fmt: skip
    for bad in ("bm25:1", "bm25:1:2", "fts_or:3", "hybrid,hybrid:rrf:60", "hybrid:x"):
        with pytest.raises(ValueError):
            cli.parse_systems([bad])


def test_a_hybrid_without_a_key_is_refused(status, source, bm25):
    target = generated_target(status.table)
    with pytest.raises(HarnessError):
        hybrid.fusion_system(
            target.filtered("id", 1), status.index.name, ranker("fts", source, bm25)
        )
    assert np.isfinite(bm25.avgdl)


# ---- re-ranking -----------------------------------------------------------------------------


def test_maxsim_sums_each_query_tokens_best_cosine():
    q = np.array([[1, 0], [0, 1]], np.float32)
    p = np.array([[1, 0], [0.6, 0.8]], np.float32)
    assert rerank.maxsim(q, p) == pytest.approx(1 + 0.8)


def test_maxsim_re_ranks_the_fused_top_rows_by_minilm_token_vectors(
    db, ds, status, source, bm25, labels, vectors, minilm
):
    def texts(keys):
        return [ds.passage_of(int(k)).text for k in keys]

    target = generated_target(status.table)
    side = ranker("bm25", source, bm25)
    plain = hybrid.fusion_system(target, status.index.name, side)
    reranked = hybrid.fusion_system(
        target, status.index.name, side, rerank=rerank.MaxSim(minilm, texts, 10)
    )
    assert reranked.name == "hybrid:rerank=10" and reranked.sql == plain.sql
    queries = [(q.id, (vectors[q.id], q.text)) for q in labels.queries[:5]]
    before = evals.run_system(db, plain, queries)
    after = evals.run_system(db, reranked, queries)
    for q in labels.queries[:5]:
        top = before.keys[q.id][:10]
        assert sorted(after.keys[q.id][:10]) == sorted(top)
        assert after.keys[q.id][10:] == before.keys[q.id][10:]
        tokens = minilm.token_vectors([q.text, *texts(top)])
        want = sorted(
            ((rerank.maxsim(tokens[0], t), k) for t, k in zip(tokens[1:], top, strict=True)),
            key=lambda x: -x[0],
        )
        assert after.keys[q.id][:10] == [k for _, k in want]
        assert after.latencies_ms[q.id] > before.latencies_ms[q.id]
