"""The Re-embedding page's measurement: a demo table of the first n real rows (their
all-MiniLM-L6-v2 vectors read from the embedding cache), the trap (a query embedded by the
other model), a live migration to paraphrase-MiniLM-L3-v2 under a stream of k-NN queries
(lib/harness/reembed.py), before and after, and the drift simulation (lib/harness/drift.py)
on rows of the same size. Each is stored as one report in `reembed_lab_reports`, so everyone
reads one run; every figure in it comes from a statement that ran, kept with its psql text."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from psycopg import sql
from psycopg.types.json import Jsonb

from lib.core.database import Database
from lib.core.embeddings.local import MINILM
from lib.core.lab_schema import LAB_SCHEMA
from lib.core.psql import Script, Statement, ident, run, short_value, vector_literal
from lib.dataset.passages import N_QUERIES, Dataset
from lib.harness import drift, evals, scores
from lib.harness import labels as labels_mod
from lib.harness import reembed as rm

A, B = MINILM.name, "paraphrase-MiniLM-L3-v2"
SCHEMA = LAB_SCHEMA
SIZES = (2_000, 5_000, 20_000)
DEFAULT_SIZE = 20_000  # the lesson's: its rows hold enough labelled answers for nDCG
HELD_OUT = 50  # held-out queries for the overlap and recall@10
MIN_LABELLED = 20  # fewer labelled test queries than this and nDCG is not reported
K = 10
EF_SEARCH = 40  # pgvector's default
IDLE_QUERIES, READY_QUERIES, AFTER_QUERIES = 300, 100, 200
PAUSE = 0.005  # seconds between the stream's queries
CEILING_SAMPLE = 256
DRIFT_AVAILABLE = 20_000  # the drift table takes its rows among the first this many
EXACT = {"transaction_read_only": "on", "enable_indexscan": "off", "enable_bitmapscan": "off"}
# the index, also where a small table's planner would rather scan it all (the plan is checked)
INDEXED = {"transaction_read_only": "on", "enable_seqscan": "off", "hnsw.ef_search": EF_SEARCH}
# "warm-up": the stream's first queries (the pool connects, the index's pages are read),
# kept apart so that they do not inflate the idle p95 the other phases are held against
PHASES = ("warm-up", "idle", "backfill", "index build", "ready", "after cutover")
# a run stored before the warm-up phase numbered its phases from these
EARLIER_PHASES = ("idle", "backfill", "index build", "ready", "after cutover")
WARMUP_QUERIES = 30
MAX_SHOWN = 20_000  # characters of one statement's psql text kept whole

DDL = """CREATE TABLE IF NOT EXISTS reembed_lab_reports (
    id bigserial PRIMARY KEY,
    kind text NOT NULL CHECK (kind IN ('migration', 'drift')),
    n integer NOT NULL,
    table_name text NOT NULL,
    ran_at timestamptz NOT NULL DEFAULT now(),
    seconds double precision NOT NULL,
    report jsonb NOT NULL
);
CREATE INDEX IF NOT EXISTS reembed_lab_reports_n ON reembed_lab_reports (kind, n, id)"""


def table_name(n: int) -> str:
    return f"reembed_demo_{n}"


def qualified(n: int) -> str:
    return f"{SCHEMA}.{table_name(n)}"


def sizes(ds: Dataset) -> list[int]:
    """The demo sizes whose passages' vectors are all in the embedding cache here."""
    have = ds.embedded() - N_QUERIES
    return [n for n in SIZES if n <= have]


def ensure_table(db: Database) -> None:
    db.ensure("reembed_lab_reports", DDL)


@dataclass(frozen=True)
class Stored:
    id: int
    kind: str
    n: int
    table: str
    ran_at: datetime
    seconds: float
    report: dict


