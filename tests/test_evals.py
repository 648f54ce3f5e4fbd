"""The evals harness on a real PostgreSQL: the text side of a recall table, the systems (each
pasted into psql), the runner against lib/harness/scores.py, and the gate's exit codes.

The tables are small (2,000 rows) and the labels are made here from the rows they hold, so
no test needs a large prepared size: `passage` queries are a passage's opening words (its
passage of relevance 2, the other rows of its page 1), `heading` queries are its section's
heading (its passage 2, the other rows of its section 1)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import psycopg
import pytest
from psql_util import assert_same_results

from lib import evals as cli
from lib.core import jobs as queue
from lib.core.embeddings.cache import EmbeddingCache
from lib.core.psql import Statement, run
from lib.core.queries import text_vector
from lib.dataset import builds, text_tables
from lib.dataset.passages import load_dataset
from lib.dataset.recall_tables import table_status
from lib.harness import evals, scores, text_jobs
from lib.harness.labels import Labels, Query, content_words
from lib.harness.recall import HarnessError, generated_target

pytestmark = pytest.mark.db

N = 2000
PER_KIND = 40


@pytest.fixture(scope="module")
def ds():
    return load_dataset()


@pytest.fixture(scope="module")
def status(db, ds):
    builds.prepare(db, ds, N)
    return table_status(db, ds, N)


@pytest.fixture(scope="module")
def text_job(db, ds, status):
    """Size N's text table, built by its job in the queue."""
    text_tables.drop(db, N)
    job = text_jobs.request(db, N)
    worker = queue.Worker(db, ds, lanes=(job.lane,))
    try:
        done = text_jobs.wait(db, job, timeout=300)
    finally:
        worker.stop()
    assert done.state == "done", done.error
    return done


@pytest.fixture(scope="module")
def text(db, ds, text_job):
    found = text_tables.text_status(db, ds, N)
    assert found is not None
    return found


def made_labels(ds, n: int = N, per_kind: int = PER_KIND) -> Labels:
    """Queries made from the rows of the size-n table (see the module docstring)."""
    rows = [ds.passage_of(r) for r in range(1, ds.real_rows(n) + 1)]
    by_doc: dict[tuple, list[str]] = {}
    by_section: dict[tuple, list[str]] = {}
    for p in rows:
        by_doc.setdefault((p.source, p.doc), []).append(p.id)
        by_section.setdefault((p.source, p.doc, p.section), []).append(p.id)
    queries, qrels = [], {}
    seen_sections = set()
    heading = passage = 0
    for p in rows:
        words = p.text.split()
        if passage < per_kind and len(words) >= 12:
            qid = f"passage-{p.id}"
            queries.append(Query(qid, "passage", "test", p.source, " ".join(words[:10])))
            qrels[qid] = {d: 1 for d in by_doc[p.source, p.doc]} | {p.id: 2}
            passage += 1
        key = (p.source, p.doc, p.section)
        if heading < per_kind and key not in seen_sections and len(content_words(p.section)) >= 2:
            seen_sections.add(key)
            qid = f"heading-{p.id}"
            queries.append(Query(qid, "heading", "test", p.source, p.section.strip()))
            qrels[qid] = {d: 1 for d in by_section[key]} | {p.id: 2}
            heading += 1
    return Labels(tuple(queries), qrels)


@pytest.fixture(scope="module")
def labels(ds):
    return made_labels(ds)


@pytest.fixture(scope="module")
def vectors(labels, minilm, tmp_path_factory):
    cache = EmbeddingCache(tmp_path_factory.mktemp("evals") / "embeddings.sqlite")
    vecs = evals.query_vectors(minilm, [q.text for q in labels.queries], cache)
    return {q.id: v for q, v in zip(labels.queries, vecs, strict=True)}


@pytest.fixture(scope="module")
def systems(status, text):
    target = generated_target(status.table)
    return [
        evals.exact_system(target),
        evals.index_system("hnsw:40", "HNSW ef_search=40", target, status.index.name, 40),
        evals.index_system("hnsw:1", "HNSW ef_search=1", target, status.index.name, 1),
        evals.fts_system(evals.lab_text_source(text.name)),
    ]


