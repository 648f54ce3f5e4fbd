"""The recall harness against the real PostgreSQL, on small tables (500 and 2,000 rows)."""

import json
import subprocess
import sys
import time

import numpy as np
import pytest

from lib.dataset import builds, recall_tables, sizing
from lib.dataset.index_specs import IndexSpec
from lib.dataset.passages import N_QUERIES, load_dataset
from lib.dataset.recall_tables import table_name
from lib.harness import recall
from lib.harness.recall import HarnessError, Target, generated_target, measure

pytestmark = pytest.mark.db


@pytest.fixture(scope="module")
def ds():
    return load_dataset()


@pytest.fixture(scope="module")
def small(db, ds):
    builds.prepare(db, ds, 500)
    builds.prepare(db, ds, 2000)
    return {n: generated_target(table_name(n, ds.dimension)) for n in (500, 2000)}


def test_recall_is_one_when_ef_search_is_at_least_the_table_size(db, ds, small):
    report = measure(db, small[500], ds.queries, knobs={"hnsw.ef_search": 500})
    assert report.index == "recall_n500_d384_hnsw_m16_efc64"
    assert report.recall["mean"] == 1.0 and report.recall["min"] == 1.0
    assert report.queries == 100 and report.queries_missing == 0


def test_harness_recall_equals_a_numpy_recomputation_from_the_returned_ids(db, ds, small):
    report = measure(db, small[2000], ds.queries, knobs={"hnsw.ef_search": 4})
    # the exact scan's ids are numpy's brute-force top 10 of the same vectors
    x = np.concatenate(list(ds.rows(2000)))
    sims = ds.queries @ x.T
    numpy_truth = np.argsort(-sims, axis=1)[:, :10] + 1
    for t, n in zip(report.truth_ids, numpy_truth, strict=True):
        assert set(t) == set(n.tolist())
    recomputed = [
        len(set(t) & set(g)) / 10
        for t, g in zip(numpy_truth.tolist(), report.index_ids, strict=True)
    ]
    assert np.allclose(report.per_query_recall, recomputed)
    assert report.recall["mean"] == pytest.approx(np.mean(recomputed))
    assert report.recall["min"] == pytest.approx(np.min(recomputed))
    assert report.queries_missing == sum(r < 1 for r in recomputed) > 0  # ef_search 4 misses


def test_the_exact_path_plan_contains_no_index_scan(db, ds, small):
    report = measure(db, small[2000], ds.queries[:5])
    assert report.exact_proved
    assert "Seq Scan" in report.exact_plan
    assert not [n for n in report.exact_plan if "Index" in n]
    assert report.index_plan[-1] == "Index Scan"
    plan = recall.explain(db, small[2000], ds.queries[0], 10, recall.exact_settings())
    assert recall.is_exact_plan(plan)
    assert not recall.is_exact_plan(
        recall.explain(db, small[2000], ds.queries[0], 10, recall.index_settings())
    )


def test_settings_stay_inside_the_measurement(db, ds, small):
    measure(db, small[500], ds.queries[:3], knobs={"hnsw.ef_search": 321})
    for _ in range(4):  # every pooled connection the harness might have used
        row = db.fetchone(
            "SELECT current_setting('hnsw.ef_search'), current_setting('enable_indexscan'),"
            " current_setting('transaction_read_only')"
        )
        assert row == ("40", "on", "off")


def test_queries_run_under_statement_timeout(db, ds, small):
    with db.transaction() as conn:
        conn.execute(
            "CREATE OR REPLACE VIEW public.slow_vectors AS"
            " SELECT id, embedding FROM recall_n500_d384"
            " WHERE pg_sleep(0.002)::text = ''"
        )
    slow = Target("public", "slow_vectors")
    with pytest.raises(HarnessError, match="statement_timeout"):
        recall.ground_truth(db, slow, ds.queries[:2], timeout_ms=100)


def test_binary_copy_stores_exactly_the_dataset_rows(db, ds, small):
    rows = db.fetchall("SELECT id, embedding FROM recall_n2000_d384 WHERE id IN (1, 2000)")
    x = np.concatenate(list(ds.rows(2000)))
    got = {i: v.to_numpy() for i, v in rows}
    assert np.array_equal(got[1], x[0]) and np.array_equal(got[2000], x[1999])
    assert db.fetchone("SELECT count(*) FROM recall_n2000_d384")[0] == 2000


def test_a_tables_rows_are_the_cached_vectors_byte_for_byte(db, ds, small):
    """vector_send gives pgvector's binary form: dimensions, unused, then big-endian float4s;
    the cache holds each passage's float32s as the model returned them."""
    rows = db.fetchall("SELECT id, vector_send(embedding) FROM recall_n2000_d384 ORDER BY id")
    hashes = ds.hashes[N_QUERIES : N_QUERIES + 2000]
    conn = ds.cache._conn()
    blobs = dict(
        conn.execute(
            "SELECT content_hash, vector FROM embedding WHERE model = ? AND content_hash IN"
            f" ({','.join('?' * len(hashes))})",
            [ds.model_name, *hashes],
        ).fetchall()
    )
    assert [i for i, _ in rows] == list(range(1, 2001))
    for (_, sent), h in zip(rows, hashes, strict=True):
        sent = bytes(sent)
        assert sent[:4] == (384).to_bytes(2, "big") + b"\0\0"
        assert sent[4:] == np.frombuffer(blobs[h], "<f4").astype(">f4").tobytes()