def stored(db: Database, kind: str, n: int) -> Stored | None:
    """The newest stored report of `kind` for size `n`."""
    ensure_table(db)
    row = db.fetchone(
        "SELECT id, kind, n, table_name, ran_at, seconds, report FROM reembed_lab_reports"
        " WHERE kind = %s AND n = %s ORDER BY id DESC LIMIT 1",
        (kind, n),
    )
    return Stored(*row) if row else None


def newest_id(db: Database, kind: str, n: int) -> int | None:
    """The id of the newest stored report of `kind` for size `n` (the report not read)."""
    ensure_table(db)
    row = db.fetchone(
        "SELECT max(id) FROM reembed_lab_reports WHERE kind = %s AND n = %s", (kind, n)
    )
    return None if row is None or row[0] is None else int(row[0])


def stored_by_id(db: Database, report_id: int) -> Stored | None:
    """One stored report."""
    ensure_table(db)
    row = db.fetchone(
        "SELECT id, kind, n, table_name, ran_at, seconds, report FROM reembed_lab_reports"
        " WHERE id = %s",
        (report_id,),
    )
    return Stored(*row) if row else None


def stored_sizes(db: Database) -> list[int]:
    """The sizes with a stored migration."""
    ensure_table(db)
    rows = db.fetchall("SELECT DISTINCT n FROM reembed_lab_reports WHERE kind = 'migration'")
    return sorted(int(r[0]) for r in rows)


def _store(db: Database, kind: str, n: int, table: str, seconds: float, report: dict) -> Stored:
    ensure_table(db)
    row = db.fetchone(
        "INSERT INTO reembed_lab_reports (kind, n, table_name, seconds, report)"
        " VALUES (%s, %s, %s, %s, %s)"
        " RETURNING id, kind, n, table_name, ran_at, seconds, report",
        (kind, n, table, seconds, Jsonb(report)),
    )
    return Stored(*row)


# ---- the statements --------------------------------------------------------------------------


def sql_abandon(n: int) -> Statement:
    return Statement.of(
        sql.SQL(
            "UPDATE {runs} SET state = 'abandoned', finished_at = now(), updated_at = now()\n"
            "WHERE schema_name = $1 AND table_name = $2 AND state NOT IN ('finished', 'abandoned')"
        ).format(runs=ident(rm.RUNS_SCHEMA, rm.RUNS_TABLE)),
        SCHEMA,
        table_name(n),
        names=("schema", "table"),
        comment="the demo table's migration, if one is active, ends with it",
    )


def sql_drop(n: int) -> Statement:
    return Statement.of(
        sql.SQL("DROP TABLE IF EXISTS {t} CASCADE").format(t=ident(SCHEMA, table_name(n))),
        comment="the table, its indexes and its view",
    )


def sql_create(n: int) -> Statement:
    return Statement.of(
        sql.SQL(
            "CREATE TABLE {t} (id bigint PRIMARY KEY, body text NOT NULL, embedding vector(384))"
        ).format(t=ident(SCHEMA, table_name(n))),
        comment=f"the first {n:,} passages of the recall tables, with {A}'s vectors",
    )


def sql_index(n: int) -> Statement:
    return Statement.of(
        sql.SQL("CREATE INDEX {i} ON {t} USING hnsw (embedding vector_cosine_ops)").format(
            i=ident(f"{table_name(n)}_embedding_hnsw"), t=ident(SCHEMA, table_name(n))
        )
    )


def sql_top(n: int, column: str, vector: np.ndarray, k: int = K) -> Statement:
    """The k nearest rows by one vector column (straight on the table, no guard)."""
    return Statement.of(
        sql.SQL("SELECT id FROM {t}\nORDER BY {c} <=> $1\nLIMIT $2").format(
            t=ident(SCHEMA, table_name(n)), c=ident(column)
        ),
        vector,
        k,
        names=("query vector", "k"),
    )


def sql_index_size(n: int, index: str) -> Statement:
    return Statement.of(
        "SELECT pg_relation_size(to_regclass($1))",
        f"{SCHEMA}.{index}",
        names=("index",),
    )


