"""Size jobs (a recall table, its index and ground truth) in the one queue, against the real
PostgreSQL."""

import os
import subprocess
import sys
from dataclasses import replace

import pytest

from lib.core import jobs as queue
from lib.dataset import builds, recall_tables
from lib.dataset.index_specs import IndexSpec
from lib.dataset.passages import N_QUERIES, load_dataset
from lib.harness import size_jobs as jobs
from lib.harness import truths
from lib.harness.recall import K

pytestmark = pytest.mark.db


@pytest.fixture(scope="module")
def ds():
    return load_dataset()


def test_two_requests_for_the_same_size_share_one_job_and_store_the_truth(db, ds):
    a = jobs.request(db, ds, 1000)
    b = jobs.request(db, ds, 1000)
    assert a.id == b.id and a.state == "queued"
    worker = queue.Worker(db, ds)
    try:
        done = jobs.wait(db, a, timeout=180)
    finally:
        worker.stop()
    assert done.state == "done", done.error
    status = recall_tables.table_status(db, ds, 1000)
    assert status.ready(IndexSpec())
    truth = truths.load(db, status.table, status.loaded_at, ds.queries_fingerprint, K)
    assert truth is not None and len(truth.ids) == len(ds.queries)
    assert all(len(ids) == K for ids in truth.ids)
    assert jobs.progress(db, done).fraction == 1.0
    # asked again once ready: a new job that finds everything done and does nothing
    again = jobs.request(db, ds, 1000)
    assert again.id != a.id
    worker = queue.Worker(db, ds)
    try:
        again = jobs.wait(db, again, timeout=60)
    finally:
        worker.stop()
    assert again.state == "done"
    assert not (again.loaded or again.indexed or again.truth_computed)


def test_a_job_whose_worker_died_is_queued_again_and_finished(db, ds):
    spec = IndexSpec("hnsw", m=8, ef_construction=32)
    job = jobs.request(db, ds, 500, spec)
    # as a worker that was killed mid-build leaves it: running, with nobody holding the lane
    db.fetchall(
        "UPDATE lab_jobs SET state = 'indexing', attempts = 1, worker = 'gone:1'"
        " WHERE id = %s RETURNING 1",
        (job.id,),
    )
    worker = queue.Worker(db, ds, lanes=("small",))
    try:
        done = jobs.wait(db, job, timeout=120)
    finally:
        worker.stop()
    assert done.state == "done", done.error
    assert done.attempts == 2 and done.worker == queue.worker_name()
    assert recall_tables.table_status(db, ds, 500).ready(spec)
    builds.build_index(db, ds, 500, IndexSpec())  # back to the default for other tests


def test_a_queued_job_says_how_many_are_ahead_of_it_in_its_lane(db, ds):
    first = jobs.request(db, ds, 700)
    second = jobs.request(db, ds, 800)
    big = jobs.request(db, ds, 70_000)
    try:
        ahead = jobs.position(db, second)
        assert ahead == jobs.position(db, first) + 1
        text = jobs.progress(db, second).text
        assert f"{ahead} job{'s' if ahead > 1 else ''} ahead of it in the small-table queue" in text
        assert jobs.position(db, big) == 0  # the large-table lane has its own queue
    finally:
        db.fetchall(
            "UPDATE lab_jobs SET state = 'failed', error = 'test' WHERE id = ANY(%s) RETURNING 1",
            ([first.id, second.id, big.id],),
        )


def test_a_job_embeds_what_its_size_needs_first_and_says_how_far_it_is(db, tmp_path):
    fresh = load_dataset(cache_path=tmp_path / "embeddings.sqlite")  # only the queries cached
    n = 610  # a size no other test builds: its table must not be loaded already
    assert fresh.to_embed(n) == fresh.missing(n) == n
    # A job in a lane of its own, run here: any other worker in this process (an AppTest's)
    # would run a queued job with its own dataset, whose cache is not this one.
    key = jobs._key(IndexSpec().resolved(n), n)
    table = recall_tables.table_name(n, fresh.dimension)
    job = queue.request(db, jobs.KIND, key, "test", table)
    db.fetchall(
        "UPDATE lab_jobs SET state = 'starting', started_at = now(), worker = 'this test'"
        " WHERE id = %s RETURNING 1",
        (job.id,),
    )
    try:
        jobs.run(queue.Context(db, queue.get(db, job.id), fresh))
    finally:
        db.fetchall("UPDATE lab_jobs SET state = 'done' WHERE id = %s RETURNING 1", (job.id,))
    done = jobs.get(db, job.id)
    assert (done.embed_done, done.embed_total) == (n, n) and done.embed_seconds > 0
    assert done.loaded and done.indexed and done.truth_computed
    assert fresh.missing(n) == 0 and fresh.embedded() == n + N_QUERIES
    assert fresh.cache.rate(fresh.model_name, min_texts=1) is not None  # for the next estimate
    midway = jobs.Job(replace(done.job, state="embedding", done=200, total=n, finished_at=None))
    text = jobs.progress(db, midway).text
    assert "Embedding the passages 610 rows need: 200 of 610 done" in text and "left" in text
    assert jobs.progress(db, midway).fraction == pytest.approx(200 / n)


def test_make_prepare_embeds_first_with_an_estimate_then_builds(pg_url, tmp_path):
    env = {
        **os.environ,
        "DATABASE_URL": pg_url,
        "EMBEDDING_CACHE_PATH": str(tmp_path / "embeddings.sqlite"),
    }
    out = subprocess.run(
        [sys.executable, "-m", "lib.prepare", "--sizes", "500", "--check-size", "0"],
        capture_output=True, text=True, timeout=600, env=env,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    text = out.stdout
    assert "Embedding 500 passages first (all-MiniLM-L6-v2): about" in text
    assert "500 of its 500 rows are real passages" in text
    assert "Embedded 500 passages in" in text
    assert text.index("Embedded") < text.index("Warming each size")
    row = next(line for line in text.splitlines() if line.strip().startswith("500 "))
    assert "HNSW m=16 ef_construction=64" in row and "not ready" not in row


def test_newest_reads_the_newest_job_of_a_key_in_the_state_asked(db):
    kind, key = "test_newest", {"n": 5, "knobs": {"hnsw.ef_search": 77}}
    first = queue.request(db, kind, key, "test")
    queue.cancel(db, first.id)  # queued: it ends now, so the next request is a new job
    second = queue.request(db, kind, key, "test")
    assert second.id != first.id
    assert queue.newest(db, kind, {"n": 5}).id == second.id  # the key contains it
    assert queue.newest(db, kind, key, state="cancelled").id == first.id
    assert queue.newest(db, kind, key, state="done") is None
    assert queue.newest(db, kind, {"n": 6}) is None
    queue.cancel(db, second.id)