def test_ivfflat_recall_comes_back_with_probes_equal_to_lists(db, ds, small):
    spec = IndexSpec("ivfflat", lists=8)
    report = builds.build_index(db, ds, 2000, spec)
    assert report.indexed and report.index == "recall_n2000_d384_ivfflat_l8"
    status = recall_tables.table_status(db, ds, 2000)
    assert [i.name for i in status.indexes] == ["recall_n2000_d384_ivfflat_l8"]  # one at a time
    low = measure(db, small[2000], ds.queries, knobs={"ivfflat.probes": 1})
    full = measure(db, small[2000], ds.queries, knobs={"ivfflat.probes": 8})
    assert low.index == full.index == "recall_n2000_d384_ivfflat_l8"
    assert low.recall["mean"] < 1.0 == full.recall["mean"]
    builds.build_index(db, ds, 2000, IndexSpec())  # back to HNSW for the other tests


def test_an_invalid_index_is_never_used_and_gets_rebuilt(db, ds, small):
    name = "recall_n500_d384_hnsw_m16_efc64"
    db.fetchone(
        "UPDATE pg_index SET indisvalid = false WHERE indexrelid = %s::regclass RETURNING 1",
        (name,),
    )
    status = recall_tables.table_status(db, ds, 500)
    assert status.loaded and not status.ready() and status.index is None
    report = builds.build_index(db, ds, 500, IndexSpec())
    assert report.indexed
    assert recall_tables.table_status(db, ds, 500).ready(IndexSpec())


def test_a_size_beyond_memory_or_disk_is_refused_with_an_estimate():
    plan = sizing.plan_size(1_000_000_000, 384, memory=24 * 1024**3, disk=80 * 1024**3)
    assert not plan.ok
    assert "GB" in plan.reason or "TB" in plan.reason
    assert "1,000,000,000" in plan.reason
    assert sizing.plan_size(500_000, 384, memory=20 * 1024**3, disk=80 * 1024**3).ok


def test_maintenance_work_mem_is_sized_from_the_graph_estimate():
    plan = sizing.plan_size(500_000, 384, memory=20 * 1024**3)
    assert plan.maintenance_work_mem_mb * 1024**2 >= 500_000 * (8 + 4 * 384) * 1.3
    capped = sizing.plan_size(500_000, 384, memory=1024**3)
    assert capped.maintenance_work_mem_mb == 512


def test_the_command_prints_json(pg_url):
    out = subprocess.run(
        [sys.executable, "-m", "lib.recall", "--size", "500", "--queries", "20",
         "--ef-search", "500", "--database-url", pg_url],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    report = json.loads(out.stdout)
    assert report["recall"]["mean"] == 1.0 and report["queries"] == 20
    assert report["exact_proved"] is True
    assert report["index_settings"]["hnsw.ef_search"] == 500


def test_the_command_refuses_a_size_too_large(pg_url):
    out = subprocess.run(
        [sys.executable, "-m", "lib.recall", "--size", "2000000000", "--database-url", pg_url],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 1
    assert "memory" in json.loads(out.stdout)["error"]


def test_a_build_killed_midway_leaves_no_index_behind_and_the_next_one_finishes(db, ds, pg_url):
    n = 10_000
    ds.embed(n)  # the command finds the passages' vectors in the cache and goes straight on
    proc = subprocess.Popen(
        [sys.executable, "-m", "lib.recall", "--size", str(n), "--queries", "5",
         "--database-url", pg_url],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    table = table_name(n, ds.dimension)
    try:
        deadline = time.monotonic() + 60
        while builds.index_progress(db, table) is None:
            assert proc.poll() is None and time.monotonic() < deadline, "the build never started"
            time.sleep(0.1)
    finally:
        proc.kill()
        proc.wait()
    deadline = time.monotonic() + 15
    while builds.index_progress(db, table) is not None:  # the server notices the client left
        assert time.monotonic() < deadline, "the orphaned CREATE INDEX kept running"
        time.sleep(0.2)
    status = recall_tables.table_status(db, ds, n)
    assert status.loaded and status.indexes == ()  # rows committed, no half-built index
    report = builds.build_index(db, ds, n, IndexSpec())
    assert report.indexed and recall_tables.table_status(db, ds, n).ready(IndexSpec())


def test_the_graph_notice_is_captured_when_the_graph_outgrows_maintenance_work_mem(
    db, ds, small, monkeypatch
):
    real_plan = sizing.plan_size

    def tiny(*args, **kwargs):
        from dataclasses import replace

        return replace(real_plan(*args, **kwargs), maintenance_work_mem_mb=1)

    monkeypatch.setattr(builds, "plan_size", tiny)
    heard = []
    report = builds.build_index(
        db, ds, 2000, IndexSpec(m=8, ef_construction=32), on_notice=heard.append
    )
    assert report.maintenance_work_mem == "1MB"
    assert any(builds.GRAPH_NOTICE in t for t in heard), heard
    status = recall_tables.table_status(db, ds, 2000)
    assert builds.GRAPH_NOTICE in status.index.notice  # kept with the build, shown on the page
    monkeypatch.undo()
    builds.build_index(db, ds, 2000, IndexSpec())


def test_the_command_says_in_one_json_line_that_the_server_is_away():
    out = subprocess.run(
        [sys.executable, "-m", "lib.recall", "--size", "500",
         "--database-url", "postgresql://lab:secret@127.0.0.1:9/nowhere"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 1, out.stderr[-2000:]
    error = json.loads(out.stdout)["error"]
    assert "How to fix" in error and "secret" not in error
    assert "Traceback" not in out.stderr