def sql_explain(s: Statement) -> Statement:
    return Statement(f"EXPLAIN (COSTS OFF)\n{s.text}", s.params, s.names, s.comment)


def reset(db: Database, n: int) -> Script:
    """Drop the demo table (its view and indexes), end its migration, forget its stored run."""
    statements = [sql_drop(n)]
    if db.fetchone("SELECT to_regclass(%s)", (f"{rm.RUNS_SCHEMA}.{rm.RUNS_TABLE}",))[0]:
        statements.insert(0, sql_abandon(n))
    script = run(db, statements, rm.DDL_SETTINGS)
    ensure_table(db)
    db.fetchall(
        "DELETE FROM reembed_lab_reports WHERE kind = 'migration' AND n = %s RETURNING 1", (n,)
    )
    return script


def table_exists(db: Database, n: int) -> bool:
    return db.fetchone("SELECT to_regclass(%s)", (qualified(n),))[0] is not None


# ---- the run ---------------------------------------------------------------------------------


def _tops(db: Database, statements: list[Statement], settings: dict) -> tuple[list, Script]:
    """Each statement's ids (one transaction each), and the first one's Script."""
    out, first = [], None
    for s in statements:
        script = run(db, [s], settings)
        first = first or script
        out.append([int(r[0]) for r in script.rows])
    assert first is not None
    return out, first


def _overlap(a: list[int], b: list[int]) -> float:
    return len(set(a) & set(b)) / max(1, len(a))


def statement_text(s: Statement) -> str:
    """The statement as psql runs it; a \\bind too long to print is described instead."""
    text = s.psql()
    if len(text) <= MAX_SHOWN:
        return text
    described = "; ".join(
        f"${i} {name} = {_described(v)}"
        for i, (name, v) in enumerate(zip(s.names, s.params, strict=False), 1)
    )
    head = [f"-- {line}" for line in s.comment.splitlines()]
    return "\n".join([*head, s.text, f"-- \\bind … \\g, with {described}"])


def _described(v: Any) -> str:
    if isinstance(v, list | tuple) and len(v) > 3:
        return f"{len(v):,} values, the first {short_value(v[0])}"
    return short_value(v)


def ran_text(r: rm.Ran) -> str:
    """A transaction (or an autocommit statement) as it ran."""
    body = "\n\n".join(statement_text(s) for s in r.statements)
    if not r.transaction:
        return body
    return Script((), r.settings).text().replace("COMMIT;", body + "\nCOMMIT;")


def _ran(ran: list[rm.Ran]) -> list[dict]:
    """Each kind of transaction once (its first run), with how often and how long it ran."""
    out: dict[str, dict] = {}
    for r in ran:
        e = out.get(r.what)
        if e is None:
            out[r.what] = {"what": r.what, "count": 1, "seconds": r.seconds, "text": ran_text(r)}
        else:
            e["count"] += 1
            e["seconds"] += r.seconds
    return list(out.values())


def held_out(ds: Dataset) -> dict[str, np.ndarray]:
    """The held-out query passages in both models' spaces: A's vectors from the cache (the
    recall tables' queries), B's embedded now from the same texts."""
    texts = [p.text for p in ds.query_passages[:HELD_OUT]]
    return {A: np.asarray(ds.queries[:HELD_OUT], np.float32), B: rm.embed(B, texts)}


def one_query(ds: Dataset) -> dict[str, np.ndarray]:
    """The first held-out query passage in both models' spaces."""
    return {A: np.asarray(ds.queries[0], np.float32),
            B: rm.embed(B, [ds.query_passages[0].text])[0]}  # fmt: skip


def labelled(ds: Dataset, n: int) -> tuple[Any, dict[str, np.ndarray]]:
    """The labelled test queries whose answers the first n rows hold, in both spaces."""
    picked = evals.lab_labels(ds, n, labels_mod.read())
    texts = [q.text for q in picked.queries]
    vectors = {m: evals.query_vectors(rm.model(m), texts, ds.cache) for m in (A, B)}
    return picked, vectors


