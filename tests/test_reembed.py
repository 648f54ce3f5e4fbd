"""Zero-downtime re-embedding (lib/harness/reembed.py, lib/reembed.py) on the test server:
400 passages of the PostgreSQL manual embedded by all-MiniLM-L6-v2, re-embedded to
paraphrase-MiniLM-L3-v2 while queries run."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lib.core.chunks import load_chunks
from lib.harness import reembed as rm

A, B = "all-MiniLM-L6-v2", "paraphrase-MiniLM-L3-v2"
SCHEMA = "reembed_test"
ROWS = 400
K = 10


@pytest.fixture(scope="module")
def corpus():
    """Table texts with A's vectors, spare texts for inserts, held-out queries in both
    models' spaces (every vector made here by the real models)."""
    chunks = load_chunks(("postgresql",), limit=ROWS + 80)
    texts = [chunks.text(i) for i in range(ROWS)]
    spare = [chunks.text(i) for i in range(ROWS, ROWS + 40)]
    queries = [chunks.text(i) for i in range(ROWS + 40, ROWS + 80)]
    return {
        "texts": texts,
        "vectors": rm.embed(A, texts),
        "spare": spare,
        "queries": {A: rm.embed(A, queries, "query"), B: rm.embed(B, queries, "query")},
    }


def make_table(db, name: str, corpus, n: int = ROWS) -> str:
    """schema.name: (id bigint key, body text, embedding vector(384)) with an HNSW index."""
    with db.transaction() as conn:
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
        conn.execute(f"DROP TABLE IF EXISTS {SCHEMA}.{name} CASCADE")
        conn.execute(
            f"CREATE TABLE {SCHEMA}.{name} (id bigint PRIMARY KEY, body text NOT NULL,"
            " embedding vector(384))"
        )
        with conn.cursor() as cur:
            cur.executemany(
                f"INSERT INTO {SCHEMA}.{name} VALUES (%s, %s, %s)",
                [(i + 1, corpus["texts"][i], corpus["vectors"][i]) for i in range(n)],
            )
        conn.execute(f"CREATE INDEX ON {SCHEMA}.{name} USING hnsw (embedding vector_cosine_ops)")
    return f"{SCHEMA}.{name}"


def plan(db, table: str) -> rm.Reembed:
    return rm.Reembed.plan(
        db, table, key="id", text="body", from_column="embedding", from_model=A, to_model=B
    )


def test_migration_under_load_has_no_error_and_always_answers(db, corpus):
    table = make_table(db, "load", corpus)
    r = plan(db, table)
    before = [k for k, *_ in r.knn(A, corpus["queries"][A][0], K)]
    spare = corpus["spare"]
    inserted: list[int] = []

    def during_backfill(b: rm.Backfill) -> None:
        if b.batches == 2:  # the app's writes while the backfill runs
            r.insert_rows([(1000 + i, spare[i]) for i in range(5)])
            inserted.extend(1000 + i for i in range(5))
            # a row written without the dual write, below the backfill's position
            with db.transaction() as conn:
                vector = rm.embed(A, [spare[10]])[0]
                conn.execute(f"INSERT INTO {table} VALUES (0, %s, %s)", (spare[10], vector))

    with rm.Load(r, corpus["queries"], A) as load:
        load.wait_for(20)
        load.phase = "backfill"
        done = r.backfill(batch=64, on_batch=during_backfill)
        load.wait_for(1)
        load.phase = "index"
        r.build_index(batch=64)
        load.phase = "ready"
        load.wait_for(10)
        load.phase = "cutover"
        r.cutover()
        load.wait_for(10)
    summary = load.summary()

    assert summary["errors"] == 0, [q.error for q in load.records if q.error][:3]
    for phase in ("idle", "backfill", "index", "ready", "cutover"):
        assert summary["phases"][phase]["min_rows"] == K, (phase, summary["phases"][phase])
    # before the cutover every query ran as A, after it as B, switched by the guard once
    models = [q.model for q in load.records]
    assert models[0] == A and models[-1] == B
    first_b = models.index(B)
    assert set(models[:first_b]) == {A} and set(models[first_b:]) == {B}
    assert sum(q.switched for q in load.records) == 1

    assert done.rows == ROWS + 1 and not done.stopped  # 400 rows and the row keyed 0
    p = r.progress()
    assert (p.state, p.rows_done, p.rows_total) == ("cut_over", ROWS + 1, ROWS)
    assert r.remaining() == 0
    # the dual-written rows have both vectors, each its own model's
    rows = db.fetchall(
        f"SELECT body, embedding, {r.m.to_column} FROM {table} WHERE id = ANY(%s) ORDER BY id",
        (inserted,),
    )
    assert len(rows) == 5
    for body, va, vb in rows:
        assert float(np.dot(va.to_numpy(), rm.embed(A, [body])[0])) > 0.999
        assert float(np.dot(vb.to_numpy(), rm.embed(B, [body])[0])) > 0.999
    # the view now answers with B's vectors, through the new index
    after = r.knn(B, corpus["queries"][B][0], K)
    assert {row[3] for row in after} == {B}
    assert before  # A's answer, kept for the rollback test's comparison


