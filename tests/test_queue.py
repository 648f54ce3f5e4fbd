"""The one job queue (lib/core/jobs.py), against the real PostgreSQL: one live job per key,
a lane runs one job at a time, a cancelled job leaves nothing half-built."""

import threading
import time

import pytest
from psycopg import sql

from lib.core import jobs
from lib.dataset import recall_tables
from lib.dataset.index_specs import IndexSpec
from lib.dataset.passages import load_dataset
from lib.harness import size_jobs

pytestmark = pytest.mark.db

RAN: list[tuple[str, float, float]] = []  # (label, start, end) of the test kinds' runs


def nap(ctx: jobs.Context) -> None:
    start = time.monotonic()
    ctx.step("napping")
    time.sleep(ctx.job.key.get("seconds", 0.2))
    RAN.append((ctx.job.key["label"], start, time.monotonic()))


def half_build(ctx: jobs.Context) -> None:
    """Creates and fills a table in one transaction, then waits inside it: a build that is
    cancelled midway."""
    name = ctx.job.key["table"]
    with ctx.db.transaction() as conn:
        conn.execute(sql.SQL("CREATE TABLE {} (id int)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("INSERT INTO {} SELECT generate_series(1, 1000)").format(
            sql.Identifier(name)))  # fmt: skip
        ctx.backend(conn.info.backend_pid)
        ctx.step("building")
        conn.execute("SELECT pg_sleep(60)")


jobs.register("test_nap", nap)
jobs.register("test_half_build", half_build)