@pytest.fixture(scope="module")
def evaluation(db, ds, systems, labels, vectors):
    return evals.evaluate(
        db, systems, labels, vectors=vectors, doc_id=evals.lab_doc_ids(ds), resamples=2000
    )


# ---- the text side ---------------------------------------------------------------------


def test_text_table_job_builds_a_generated_tsvector_with_a_gin_index_and_records_its_cost(
    db, ds, text_job, text
):
    assert text_job.built and text_job.rows == N
    assert text_job.load_seconds > 0 and text_job.index_seconds > 0
    assert text_job.table_bytes > 0 and text_job.index_bytes > 0
    assert text.rows == N and text.index_seconds == text_job.index_seconds
    assert text.table_bytes > 0 and text.index_bytes > 0
    generated = db.fetchone(
        "SELECT attgenerated, pg_get_expr(d.adbin, d.adrelid) FROM pg_attribute a"
        " JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum"
        " WHERE a.attrelid = to_regclass(%s) AND a.attname = 'body_tsv'",
        (text.name,),
    )
    assert generated == ("s", "to_tsvector('english'::regconfig, body)")
    index = db.fetchone(
        "SELECT am.amname, x.indisvalid, pg_get_indexdef(x.indexrelid) FROM pg_index x"
        " JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_am am ON am.oid = i.relam"
        " WHERE i.relname = %s",
        (text.index,),
    )
    assert index[:2] == ("gin", True) and "(body_tsv)" in index[2]
    rows = db.fetchall(f"SELECT id, chunk_id, body FROM {text.name} ORDER BY id")
    assert [r[0] for r in rows] == list(range(1, N + 1))
    assert [r[1] for r in rows] == text_tables.row_chunk_ids(ds, N)
    for row_id in (1, N // 2, N):
        assert rows[row_id - 1][2] == ds.passage_of(row_id).text


def test_a_text_table_is_built_once_and_its_job_says_so(db, ds, text):
    again = text_jobs.request(db, N)
    worker = queue.Worker(db, ds, lanes=(again.lane,))
    try:
        again = text_jobs.wait(db, again, timeout=120)
    finally:
        worker.stop()
    assert again.state == "done" and not again.built
    assert text_tables.text_status(db, ds, N).loaded_at == text.loaded_at
    assert text_tables.build(db, ds, N)[1] is False


def test_row_ids_map_to_the_chunk_ids_the_text_table_holds(db, ds, text):
    doc_id = evals.lab_doc_ids(ds)
    rows = db.fetchall(f"SELECT id, chunk_id FROM {text.name}")
    assert all(doc_id(i) == c for i, c in rows)
    assert doc_id(ds.n_real + 1) == f"generated-{ds.n_real + 1}"


# ---- systems ------------------------------------------------------------------------------


def test_each_systems_sql_pasted_into_psql_gives_the_rows_the_runner_got(
    db, pg_url, systems, labels, vectors, evaluation
):
    for system in systems:
        text = system.sql_text()
        assert "SET LOCAL transaction_read_only = on;" in text
        for q in labels.queries[:3] + labels.queries[-2:]:
            query = vectors[q.id] if system.input == evals.VECTOR else q.text
            script = system.script(db, query)
            assert script.text().startswith("BEGIN;\nSET LOCAL ")
            assert_same_results(script, pg_url)
            got = evaluation.run_of(system.name)
            assert [r[0] for r in script.rows] == got.keys[q.id], (system.name, q.id)


def test_the_systems_sql_is_what_the_lesson_says(systems, text, status):
    exact, hnsw, _, fts = systems
    assert exact.settings["enable_indexscan"] == "off" and exact.expect == evals.EXACT
    assert "ORDER BY embedding <=> $1\nLIMIT $2" in exact.sql
    assert hnsw.settings["hnsw.ef_search"] == 40 and hnsw.expect == status.index.name
    assert fts.sql == (
        "SELECT id, ts_rank_cd(body_tsv, query) AS rank\n"
        f"FROM {text.name}, websearch_to_tsquery('english', $1) AS query\n"
        "WHERE body_tsv @@ query\n"
        "ORDER BY rank DESC, id\n"
        "LIMIT $2"
    )


def test_plans_are_checked_exact_proved_index_named(db, systems, evaluation, status):
    exact = evaluation.run_of("exact")
    assert "Seq Scan" in exact.plan_nodes and not any("Index" in n for n in exact.plan_nodes)
    assert evaluation.run_of("hnsw:40").index_used == status.index.name
    q = next(iter(evaluation.run_of("exact").keys))
    vector = np.zeros(384, np.float32)
    vector[0] = 1
    lying = evals.System(**{**systems[0].__dict__, "expect": status.index.name})
    with pytest.raises(HarnessError, match="reads no index"):
        evals.run_system(db, lying, [(q, vector)])
    unproved = evals.System(**{**systems[1].__dict__, "expect": evals.EXACT})
    with pytest.raises(HarnessError, match="not an exact scan"):
        evals.run_system(db, unproved, [(q, vector)])


def test_every_system_runs_read_only(db, systems, status):
    for system in systems:
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            run(db, [Statement.of(f"DELETE FROM {status.table} WHERE id = 1")], system.settings)
    assert db.fetchone(f"SELECT count(*) FROM {status.table}")[0] == N


# ---- the runner ---------------------------------------------------------------------------


def test_query_vectors_are_the_models_embedded_once_and_cached(minilm, tmp_path):
    calls = []

    class Counting:
        info = minilm.info

        def embed(self, inputs, *, input_type="document"):
            calls.append((list(inputs), input_type))
            return minilm.embed(inputs, input_type=input_type)

    cache = EmbeddingCache(tmp_path / "e.sqlite")
    texts = ["what is a tablespace", "git rebase --onto", "what is a tablespace"]
    first = evals.query_vectors(Counting(), texts, cache)
    again = evals.query_vectors(Counting(), texts, cache)
    assert calls == [(["what is a tablespace", "git rebase --onto"], "query")]
    assert np.array_equal(first, again) and np.array_equal(first[0], first[2])
    assert np.allclose(first[1], text_vector(minilm, texts[1]), atol=1e-6)


def test_the_runners_metrics_are_scores_py_on_the_same_run(evaluation, labels):
    assert len(evaluation.labels.queries) == 2 * PER_KIND
    for r in evaluation.runs:
        own = scores.score(r.docs, labels.qrels)
        got = evaluation.scores[r.system.name]
        assert own.query_ids == got.query_ids
        for m in scores.METRICS:
            assert np.array_equal(own.values[m], got.values[m])
        report = evaluation.system_report(r)
        for m in scores.METRICS:
            iv = scores.bootstrap_interval(own.values[m], resamples=2000)
            assert report["metrics"][m] == {"mean": iv.mean, "low": iv.low, "high": iv.high}
        for kind, part in scores.by_kind(own, evaluation.kinds()).items():
            assert report["kinds"][kind]["queries"] == len(part.query_ids) == PER_KIND
            assert report["kinds"][kind]["ndcg@10"]["mean"] == part.mean("ndcg@10")
        for q, per in report["per_query"].items():
            assert per["top"] == r.docs[q][:10] and per["rows"] == len(r.keys[q])
            assert per["ndcg@10"] == scores.query_scores(r.docs[q], labels.qrels[q])["ndcg@10"]
    pairs = {(c["a"], c["b"], c["kind"]): c for c in evaluation.comparisons()}
    c = scores.compare(evaluation.scores["exact"], evaluation.scores["fts"], resamples=2000)
    assert pairs["exact", "fts", "all"]["difference"] == c.difference
    assert pairs["exact", "fts", "all"]["p_value"] == c.p_value
    assert ("exact", "fts", "heading") in pairs and len(pairs) == 6 * 3


def test_full_text_finds_little_for_headings_and_the_vectors_more(evaluation):
    kinds = evaluation.kinds()
    fts = scores.by_kind(evaluation.scores["fts"], kinds)["heading"].mean("ndcg@10")
    exact = scores.by_kind(evaluation.scores["exact"], kinds)["heading"].mean("ndcg@10")
    assert exact > fts
    assert max(len(k) for k in evaluation.run_of("hnsw:1").keys.values()) == 1
    assert max(len(k) for k in evaluation.run_of("hnsw:40").keys.values()) <= 40


# ---- the command line ---------------------------------------------------------------------


def write_labels(labels: Labels, directory: Path, *, jsonl_vectors=None) -> tuple[Path, Path]:
    """The labels as a queries file (TSV, or JSONL with vectors) and a TREC qrels file."""
    qrels = directory / "qrels.txt"
    qrels.write_text(
        "".join(
            f"{q.id} 0 {d} {r}\n" for q in labels.queries for d, r in labels.qrels[q.id].items()
        )
    )
    if jsonl_vectors is None:
        queries = directory / "queries.tsv"
        queries.write_text(
            "query_id\tkind\ttext\n"
            + "".join(f"{q.id}\t{q.kind}\t{q.text}\n" for q in labels.queries)
        )
    else:
        queries = directory / "queries.jsonl"
        queries.write_text("".join(
            json.dumps({"query_id": q.id, "text": q.text, "kind": q.kind,
                        "vector": [float(x) for x in jsonl_vectors[q.id]]}) + "\n"
            for q in labels.queries
        ))  # fmt: skip
    return queries, qrels


@pytest.fixture(scope="module")
def files(labels, tmp_path_factory):
    return write_labels(labels, tmp_path_factory.mktemp("labels"))


@pytest.fixture(scope="module")
def baseline(pg_url, files, text, tmp_path_factory):
    out = tmp_path_factory.mktemp("reports") / "baseline.json"
    queries, qrels = files
    code = cli.main([
        "--database-url", pg_url, "--size", str(N), "--queries", str(queries),
        "--qrels", str(qrels), "--systems", "exact", "--out", str(out), "--resamples", "2000",
    ])  # fmt: skip
    assert code == 0
    return out


def gate_run(pg_url, files, baseline, *more: str, out: Path | None = None) -> tuple[int, dict]:
    queries, qrels = files
    args = [
        "--database-url", pg_url, "--size", str(N), "--queries", str(queries),
        "--qrels", str(qrels), "--baseline", str(baseline), "--resamples", "2000", *more,
    ]  # fmt: skip
    code = cli.main(args + ["--out", str(out)]) if out else cli.main(args)
    return code, json.loads(out.read_text()) if out else {}


def test_the_gate_passes_the_same_system_run_again(pg_url, files, baseline, tmp_path, capsys):
    code, report = gate_run(pg_url, files, baseline, "--systems", "exact", out=tmp_path / "r.json")
    assert code == 0
    (verdict,) = report["gate"]["verdicts"]
    assert verdict["difference"] == 0 and verdict["p_value"] == 1 and not verdict["regressed"]
    assert "ok: exact ndcg@10" in capsys.readouterr().err


def test_the_gate_fails_a_real_drop_and_names_the_queries_that_lost(
    pg_url, files, baseline, tmp_path, capsys
):
    code, report = gate_run(
        pg_url, files, baseline, "--systems", "hnsw:1", "--baseline-system", "exact",
        out=tmp_path / "r.json",
    )  # fmt: skip
    (verdict,) = report["gate"]["verdicts"]
    assert verdict["difference"] < -0.05 and verdict["p_value"] < 0.05 and verdict["high"] < 0
    assert code == cli.REGRESSION_EXIT and verdict["regressed"]
    err = capsys.readouterr().err
    assert "REGRESSION: hnsw:1 ndcg@10" in err
    lost = verdict["losses"][0]
    assert lost["now"] < lost["baseline"] and f"  {lost['query_id']}: " in err


def test_the_report_round_trips_and_recomputes_from_what_it_holds(baseline, labels):
    report = json.loads(baseline.read_text())
    assert report["format"] == evals.REPORT_FORMAT and report["target"] == "lab"
    assert report["queries"] == 2 * PER_KIND and report["versions"]["pgvector (extension)"]
    (system,) = report["systems"]
    assert system["name"] == "exact" and system["exact_proved"] is True
    assert "SET LOCAL enable_indexscan = off;" in system["sql"]
    for q, per in system["per_query"].items():
        again = scores.query_scores(per["top"], labels.qrels[q])
        assert per["ndcg@10"] == again["ndcg@10"] and per["mrr@10"] == again["mrr@10"]
    (verdict,) = evals.gate(report, json.loads(json.dumps(report)), resamples=2000)
    assert verdict.difference == 0 and not verdict.regressed


def test_the_command_says_in_one_json_line_that_the_server_is_away(capsys):
    code = cli.main(["--database-url", "postgresql://127.0.0.1:1/none", "--size", str(N)])
    out = capsys.readouterr().out.strip().splitlines()
    assert code == 1 and len(out) == 1
    assert "How to fix" in json.loads(out[0])["error"]


def test_a_size_not_prepared_is_one_json_line_with_the_fix(pg_url, capsys):
    code = cli.main(["--database-url", pg_url, "--size", "777"])
    out = capsys.readouterr().out.strip().splitlines()
    assert code == 1 and len(out) == 1
    assert "make prepare" in json.loads(out[0])["error"]


def test_system_names_are_parsed_and_checked():
    names = [s.name for s in cli.parse_systems(["exact,hnsw:100", "fts", "binary:40:8", "hnsw"])]
    assert names == ["exact", "hnsw:100", "fts", "binary:40:8", "hnsw:40"]
    for bad in ("exact:3", "ivfflat:4", "hnsw:x", "hnsw:0", "hnsw:40,hnsw:40", ""):
        with pytest.raises(ValueError):
            cli.parse_systems([bad])


# ---- your own table -----------------------------------------------------------------------


OWN = "evals_own.docs"


@pytest.fixture(scope="module")
def own_table(db, status, text):
    """A table of your own: doc text key, body text, embedding, an HNSW index."""
    with db.transaction() as conn:
        conn.execute("DROP SCHEMA IF EXISTS evals_own CASCADE")
        conn.execute("CREATE SCHEMA evals_own")
        conn.execute(
            f"CREATE TABLE {OWN} (doc text PRIMARY KEY, body text NOT NULL,"
            " embedding vector(384) NOT NULL)"
        )
        conn.execute(
            f"INSERT INTO {OWN} SELECT DISTINCT ON (t.chunk_id) t.chunk_id, t.body, r.embedding"
            f" FROM {status.table} r JOIN {text.name} t USING (id) ORDER BY t.chunk_id, t.id"
        )
        conn.execute(
            f"CREATE INDEX docs_embedding_idx ON {OWN} USING hnsw (embedding vector_cosine_ops)"
        )
    return OWN


def table_digest(db) -> tuple:
    return db.fetchone(
        f"SELECT count(*), md5(string_agg(doc || body || embedding::text, ',' ORDER BY doc))"
        f" FROM {OWN}"
    )


def test_your_own_table_is_evaluated_read_only_with_full_text_beside_the_index(
    db, own_table, labels, vectors, tmp_path, monkeypatch
):
    monkeypatch.setenv("EMBEDDING_CACHE_PATH", str(tmp_path / "embeddings.sqlite"))
    queries, qrels = write_labels(labels, tmp_path)
    before = table_digest(db)
    out = tmp_path / "own.json"
    code = cli.main([
        "--database-url", db.conninfo, "--table", OWN, "--column", "embedding",
        "--id-column", "doc", "--text-column", "body", "--queries", str(queries),
        "--qrels", str(qrels), "--systems", "exact,hnsw:40,fts", "--out", str(out),
        "--resamples", "2000",
    ])  # fmt: skip
    assert code == 0
    report = json.loads(out.read_text())
    assert report["target"] == "own" and report["index"] == "docs_embedding_idx"
    assert report["queries"] == len(labels.queries)
    by_name = {s["name"]: s for s in report["systems"]}
    assert by_name["hnsw:40"]["index"] == "docs_embedding_idx"
    assert "to_tsvector('english', body) @@ query" in by_name["fts"]["sql"]
    assert by_name["exact"]["metrics"]["ndcg@10"]["mean"] > 0.3
    assert table_digest(db) == before
    for s in report["systems"]:
        assert s["settings"]["transaction_read_only"] == "on"
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            run(db, [Statement.of(f"UPDATE {OWN} SET body = 'x'")], s["settings"])
    assert table_digest(db) == before

    (tmp_path / "jsonl").mkdir()
    jsonl, _ = write_labels(labels, tmp_path / "jsonl", jsonl_vectors=vectors)
    again = tmp_path / "again.json"
    code = cli.main([
        "--database-url", db.conninfo, "--table", OWN, "--id-column", "doc",
        "--queries", str(jsonl), "--qrels", str(qrels), "--systems", "exact",
        "--out", str(again), "--resamples", "2000", "--baseline", str(out),
    ])  # fmt: skip
    assert code == 0
    given = json.loads(again.read_text())
    assert given["model"] is None  # the file's vectors, no model
    (verdict,) = given["gate"]["verdicts"]
    assert verdict["system"] == "exact" and verdict["difference"] == 0


def test_your_own_files_are_read_as_documented(tmp_path):
    tsv = tmp_path / "q.tsv"
    tsv.write_text("text\tquery_id\tnote\nwhat is MVCC?\tq1\tx\nvacuum\tq2\t\n")
    queries, vectors = cli.read_queries(tsv)
    assert [(q.id, q.text, q.kind) for q in queries] == [
        ("q1", "what is MVCC?", "all"), ("q2", "vacuum", "all"),
    ] and vectors == {}  # fmt: skip
    jsonl = tmp_path / "q.jsonl"
    jsonl.write_text('{"id": 7, "text": "a", "kind": "faq", "vector": [1, 0]}\n\n')
    queries, vectors = cli.read_queries(jsonl)
    assert queries[0].id == "7" and queries[0].kind == "faq" and vectors["7"].tolist() == [1, 0]
    qrels = tmp_path / "qrels.txt"
    qrels.write_text("q1 0 d1 2\nq1 0 d2 0\nq2 0 d9 0\n")
    labels, _ = cli.read_labels(tsv, qrels, None)
    assert [q.id for q in labels.queries] == ["q1"]  # q2 has no relevant judgement
    for bad, match in (("query_id\tx\n", "query_id and text"), ("query_id\ttext\nq\n", "cells")):
        tsv.write_text(bad)
        with pytest.raises(cli.InputProblem, match=match):
            cli.read_queries(tsv)
    jsonl.write_text('{"text": "no id"}\n')
    with pytest.raises(cli.InputProblem, match="query_id"):
        cli.read_queries(jsonl)


# ---- the lab's labels and quantized systems -----------------------------------------------


def test_a_size_evaluates_only_the_labels_whose_answers_it_holds(ds):
    from lib.harness import labels as labels_mod

    every = labels_mod.read()
    held = labels_mod.table_doc_ids(N, [h[:16] for h in ds.hashes])
    got = evals.lab_labels(ds, N, every, split=None)
    assert [q.id for q in got.queries] == labels_mod.evaluable(every, held)
    assert got.queries and all(d in held for j in got.qrels.values() for d in j)
    test = evals.lab_labels(ds, N, every)
    assert {q.split for q in test.queries} == {"test"} and len(test.queries) < len(got.queries)


def test_quantized_systems_run_on_the_tuning_copy_and_paste_into_psql(
    db, ds, pg_url, status, labels, vectors
):
    q = labels.queries[0]
    for spec in cli.parse_systems(["halfvec:40,binary:40:2"]):
        system = cli.quantized_system(db, ds, N, spec, evals.DEPTH, lambda _: None)
        assert system.expect and system.expect.startswith(f"tune_n{N}_d384_quantized")
        got = evals.run_system(db, system, [(q.id, vectors[q.id])])
        assert got.index_used == system.expect
        script = system.script(db, vectors[q.id])
        assert_same_results(script, pg_url)
        assert [r[0] for r in script.rows] == got.keys[q.id]
    assert system.extra == (2 * evals.DEPTH,) and "LIMIT $3" in system.sql