def test_cutover_is_one_transaction_and_rollback_restores(db, corpus):
    import threading

    table = make_table(db, "switch", corpus)
    r = plan(db, table)
    r.run(batch=128)
    qa = corpus["queries"][A]
    before = [[k for k, *_ in r.knn(A, q, K)] for q in qa[:5]]
    seen: list[tuple] = []
    stop = threading.Event()
    view = f"{SCHEMA}.{r.m.view}"

    def reader() -> None:
        while not stop.is_set():
            seen.append(db.fetchone(f"SELECT array_agg(DISTINCT model), count(*) FROM {view}"))

    t = threading.Thread(target=reader)
    t.start()
    try:
        for _ in range(5):
            r.cutover()
            r.rollback()
        r.cutover()
    finally:
        stop.set()
        t.join()
    assert seen
    assert all(len(models) == 1 and n == ROWS for models, n in seen)  # all A or all B
    assert {models[0] for models, _ in seen} <= {A, B}
    assert r.progress().state == "cut_over"
    with pytest.raises(rm.ModelMismatch):
        r.knn(A, qa[0], K)
    r.rollback()
    assert r.progress().state == "rolled_back"
    assert [[k for k, *_ in r.knn(A, q, K)] for q in qa[:5]] == before
    assert {row[3] for row in r.knn(A, qa[0], K)} == {A}
    assert r.finish() == "abandoned"  # after a rollback, finish drops the shadow column
    columns = {c for (c,) in db.fetchall(
        "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0"
        " AND NOT attisdropped", (table,))}  # fmt: skip
    assert columns == {"id", "body", "embedding"}


def test_the_guard_refuses_a_query_of_the_other_model(db, corpus):
    table = make_table(db, "guard", corpus, n=100)
    r = plan(db, table)
    qb = corpus["queries"][B][0]
    with pytest.raises(rm.ModelMismatch, match=f"holds {A}'s vectors.*embedded by {B}"):
        r.knn(B, qb, K)
    s = rm.sql_knn(r.m, B, qb, K)
    with db.transaction() as conn:
        cur = rm._execute(conn, s)
        assert cur.fetchall() == []
        plan_rows = rm._execute(conn, rm.Statement("EXPLAIN " + s.text, s.params)).fetchall()
    assert "One-Time Filter: false" in "\n".join(p for (p,) in plan_rows)  # no scan at all
    assert len(r.knn(A, corpus["queries"][A][0], K)) == K


def test_the_trap_a_query_of_the_other_model_finds_other_rows(db, corpus):
    """No guard: B's query against A's column runs without an error and agrees little with
    A's own top 10 (measured here: 0.19 on average, against 0.37 for B's query in B's own
    space, chance 0.025)."""
    table = make_table(db, "trap", corpus)
    r = plan(db, table)
    r.run(batch=128)
    exact = {"enable_indexscan": "off"}

    def top(column: str, q) -> set[int]:
        rows = db.fetchall(
            f"SELECT id FROM {table} ORDER BY {column} <=> %s LIMIT {K}", (q,), exact
        )
        return {k for (k,) in rows}

    trap, own = [], []
    for qa, qb in zip(corpus["queries"][A], corpus["queries"][B], strict=True):
        truth = top("embedding", qa)
        trap.append(len(truth & top("embedding", qb)) / K)
        own.append(len(truth & top(r.m.to_column, qb)) / K)
    assert len(trap) == 40
    assert np.mean(trap) < 0.3, np.mean(trap)
    assert np.mean(trap) < np.mean(own) - 0.1, (np.mean(trap), np.mean(own))