def wait_for(predicate, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_thirty_requests_for_one_key_at_once_make_one_job(db):
    ids: list[int] = []
    key = {"label": "same", "at": time.time()}

    def ask() -> None:
        ids.append(jobs.request(db, "test_nap", key, "test_one_key").id)

    threads = [threading.Thread(target=ask) for _ in range(30)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(ids) == 30 and len(set(ids)) == 1
    jobs.cancel(db, ids[0])
    assert jobs.get(db, ids[0]).state == "cancelled"
    # once it ended, the same key makes a new job
    assert jobs.request(db, "test_nap", key, "test_one_key").id != ids[0]


def test_a_lane_runs_one_job_at_a_time_across_workers(db):
    lane = f"test_lane_{time.time_ns()}"
    queued = [jobs.request(db, "test_nap", {"label": f"{lane}-{i}"}, lane) for i in range(6)]
    workers = [jobs.Worker(db, lanes=(lane,)) for _ in range(2)]  # two "processes"
    try:
        ended = [jobs.wait(db, j, timeout=60) for j in queued]
    finally:
        for w in workers:
            w.stop()
    assert [j.state for j in ended] == ["done"] * 6
    runs = sorted(r for r in RAN if r[0].startswith(lane))
    assert len(runs) == 6
    spans = sorted((start, end) for _, start, end in runs)
    assert all(b[0] >= a[1] for a, b in zip(spans, spans[1:], strict=False))  # never overlap
    assert [r[0] for r in sorted(runs, key=lambda r: r[1])] == [f"{lane}-{i}" for i in range(6)]


def test_a_worker_runs_only_the_kinds_its_process_registered(db):
    lane = f"test_kinds_{time.time_ns()}"
    unknown = jobs.request(db, "test_not_registered", {"x": 1}, lane)
    known = jobs.request(db, "test_nap", {"label": f"{lane}-known"}, lane)
    worker = jobs.Worker(db, lanes=(lane,))
    try:
        assert jobs.wait(db, known, timeout=30).state == "done"
    finally:
        worker.stop()
    assert jobs.get(db, unknown.id).state == "queued"
    jobs.cancel(db, unknown.id)


def test_cancelling_a_running_build_stops_its_statement_and_leaves_no_table(db):
    lane = f"test_cancel_{time.time_ns()}"
    table = f"half_built_{time.time_ns()}"
    job = jobs.request(db, "test_half_build", {"table": table}, lane)
    worker = jobs.Worker(db, lanes=(lane,))
    try:
        wait_for(lambda: jobs.get(db, job.id).state == "building")
        pid = jobs.get(db, job.id).backend_pid
        assert db.fetchone("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,))[0]
        t0 = time.monotonic()
        jobs.cancel(db, job.id)
        ended = jobs.wait(db, job, timeout=30)
        assert time.monotonic() - t0 < 10  # not the 60 s the statement would have slept
    finally:
        worker.stop()
    assert ended.state == "cancelled" and ended.error is None
    assert db.fetchone("SELECT to_regclass(%s)", (table,))[0] is None
    running = db.fetchone(
        "SELECT count(*) FROM pg_stat_activity WHERE pid = %s AND query LIKE '%%pg_sleep%%'"
        " AND state = 'active'",
        (pid,),
    )
    assert running[0] == 0


def test_a_cancelled_size_job_stops_while_embedding_and_leaves_no_table(db, tmp_path):
    fresh = load_dataset(cache_path=tmp_path / "embeddings.sqlite")  # only the queries cached
    n = 2_900  # a size no other test builds
    lane = f"test_size_cancel_{time.time_ns()}"
    table = recall_tables.table_name(n, fresh.dimension)
    key = size_jobs._key(IndexSpec().resolved(n), n)
    job = jobs.request(db, size_jobs.KIND, key, lane, table)
    worker = jobs.Worker(db, fresh, lanes=(lane,))
    try:
        wait_for(lambda: jobs.get(db, job.id).state == "embedding", timeout=60)
        wait_for(lambda: jobs.get(db, job.id).done > 0, timeout=60)  # midway
        jobs.cancel(db, job.id)
        ended = jobs.wait(db, job, timeout=60)
    finally:
        worker.stop()
    assert ended.state == "cancelled"
    assert 0 < fresh.missing(n) < n  # it stopped between batches: some embedded, not all
    assert db.fetchone("SELECT to_regclass(%s)", (table,))[0] is None
    assert "cancelled" in size_jobs.progress(db, size_jobs.Job(ended)).text


def test_a_queued_job_is_cancelled_at_once_and_never_runs(db):
    lane = f"test_queued_cancel_{time.time_ns()}"
    job = jobs.request(db, "test_nap", {"label": f"{lane}-never"}, lane)
    assert jobs.cancel(db, job.id).state == "cancelled"
    worker = jobs.Worker(db, lanes=(lane,))
    try:
        later = jobs.request(db, "test_nap", {"label": f"{lane}-after"}, lane)
        assert jobs.wait(db, later, timeout=30).state == "done"
    finally:
        worker.stop()
    assert not [r for r in RAN if r[0] == f"{lane}-never"]


def test_a_job_whose_process_died_runs_again_and_fails_after_three_tries(db):
    lane = f"test_retry_{time.time_ns()}"
    job = jobs.request(db, "test_nap", {"label": f"{lane}-retried"}, lane)
    # as a worker that was killed mid-run leaves it: running, nobody holding the lane's lock
    db.fetchall(
        "UPDATE lab_jobs SET state = 'napping', attempts = 1, worker = 'gone:1' WHERE id = %s"
        " RETURNING 1",
        (job.id,),
    )
    doomed = jobs.request(db, "test_nap", {"label": f"{lane}-doomed"}, lane)
    db.fetchall(
        "UPDATE lab_jobs SET state = 'napping', attempts = %s, worker = 'gone:2' WHERE id = %s"
        " RETURNING 1",
        (jobs.MAX_ATTEMPTS, doomed.id),
    )
    worker = jobs.Worker(db, lanes=(lane,))
    try:
        again = jobs.wait(db, job, timeout=30)
    finally:
        worker.stop()
    assert again.state == "done" and again.attempts == 2
    failed = jobs.get(db, doomed.id)
    assert failed.state == "failed" and "interrupted 3 times" in failed.error


def test_a_job_run_again_after_its_worker_died_ends_the_statement_it_left_running(db, pg_url):
    """The dead worker's statement may still run on the server: the next worker ends it
    before it runs the job again, so the two never share the cores."""
    import psycopg

    lane = f"test_ghost_{time.time_ns()}"
    job = jobs.request(db, "test_nap", {"label": f"{lane}-again", "seconds": 0.1}, lane)
    ghost = psycopg.connect(pg_url, autocommit=True)  # the dead worker's build, still running
    try:
        pid = ghost.info.backend_pid
        db.fetchall(
            "UPDATE lab_jobs SET state = 'building', attempts = 1, started_at = now(),"
            " backend_pid = %s, worker = 'gone:3' WHERE id = %s RETURNING 1",
            (pid, job.id),
        )
        sleeper = threading.Thread(
            target=lambda: _quietly(ghost, "SELECT pg_sleep(60)"), daemon=True
        )
        sleeper.start()
        wait_for(lambda: db.fetchone(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = %s AND state = 'active'", (pid,)
        )[0] == 1)  # fmt: skip
        worker = jobs.Worker(db, lanes=(lane,))
        try:
            again = jobs.wait(db, job, timeout=30)
        finally:
            worker.stop()
        assert again.state == "done" and again.attempts == 2
        assert db.fetchone("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,))[0] == 0
        runs = [r for r in RAN if r[0] == f"{lane}-again"]
        assert len(runs) == 1
    finally:
        ghost.close()


def _quietly(conn, statement: str) -> None:
    try:
        conn.execute(statement)
    except Exception:  # terminated, as the test wants
        pass