Step = Callable[..., None]


def measure_migration(
    db: Database, ds: Dataset, n: int, step: Step | None = None, count=None
) -> Stored:
    """Build the demo table, measure the trap, migrate it to B under a query stream, cut over,
    and measure before and after; store the report."""
    step = step or (lambda *a, **k: None)
    count = count or (lambda *a, **k: None)
    t_start = time.perf_counter()
    table = qualified(n)

    # -- the table --
    step("building", done=0, total=n)
    texts = ds.corpus.texts(int(i) for i in ds.order[N_QUERIES : N_QUERIES + n])
    vectors = np.asarray(ds.real[0:n], np.float32)
    db.ensure("reembed_runs", rm.sql_runs_table().text)
    reset(db, n)
    t0 = time.perf_counter()
    run(db, [sql_create(n)])
    with db.transaction() as conn:
        with conn.cursor().copy(
            sql.SQL("COPY {} (id, body, embedding) FROM STDIN").format(ident(SCHEMA, table_name(n)))
        ) as copy:
            for i, (t, v) in enumerate(zip(texts, vectors, strict=True), 1):
                copy.write_row((i, t, vector_literal(v)))
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    run(db, [sql_index(n)])
    index_a_s = time.perf_counter() - t0
    with db.connection() as conn:
        conn.execute(sql.SQL("ANALYZE {}").format(ident(SCHEMA, table_name(n))))
    build_sql = "\n\n".join(s.psql() for s in (sql_create(n), sql_index(n)))

    # -- the trap: B's queries against A's column --
    step("trap")
    q = held_out(ds)
    right, _ = _tops(db, [sql_top(n, "embedding", v) for v in q[A]], EXACT)
    wrong, trap_script = _tops(db, [sql_top(n, "embedding", v) for v in q[B]], EXACT)
    overlaps = [_overlap(a, b) for a, b in zip(right, wrong, strict=True)]
    picked, lv = labelled(ds, n)
    doc_id = evals.lab_doc_ids(ds)
    ndcg: dict[str, Any] = {"queries": len(picked.queries), "min": MIN_LABELLED}

    def ndcg_of(column: str, model: str) -> float:
        tops, _ = _tops(db, [sql_top(n, column, v) for v in lv[model]], EXACT)
        per = [
            scores.ndcg([doc_id(r) for r in top], picked.qrels.get(qq.id, {}))
            for qq, top in zip(picked.queries, tops, strict=True)
        ]
        return float(np.mean(per))

    if len(picked.queries) >= MIN_LABELLED:
        ndcg |= {"right": ndcg_of("embedding", A), "wrong": ndcg_of("embedding", B)}

    # -- the migration under a query stream --
    r = rm.Reembed.plan(db, table, key="id", text="body", from_column="embedding",
                        from_model=A, to_model=B)  # fmt: skip
    step("ceiling")
    rm.embed(B, texts[:16])  # loaded and warm
    t0 = time.perf_counter()
    rm.embed(B, texts[:CEILING_SAMPLE])
    ceiling = min(CEILING_SAMPLE, n) / (time.perf_counter() - t0)
    load = rm.Load(r, q, A, pause=PAUSE)
    load.phase = "warm-up"
    with load:
        step("idle")
        load.wait_for(WARMUP_QUERIES, timeout=300)
        load.phase = "idle"
        load.wait_for(IDLE_QUERIES, timeout=300)
        load.phase = "backfill"
        step("backfill", done=0, total=n)
        done = r.backfill(on_batch=lambda b: count(b.rows))
        load.phase = "index build"
        step("index build")
        index_b_s = r.build_index()
        load.phase = "ready"
        step("ready")
        load.wait_for(READY_QUERIES, timeout=300)
        load.phase = "after cutover"
        step("cutover")
        r.cutover()
        load.wait_for(AFTER_QUERIES, timeout=300)
    summary = load.summary()
    knn_text = ran_text(next(x for x in load.r.ran if x.what == "k-NN"))
    phase_of = {p: i for i, p in enumerate(PHASES)}
    records = list(load.records)

    # -- before and after --
    step("measuring")
    columns = {A: ("embedding", f"{table_name(n)}_embedding_hnsw", index_a_s),
               B: (r.m.to_column, r.m.index_name, index_b_s)}  # fmt: skip
    sides = []
    example: dict[str, str] = {}
    for model, (column, index, build_s) in columns.items():
        exact, ex = _tops(db, [sql_top(n, column, v) for v in q[model]], EXACT)
        approx, ix = _tops(db, [sql_top(n, column, v) for v in q[model]], INDEXED)
        size = run(db, [sql_index_size(n, index)]).rows[0][0]
        side = {
            "model": model, "column": column, "index": index, "index_bytes": int(size),
            "build_seconds": build_s,
            "recall": float(np.mean([_overlap(e, a) for e, a in zip(exact, approx, strict=True)])),
            "ndcg": ndcg_of(column, model) if len(picked.queries) >= MIN_LABELLED else None,
        }  # fmt: skip
        sides.append(side)
        example[f"{model}: exact"] = ex.text()
        example[f"{model}: HNSW"] = ix.text()
        plan = run(db, [sql_explain(sql_top(n, column, q[model][0]))], INDEXED)
        side["index_used"] = any(index in str(row[0]) for row in plan.rows)

    report = {
        "n": n, "table": table, "from_model": A, "to_model": B, "view": f"{SCHEMA}.{r.m.view}",
        "to_column": r.m.to_column, "held_out": HELD_OUT,
        "build": {"rows": n, "load_seconds": load_s, "index_seconds": index_a_s, "sql": build_sql},
        "trap": {
            "overlaps": overlaps, "mean": float(np.mean(overlaps)), "chance": K / n,
            "rows": [len(w) for w in wrong], "example": trap_script.text(), "ndcg": ndcg,
        },
        "ceiling": {"model": B, "rate": ceiling, "sample": min(CEILING_SAMPLE, n)},
        "backfill": {
            "rows": done.rows, "seconds": done.seconds, "rate": done.rows_per_second,
            "embed_rate": done.embed_rate, "batches": done.batches,
            "embed_seconds": done.embed_seconds, "write_seconds": done.write_seconds,
        },
        "index_seconds": index_b_s,
        "queries": {
            "t": [round(x.at, 3) for x in records],
            "phase": [phase_of.get(x.phase, 0) for x in records],
            "phase_names": list(PHASES),  # what the numbers in "phase" name
            "ms": [round(x.ms, 3) for x in records],
            "error": [x.error for x in records],
            "rows": [x.rows for x in records],
            "switched": [i for i, x in enumerate(records) if x.switched],
        },
        "phases": summary["phases"], "errors": summary["errors"], "total": summary["queries"],
        "knn": knn_text, "ran": _ran(list(r.ran)), "before_after": sides, "examples": example,
    }  # fmt: skip
    return _store(db, "migration", n, table, time.perf_counter() - t_start, report)