def test_backfill_resumes_where_it_stopped(db, corpus):
    table = make_table(db, "resume", corpus)
    r = plan(db, table)
    first = r.backfill(batch=64, max_batches=1)
    assert (first.rows, first.embedded, first.stopped) == (64, 64, True)
    p = r.progress()
    assert (p.state, p.rows_done, p.batches, p.last_key) == ("backfilling", 64, 1, "64")
    calls = []
    again = plan(db, table)  # a new process would do this: the run is found, not replanned
    assert again.m.run_id == r.m.run_id
    second = again.backfill(batch=64, stop=lambda: len(calls) >= 2, on_batch=calls.append)
    assert (second.rows, second.stopped) == (128, True)
    third = again.backfill(batch=64)
    # every row embedded exactly once over the three runs
    assert first.embedded + second.embedded + third.embedded == ROWS
    assert (third.rows, third.stopped) == (ROWS - 192, False)
    assert again.progress().rows_done == ROWS and again.remaining() == 0
    n = db.fetchone(f"SELECT count(*) FROM {table} WHERE {r.m.to_column} IS NOT NULL")[0]
    assert n == ROWS


def _catalog(db, table: str) -> tuple:
    schema = table.split(".")[0]
    rels = db.fetchall(
        "SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n"
        " ON n.oid = c.relnamespace WHERE n.nspname IN (%s, 'public') ORDER BY 1",
        (schema,),
    )
    cols = db.fetchall(
        "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute"
        " WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
        (table,),
    )
    runs = []
    if db.fetchone("SELECT to_regclass('public.reembed_runs')")[0]:
        runs = db.fetchall("SELECT * FROM public.reembed_runs ORDER BY id")
    data = db.fetchone(f"SELECT md5(string_agg(t::text, '' ORDER BY id)) FROM {table} t")
    return rels, cols, runs, data


def cli(table: str, pg_url: str, *flags: str) -> list[str]:
    return [
        "--table", table, "--key", "id", "--text", "body", "--from-column", "embedding",
        "--from-model", A, "--to-model", B, "--database-url", pg_url, *flags,
    ]  # fmt: skip


def test_dry_run_changes_nothing_and_prints_the_statements(db, pg_url, corpus, capsys):
    from lib import reembed as command

    table = make_table(db, "dry", corpus, n=200)
    before = _catalog(db, table)
    assert command.main(cli(table, pg_url, "--dry-run", "--sample", "64")) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert _catalog(db, table) == before
    text = "\n".join(out)
    for needle in (
        "ALTER TABLE reembed_test.dry ADD COLUMN IF NOT EXISTS embedding_paraphrase_minilm_l3_v2",
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS dry_embedding_paraphrase_minilm_l3_v2_hnsw",
        "CREATE OR REPLACE VIEW reembed_test.dry_search",
        f"'{B}'::text AS model",
        "WHERE model = $1",
    ):
        assert needle in text, needle
    report = json.loads(out[-1])
    assert (report["rows"], report["rows_left"], report["sample"]) == (200, 200, 64)
    assert report["passages_per_second"] > 0
    assert report["estimate_seconds"] == pytest.approx(200 / report["passages_per_second"])


def test_command_line_runs_cuts_over_and_finishes(db, pg_url, corpus, capsys):
    from lib import reembed as command

    table = make_table(db, "cli", corpus, n=150)
    assert command.main(cli(table, pg_url, "--batch", "50")) == 0
    ready = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (ready["state"], ready["rows_done"], ready["backfill"]["rows"]) == ("ready", 150, 150)
    assert ready["backfill"]["rows_per_second"] > 0
    assert command.main(cli(table, pg_url, "--cutover")) == 0
    assert json.loads(capsys.readouterr().out.strip())["state"] == "cut_over"
    assert command.main(cli(table, pg_url, "--finish")) == 0
    assert json.loads(capsys.readouterr().out.strip())["state"] == "finished"
    # the shadow column took the old one's name, and the view serves B from it
    cols = db.fetchall(
        "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0"
        " AND NOT attisdropped ORDER BY attnum",
        (table,),
    )
    assert [c for (c,) in cols] == ["id", "body", "embedding"]
    assert db.fetchone(f"SELECT DISTINCT model FROM {SCHEMA}.cli_search")[0] == B
    # a second migration must start from what the column holds now
    assert command.main(cli(table, pg_url)) == 1
    error = json.loads(capsys.readouterr().out.strip())["error"]
    assert f"holds {B}'s vectors" in error
    assert command.main(cli(table, pg_url, "--rollback")) == 1
    assert "no migration in progress" in capsys.readouterr().out
