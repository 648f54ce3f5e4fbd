"""The Index tuning page's machinery against the real PostgreSQL, on small seeded tables: the
frontier's sweeps, the configurations built beside the recall tables, the gallery's plans,
binary quantization's re-rank, the stored runs, the jobs and the command line."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
from psql_util import assert_same_results, psql

from lib.core import jobs as queue
from lib.dataset import builds, config_tables, recall_tables
from lib.dataset.index_configs import (
    EF_SEARCH_VALUES,
    Config,
    ConfigQuery,
    parse_values,
    probes_values,
)
from lib.dataset.index_specs import IndexSpec
from lib.dataset.passages import load_dataset
from lib.harness import recall, truths
from lib.lessons.tuning import frontier
from lib.lessons.tuning import gallery as index_gallery
from lib.lessons.tuning import jobs as tuning_jobs
from lib.recall import parse_sweep

N = 5000
SMALL = 500


@pytest.fixture(scope="module")
def ds():
    return load_dataset()


def prepared(db, ds, n):
    """Size `n` loaded and indexed (pgvector's default HNSW), with its stored ground truth."""
    builds.prepare(db, ds, n)
    status = recall_tables.table_status(db, ds, n)
    truth = truths.of_table(db, ds, status, recall.K)
    if truth is None:
        truth = recall.ground_truth(db, recall.generated_target(status.table), ds.queries)
        truths.store(db, status.table, status.loaded_at, ds.queries_fingerprint, recall.K, truth)
    return status, truth


@pytest.fixture(scope="module")
def table(db, ds):
    return prepared(db, ds, N)


def built(db, ds, n, config):
    config_tables.build_config(db, ds, n, config)
    status = recall_tables.table_status(db, ds, n)
    (s,) = config_tables.statuses(db, ds, n, status, [config.resolved(n)])
    assert s.built
    return s


def table_vectors(db, name):
    rows = db.fetchall(f"SELECT id, embedding FROM {name} ORDER BY id")
    return np.array([r[0] for r in rows]), np.stack([r[1].to_numpy() for r in rows])


def numpy_top_k(vectors, ids, query, k=10):
    v = vectors.astype(np.float64)
    q = query.astype(np.float64)
    distance = 1 - (v @ q) / (np.linalg.norm(v, axis=1) * np.linalg.norm(q))
    return ids[np.argsort(distance, kind="stable")[:k]]


# ---- the frontier ------------------------------------------------------------------------


@pytest.mark.parametrize("config", [Config("hnsw", 8, 32), Config()], ids=str)
def test_recall_on_the_frontier_never_drops_as_ef_search_grows(db, ds, table, config):
    status, truth = table
    s = built(db, ds, N, config)
    sweep = frontier.sweep(
        db, s.place.query(), ds.queries, truth, config=s.config, index=s.place.index,
        values=EF_SEARCH_VALUES,
    )  # fmt: skip
    recalls = [p.recall["mean"] for p in sweep.points]
    assert [p.value for p in sweep.points] == list(EF_SEARCH_VALUES)
    assert all(b >= a - 1e-12 for a, b in zip(recalls, recalls[1:], strict=False)), recalls
    assert recalls[0] < 1.0 and recalls[-1] > recalls[0]  # the curve climbs: something to see
    assert all(p.index == s.place.index for p in sweep.points)


def test_sweep_figures_equal_a_numpy_recomputation_from_the_returned_ids(db, ds, table):
    status, truth = table
    s = built(db, ds, N, Config("hnsw", 8, 32))
    sweep = frontier.sweep(
        db, s.place.query(), ds.queries, truth, config=s.config, index=s.place.index,
        values=(10, 40),
    )  # fmt: skip
    ids, vectors = table_vectors(db, s.place.table)
    exact = [numpy_top_k(vectors, ids, q) for q in ds.queries]
    assert all(set(e) == set(t) for e, t in zip(exact, truth.ids, strict=True))
    for p in sweep.points:
        per_query = np.array(
            [np.isin(got[:10], e).sum() / 10 for got, e in zip(p.ids, exact, strict=True)]
        )
        assert p.recall["mean"] == pytest.approx(per_query.mean(), abs=1e-12)
        assert p.recall["min"] == pytest.approx(per_query.min(), abs=1e-12)
        assert p.queries_missing == int((per_query < 1).sum())
        lat = np.array(p.latencies_ms)
        assert p.latency_ms["p50"] == pytest.approx(np.percentile(lat, 50))
        assert p.latency_ms["p95"] == pytest.approx(np.percentile(lat, 95))
        assert p.qps == pytest.approx(len(ds.queries) / p.seconds)
        assert p.seconds >= lat.sum() / 1000


def test_a_point_answered_by_another_index_is_refused(db, ds, table):
    status, truth = table
    s = built(db, ds, N, Config("hnsw", 8, 32))
    with pytest.raises(recall.HarnessError, match="not some_other_index"):
        frontier.sweep(
            db, s.place.query(), ds.queries[:5], truth, config=s.config,
            index="some_other_index", values=(40,),
        )  # fmt: skip


def test_ivfflat_sweeps_probes_up_to_its_lists(db, ds, table):
    status, truth = table
    s = built(db, ds, N, Config("ivfflat"))
    assert s.config.lists == 5 and s.place.table == f"tune_n{N}_d384_ivfflat_l5"
    sweep = frontier.sweep(
        db, s.place.query(), ds.queries, truth, config=s.config, index=s.place.index
    )
    assert sweep.knob == "ivfflat.probes" and sweep.values == [1, 2, 3, 4, 5]
    assert sweep.points[-1].recall["mean"] == 1.0  # every list searched: exact
    assert probes_values(100) == (1, 2, 3, 4, 6, 9, 12, 17, 25)
    assert probes_values(500)[-1] == 125 and probes_values(8)[-1] == 8


def test_cheapest_is_the_fastest_point_reaching_the_target():
    def point(value, r, p50):
        return frontier.Point(value, {"mean": r}, {"p50": p50, "p95": p50}, 1.0, 1.0, "i", [],
                              10, 0, "")  # fmt: skip

    a = frontier.Sweep(Config(), "t", "i", "hnsw.ef_search", [10, 40], 10, 100, None, {},
                       [point(10, 0.90, 0.3), point(40, 0.97, 0.6)], "", 1.0, "")  # fmt: skip
    b = replace(a, config=Config("hnsw", 32, 128), points=[point(10, 0.96, 0.5)])
    assert frontier.cheapest([a, b], 0.95).point.value == 10  # b's, faster than a's 40
    assert frontier.cheapest([a, b], 0.95).sweep_index == 1
    assert frontier.cheapest([a, b], 0.97).point.latency_ms["p50"] == 0.6
    assert frontier.cheapest([a, b], 0.89).point.latency_ms["p50"] == 0.3
    assert frontier.cheapest([a, b], 0.99) is None


# ---- where configurations live, and what they cost --------------------------------------


def test_configurations_live_on_copies_of_the_same_rows_and_are_built_once(db, ds, table):
    status, _ = table
    first = config_tables.build_config(db, ds, N, Config("hnsw", 8, 32))
    again = config_tables.build_config(db, ds, N, Config("hnsw", 8, 32))
    assert not again.indexed and not again.copied
    assert first.place.table == f"tune_n{N}_d384_hnsw_m8_efc32"
    ids, vectors = table_vectors(db, first.place.table)
    base_ids, base_vectors = table_vectors(db, status.table)
    assert np.array_equal(ids, base_ids) and np.array_equal(vectors, base_vectors)
    # the table's own index is not copied anywhere: it is the first configuration
    own = config_tables.build_config(db, ds, N, Config())
    assert own.place.table == status.table and not own.indexed and not own.copied
    (s,) = config_tables.statuses(db, ds, N, status, [Config("hnsw", 8, 32)])
    assert s.index_bytes > 0 and s.build_seconds > 0 and s.maintenance_work_mem.endswith("MB")
    script = s.build_script().text()
    assert f"CREATE TABLE {s.place.table} (LIKE {status.table});" in script
    assert "SET LOCAL maintenance_work_mem = '" in script
    assert "WITH (m = 8, ef_construction = 32);" in script


def test_a_build_script_pasted_into_psql_builds_the_same_index(db, ds, table, pg_url):
    from lib.dataset.index_configs import Placement

    status, _ = table
    scratch = "tune_scratch_paste"
    place = Placement(Config("binary"), scratch, f"{scratch}_binary", status.table, ds.dimension)
    script = config_tables.build_script(place, {"maintenance_work_mem": "64MB"}, copy=True)
    try:
        psql(pg_url, script.text())
        rows = db.fetchall("SELECT indexdef FROM pg_indexes WHERE tablename = %s", (scratch,))
        assert [r[0] for r in rows] == [
            f"CREATE INDEX {scratch}_binary ON pgvector_lab.{scratch} USING hnsw "
            "(((binary_quantize(embedding))::bit(384)) bit_hamming_ops) "
            "WITH (m='16', ef_construction='64')"
        ]
        assert db.fetchone(f"SELECT count(*) FROM {scratch}")[0] == N
    finally:
        with db.transaction() as conn:
            conn.execute(f"DROP TABLE IF EXISTS {scratch}")


def test_both_quantized_indexes_share_one_copy_and_answer_only_their_own_queries(db, ds, table):
    status, truth = table
    half = built(db, ds, N, Config("halfvec"))
    binary = built(db, ds, N, Config("binary"))
    assert half.place.table == binary.place.table == f"tune_n{N}_d384_quantized"
    assert binary.index_bytes < half.index_bytes  # 384 bits against 384 halves
    for s in (half, binary):
        answers = recall.run_queries(
            db, s.place.query(), ds.queries[:3], 10, frontier.settings_for("hnsw.ef_search", 40)
        )
        assert answers.index_used == s.place.index


def test_the_copy_is_made_again_when_its_table_is_reloaded(db, ds):
    n = 1500
    prepared(db, ds, n)
    first = config_tables.build_config(db, ds, n, Config("halfvec"))
    assert first.copied and first.indexed
    db.fetchall("UPDATE recall_tables SET fingerprint = 'stale' WHERE n = %s RETURNING 1", (n,))
    builds.load_table(db, ds, n)  # reloaded: a new loaded_at
    builds.build_index(db, ds, n, IndexSpec())
    status = recall_tables.table_status(db, ds, n)
    (s,) = config_tables.statuses(db, ds, n, status, [Config("halfvec")])
    assert not s.built  # made from the old load: not shown as built
    again = config_tables.build_config(db, ds, n, Config("halfvec"))
    assert again.copied and again.indexed


# ---- binary quantization -------------------------------------------------------------------


def test_binary_rerank_returns_exactly_the_exact_scan_rows_when_oversampling_covers_the_table(
    db, ds
):
    status, truth = prepared(db, ds, SMALL)
    s = built(db, ds, SMALL, Config("binary"))
    shape = ConfigQuery(s.place.table, s.config, ds.dimension, oversample=SMALL // 10)
    assert shape.candidates(10) == SMALL
    got = recall.run_queries(
        db, shape, ds.queries, 10, frontier.settings_for("hnsw.ef_search", 1000)
    )
    assert got.index_used == s.place.index
    assert got.ids == [t[:10] for t in truth.ids]  # the same rows, in the same order
    # with few candidates the re-rank cannot find what the index did not hand it
    few = replace(shape, oversample=1)
    fewer = recall.run_queries(db, few, ds.queries, 10, frontier.settings_for("hnsw.ef_search", 40))
    assert recall.recall_at_k(truth.ids, fewer.ids, 10).mean() < 1.0


def test_binary_query_says_which_rows_the_index_answers(db, ds, table):
    from lib.core.psql import run
    from lib.lessons.tuning.view import index_and_rerank_rows

    s = built(db, ds, N, Config("binary"))
    shape = s.place.query(oversample=4)
    script = run(
        db, [shape.statement(ds.queries[0], 10, explain=True)],
        frontier.settings_for("hnsw.ef_search", 100),
    )  # fmt: skip
    assert index_and_rerank_rows([r[0] for r in script.rows]) == (40, 10)
    shown = script.text()
    assert "LIMIT $3\n) AS candidates\nORDER BY embedding <=> $1\nLIMIT $2" in shown
    assert "\\bind '[" in shown and " 10 40 \\g" in shown


def test_config_queries_paste_into_psql_with_the_same_rows(db, ds, table, pg_url):
    from lib.core.psql import run

    for config in (Config("halfvec"), Config("binary"), Config()):
        s = built(db, ds, N, config)
        stmt = s.place.query(oversample=4).statement(ds.queries[1], 10, with_distance=True)
        script = run(db, [stmt], frontier.settings_for("hnsw.ef_search", 60))
        assert "SET LOCAL hnsw.ef_search = 60;" in script.text()
        assert_same_results(script, pg_url)


# ---- the gallery ---------------------------------------------------------------------------


def test_each_gallery_plan_shows_what_its_caption_says(db, ds, table, pg_url):
    status, _ = table
    half = built(db, ds, N, Config("halfvec"))
    small, _ = prepared(db, ds, SMALL)
    where = {
        "table": (status.table, status.index.name),
        "quantized": (half.place.table, half.place.index),
        "small": (small.table, small.index.name),
    }
    for case in index_gallery.CASES:
        table_name, index = where[case.table]
        ran = index_gallery.run_case(db, case, table_name, ds.dimension, ds.queries[0])
        assert ran.bad.indexes == [], (case.key, ran.bad.plan)
        assert ran.fix.indexes == [index], (case.key, ran.fix.plan)
        assert any("Seq Scan" in line for line in ran.bad.plan), case.key
        assert "Buffers:" in "\n".join(ran.fix.plan)  # EXPLAIN (ANALYZE, BUFFERS), as shown
        for side in (ran.bad, ran.fix):  # a click's EXPLAIN ANALYZE is bounded, and shown so
            assert f"statement_timeout = '{index_gallery.STATEMENT_TIMEOUT}'" in side.script.text()
        # pasted into psql, the shown statement gives the same plan shape
        pasted = [r[0] for r in psql(pg_url, ran.bad.script.text())[0].rows]
        assert index_gallery.indexes_in(pasted) == [], case.key
        pasted = [r[0] for r in psql(pg_url, ran.fix.script.text())[0].rows]
        assert index_gallery.indexes_in(pasted) == [index], case.key


# ---- stored runs, jobs, the command line -------------------------------------------------


def test_a_stored_sweep_reads_back_as_it_ran(db, ds, table):
    sweep = tuning_jobs.run_sweep(db, ds, N, Config(), values=[10, 40], queries=20)
    status = recall_tables.table_status(db, ds, N)
    key = frontier.SweepKey(
        sweep.index, sweep.index_built_at, status.loaded_at, "hnsw.ef_search", (10, 40), 10,
        20, None,
    )  # fmt: skip
    found = frontier.latest_ids(db, [key])
    assert found == {key: sweep.id}
    back = frontier.load(db, sweep.id)
    assert [p.public(ids=True) for p in back.points] == [p.public(ids=True) for p in sweep.points]
    assert back.config == Config() and back.source == "app" and back.queries == 20
    light = frontier.load(db, sweep.id, ids=False)  # what the page reads: points, in order
    assert [p.public() for p in light.points] == [p.public() for p in sweep.points]
    assert all(p.ids == [] for p in light.points)


def test_jobs_build_and_sweep_once_for_everyone(db, ds, table):
    config = Config("hnsw", 6, 24)
    one = tuning_jobs.request_build(db, ds, N, config)
    two = tuning_jobs.request_build(db, ds, N, config)
    assert one.id == two.id
    worker = queue.Worker(db, ds)
    try:
        done = tuning_jobs.wait(db, one, timeout=300)
        assert done.state == "done", done.error
        sweep_job = tuning_jobs.request_sweep(db, ds, N, config)
        assert tuning_jobs.request_sweep(db, ds, N, config).id == sweep_job.id
        swept = tuning_jobs.wait(db, sweep_job, timeout=300)
        assert swept.state == "done", swept.error
    finally:
        worker.stop()
    stored = frontier.load(db, swept.result)
    assert stored.config == config and len(stored.points) == len(EF_SEARCH_VALUES)
    assert tuning_jobs.progress(db, swept).text.endswith("done.")


def test_command_line_prints_the_frontier_as_json(db, ds, table, pg_url):
    out = subprocess.run(
        [sys.executable, "-m", "lib.recall", "--size", str(N), "--queries", "20",
         "--sweep", "ef_search=10,40,200", "--database-url", pg_url],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["knob"] == "hnsw.ef_search" and result["values"] == [10, 40, 200]
    assert [p["value"] for p in result["points"]] == [10, 40, 200]
    assert all(p["index"] == result["index"] for p in result["points"])
    assert result["cheapest"]["target"] == 0.95 and result["source"] == "command line"
    wrong = subprocess.run(
        [sys.executable, "-m", "lib.recall", "--size", str(N), "--queries", "5",
         "--sweep", "probes=1,2", "--database-url", pg_url],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert (
        wrong.returncode == 1 and "tuned with hnsw.ef_search" in json.loads(wrong.stdout)["error"]
    )


def test_command_line_sweeps_binary_quantization(db, ds, table, pg_url):
    out = subprocess.run(
        [sys.executable, "-m", "lib.recall", "--size", str(N), "--queries", "10",
         "--quantize", "binary", "--oversample", "2", "--sweep", "ef_search=20,100",
         "--database-url", pg_url],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["index"].endswith("_binary_m16_efc64") and result["oversample"] == 2


def test_command_line_sweeps_another_index_on_a_copy_and_keeps_the_tables_own(
    db, ds, table, pg_url
):
    out = subprocess.run(
        [sys.executable, "-m", "lib.recall", "--size", str(N), "--queries", "10",
         "--index", "ivfflat", "--sweep", "probes=1,5", "--database-url", pg_url],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["index"] == f"tune_n{N}_d384_ivfflat_l5_idx"
    assert result["points"][-1]["recall"]["mean"] == 1.0  # all 5 lists probed
    assert recall_tables.table_status(db, ds, N).index.kind == "hnsw"


def test_sweep_arguments_are_checked():
    assert parse_sweep("ef_search=10, 20,40") == ("hnsw.ef_search", (10, 20, 40))
    assert parse_sweep("ivfflat.probes=1,2") == ("ivfflat.probes", (1, 2))
    for bad in ("ef_search", "m=16", "ef_search=10,x", "probes=0"):
        with pytest.raises(ValueError):
            parse_sweep(bad)
    assert parse_values("1_000") == (1000,)


def test_a_sweep_reads_the_index_first_at_its_largest_value_uncounted(db, ds, table, monkeypatch):
    """The whole query set runs once at the largest ef_search before the first value, so no
    value pays for reading the index from disk (a cold 500k index made ef_search 20 slower
    than 60); then each value gets its few warm-up queries and its counted run."""
    status, truth = table
    s = built(db, ds, N, Config("hnsw", 8, 32))
    calls = []
    real = frontier.run_queries

    def spy(db, shape, queries, k, settings):
        calls.append((len(queries), dict(settings)))
        return real(db, shape, queries, k, settings)

    monkeypatch.setattr(frontier, "run_queries", spy)
    frontier.sweep(
        db, s.place.query(), ds.queries, truth, config=s.config, index=s.place.index,
        values=(10, 40, 20),
    )  # fmt: skip
    n, warm = len(ds.queries), frontier.WARMUP_QUERIES
    assert calls == [
        (n, frontier.settings_for("hnsw.ef_search", 40)),
        *[
            c
            for v in (10, 40, 20)
            for c in [
                (warm, frontier.settings_for("hnsw.ef_search", v)),
                (n, frontier.settings_for("hnsw.ef_search", v)),
            ]
        ],
    ]