# ---- the switch, now --------------------------------------------------------------------------


def active(db: Database, n: int) -> rm.Reembed | None:
    if not table_exists(db, n):
        return None
    return rm.Reembed.active(db, qualified(n))


def view_model(db: Database, n: int) -> str | None:
    r = active(db, n)
    if r is None:
        return None
    rows = rm.read(db, rm.sql_view_model(r.m))
    return rows[0][0] if rows else None


def switch(db: Database, n: int, to: str) -> str:
    """Cut over (`to` = "cutover") or roll back now; the transaction that ran, as psql text."""
    r = active(db, n)
    if r is None:
        raise rm.ReembedError(f"{qualified(n)} has no migration in progress: run it first")
    r.cutover() if to == "cutover" else r.rollback()
    return ran_text(r.ran[-1])


@dataclass(frozen=True)
class Guard:
    view_model: str
    refused: str  # ModelMismatch's message
    refused_sql: str
    plan: list[str]  # EXPLAIN of the refused statement
    answered: int  # rows with the right model
    answered_sql: str
    view_sql: str


def guard(db: Database, ds: Dataset, n: int) -> Guard | None:
    """The guard, run now: the view's k-NN with the wrong model (refused: no row, the planner's
    one-time filter) and with the right one."""
    r = active(db, n)
    if r is None:
        return None
    current = rm.read(db, rm.sql_view_model(r.m))[0][0]
    other = B if current == A else A
    q = one_query(ds)
    refused = ""
    try:
        r.knn(other, q[other], K)
    except rm.ModelMismatch as e:
        refused = str(e)
    refused_sql = ran_text(r.ran[-1])
    explain = sql_explain(rm.sql_knn(r.m, other, q[other], K))
    plan = run(db, [explain], {"transaction_read_only": "on"})
    rows = r.knn(current, q[current], K)
    column = r.m.from_column if current == r.m.from_model else r.m.to_column
    view_sql = rm.sql_view(r.m, column, current).psql()
    return Guard(current, refused, refused_sql, [str(x[0]) for x in plan.rows], len(rows),
                 ran_text(r.ran[-1]), view_sql)  # fmt: skip


# ---- drift -----------------------------------------------------------------------------------


def measure_drift(db: Database, ds: Dataset, n: int, step: Step | None = None) -> Stored:
    """The drift simulation on a table of n rows (lib/harness/drift.py), stored."""
    step = step or (lambda *a, **k: None)
    t_start = time.perf_counter()
    step("planning")
    labels = labels_mod.read()
    doc_id = evals.lab_doc_ids(ds)
    available = min(DRIFT_AVAILABLE, ds.embedded() - N_QUERIES)
    doc_row = {doc_id(r): r for r in range(1, available + 1)}

    def source_of(r: int) -> str:
        return ds.passage_of(r).source  # type: ignore[union-attr]

    p = drift.plan(labels, source_of, doc_row, rows=n, available=available)
    asked = sorted({qid for _, qid in p.asked})
    by_id = {qq.id: qq for qq in labels.queries}
    step("embedding")
    qv = evals.query_vectors(rm.model(A), [by_id[i].text for i in asked], ds.cache)
    vectors = dict(zip(asked, qv, strict=True))
    block = np.asarray(ds.real[0 : max(r for r, _ in p.rows)], np.float32)
    step("building")
    drift.build(db, p, lambda ids: block[np.asarray(ids) - 1], vectors, doc_id, source_of)
    step("measuring")
    d = drift.measure(db, drift.lab_source(), labels, p, doc_id)
    report = {
        "n": n, "rows": len(p.rows), "available": available, "months": d.months,
        "series": d.series, "queries": d.queries, "rows_added": d.rows_added,
        "threshold": d.threshold, "fired": d.fired, "first": d.first(),
        "late_share": d.late_share, "late": p.late, "shift_from": p.shift_from,
        "arrives": p.arrives, "scripts": {k: s.text() for k, s in d.scripts.items()},
        "signals": {k: v[0] for k, v in drift.SIGNALS.items()},
    }  # fmt: skip
    return _store(db, "drift", n, drift.ROWS_TABLE, time.perf_counter() - t_start, report)


def own_table_sql(threshold: float) -> str:
    """The signals' SQL for your own table and query log (here `public.docs` and
    `public.query_log`, no `added_at`), as text to copy: read-only."""
    own = drift.Source(("public", "docs"), "id", "embedding", ("public", "query_log"),
                       "embedding", "asked_at", None, "week")  # fmt: skip
    statements = [drift.top1_statement(own, threshold)]
    statements += drift.centroid_statements(own, drift.START)
    return Script(tuple(statements), drift.READ_ONLY).text()
