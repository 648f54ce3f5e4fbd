"""Three PostgreSQL job queues measured the same way: procrastinate, pgqueuer and the lab's own
(lib/core/jobs.py), for issue 17's choice between an existing queue and our own.

    .venv/bin/python bench/bench_queue.py                  # the lab's queue only (make bench)
    python -m venv /tmp/qvenv && /tmp/qvenv/bin/pip install procrastinate pgqueuer psycopg[binary]
    .venv/bin/python bench/bench_queue.py --also /tmp/qvenv/bin/python   # all three, one table

Each library is measured by an interpreter that can import it (a library that cannot be
imported is skipped with a note; `--also PYTHON` measures the others with that interpreter and
merges its figures). Every library gets a fresh database of its own on the server named by
`--url`, DATABASE_URL or the project's embedded server, dropped at the end. Measured:

- install: the distribution and its requirements, as installed; import time in a fresh
  interpreter; schema install; from starting a worker to its first job done;
- a job's overhead, with the worker in a daemon thread of its own while the main thread runs an
  asyncio loop, as Streamlit's server does: enqueue -> done (visible in SQL) of a no-op job in a
  lane, p50/p95 of 200 in a row; 200 no-op jobs' throughput; the host loop's lag meanwhile;
  whether starting the worker touched the process's signal handlers; connections it holds;
- one live job per key: 30 threads enqueue the same key at once (nothing running), then again
  while that job runs;
- one at a time per lane: two worker processes, 10 jobs of 0.2 s in one lane, their highest
  concurrency (and, as a control, the same jobs without a lane);
- a worker process SIGKILLed mid-job (its statement on its own connection, with the lab's
  `client_connection_check_interval = 2s`): whether and when the job runs again, and whether the
  killed statement still ran on the server when it did;
- cancel of a job inside `SELECT pg_sleep(30)`: time until the statement stops on the server,
  and whether the next job of the lane starts before it stopped.

Every wait is bounded; only the given server is contacted. Prints one table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

ROOT = Path(__file__).resolve().parents[1]
LANE = "bench"
N_JOBS = 200
MAX_SECTION_S = 120.0
SLEEP_S = 30
TAG = "RESULTS_JSON "

MARKS = """CREATE TABLE IF NOT EXISTS bench_marks (
    id bigserial PRIMARY KEY, test text NOT NULL, job text NOT NULL, pid integer,
    backend integer, started double precision, ended double precision, note text)"""


# ---------------------------------------------------------------------------------------------
# The jobs' bodies, the same for every library (sync for the lab and procrastinate's sync
# task, async for the async ones). `a` holds test, job, seconds.


def _mark(conninfo: str, a: dict, note: str, backend: int | None = None,
          started: float | None = None, ended: float | None = None) -> int:  # fmt: skip
    with psycopg.connect(conninfo, autocommit=True, application_name="bench-mark") as c:
        c.execute(
            "INSERT INTO bench_marks (test, job, pid, backend, started, ended, note)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (a["test"], a["job"], os.getpid(), backend, started, ended, note),
        )
        row = c.execute(
            "SELECT count(*) FROM bench_marks WHERE test = %s AND job = %s AND note = %s",
            (a["test"], a["job"], note),
        ).fetchone()
        return int(row[0])


def sync_body(kind: str, a: dict, conninfo: str, backend: Callable[[int], None] | None = None,
              should_abort: Callable[[], bool] | None = None) -> None:  # fmt: skip
    if kind == "noop":
        return
    if kind == "span":
        t0 = time.time()
        time.sleep(a["seconds"])
        _mark(conninfo, a, "span", started=t0, ended=time.time())
        return
    # "kill" (a long statement on the first attempt only) and "sleep" (a long statement)
    with psycopg.connect(conninfo, autocommit=True, application_name="bench-job") as c:
        c.execute("SET client_connection_check_interval = '2s'")  # as lib/dataset/builds.py
        pid = c.info.backend_pid
        attempt = _mark(conninfo, a, "start", backend=pid, started=time.time())
        if backend:
            backend(pid)
        if kind == "sleep" or attempt == 1:
            try:
                c.execute("SELECT pg_sleep(%s)", (a.get("seconds", SLEEP_S),))
            finally:
                _mark(conninfo, a, "end", backend=pid, ended=time.time())
        if should_abort and should_abort():
            from procrastinate import exceptions

            raise exceptions.JobAborted
    if kind == "kill":
        _mark(conninfo, a, "end", ended=time.time())


async def _amark(conninfo: str, a: dict, note: str, **kw: Any) -> int:
    return await asyncio.to_thread(_mark, conninfo, a, note, **kw)


async def async_body(kind: str, a: dict, conninfo: str) -> None:
    if kind == "noop":
        return
    if kind == "span":
        t0 = time.time()
        await asyncio.sleep(a["seconds"])
        await _amark(conninfo, a, "span", started=t0, ended=time.time())
        return
    async with await psycopg.AsyncConnection.connect(
        conninfo, autocommit=True, application_name="bench-job"
    ) as c:
        await c.execute("SET client_connection_check_interval = '2s'")
        pid = c.info.backend_pid
        attempt = await _amark(conninfo, a, "start", backend=pid, started=time.time())
        if kind == "sleep" or attempt == 1:
            try:
                await c.execute("SELECT pg_sleep(%s)", (a.get("seconds", SLEEP_S),))
            finally:
                await _amark(conninfo, a, "end", backend=pid, ended=time.time())
    if kind == "kill":
        await _amark(conninfo, a, "end", ended=time.time())


# ---------------------------------------------------------------------------------------------
# Adapters: one per library, the same operations.


class Thread:
    """A worker running in a daemon thread with an event loop of its own."""

    def __init__(self, main: Callable[[threading.Event, dict], Any]):
        self.ready = threading.Event()
        self.box: dict = {}
        self.error: BaseException | None = None

        def target() -> None:
            try:
                asyncio.run(main(self.ready, self.box))
            except BaseException as e:  # noqa: BLE001 (reported)
                self.error = e
                self.ready.set()

        self.thread = threading.Thread(target=target, name="bench-worker", daemon=True)
        self.thread.start()
        self.ready.wait(30)

    def stop(self) -> None:
        stopper = self.box.get("stop")
        if stopper:
            stopper()
        self.thread.join(15)


class Procrastinate:
    name = "procrastinate"
    module = "procrastinate"
    dist = "procrastinate"
    cancel_variants = ("async task", "sync task")
    how_unique = "queueing_lock (unique among 'todo' jobs only)"
    how_lane = "lock (one 'doing' job per lock value, in SQL)"
    how_retry = (
        "none by itself: the job stays 'doing' (its lock held); the app must run"
        " get_stalled_jobs()+retry_job() (heartbeat 10 s, stalled after 30 s)"
    )
    how_cancel = "cancel_job_by_id(abort=True): NOTIFY; async task is cancelled, sync must poll"

    def __init__(self, conninfo: str):
        self.conninfo = conninfo
        self._sync = None

    def app(self, **pool: Any):
        import procrastinate

        app = procrastinate.App(
            connector=procrastinate.PsycopgConnector(conninfo=self.conninfo, **pool)
        )
        conninfo = self.conninfo

        @app.task(name="bench_async", pass_context=True)
        async def bench_async(context, kind: str, a: dict) -> None:
            await async_body(kind, a, conninfo)

        @app.task(name="bench_sync", pass_context=True)
        def bench_sync(context, kind: str, a: dict) -> None:
            sync_body(kind, a, conninfo, should_abort=context.should_abort)

        return app

    def install(self) -> None:
        app = self.app()
        with app.open():
            app.schema_manager.apply_schema()

    def sync_app(self):
        if self._sync is None:
            self._sync = self.app(kwargs={"application_name": "bench-enqueue"}).open()
        return self._sync

    def enqueue(self, kind: str, a: dict, *, key: str | None = None, lane: str | None = LANE,
                variant: str = "", app: Any = None) -> int | None:  # fmt: skip
        import procrastinate.exceptions as pe

        app = app or self.sync_app()
        task = "bench_sync" if variant == "sync task" else "bench_async"
        try:
            return app.configure_task(task, lock=lane, queueing_lock=key).defer(kind=kind, a=a)
        except pe.AlreadyEnqueued:
            return None

    def racer(self):
        app = self.app(min_size=1, max_size=1, kwargs={"application_name": "bench-enqueue"})
        app.open()
        return app, lambda: app.close()

    def race_enqueue(self, racer: Any, kind: str, a: dict, key: str) -> int | None:
        return self.enqueue(kind, a, key=key, app=racer)

    PURGE_SQL = "DELETE FROM procrastinate_jobs WHERE status = 'todo'"
    DONE_SQL = (
        "SELECT status::text IN ('succeeded', 'failed', 'cancelled', 'aborted'), status::text"
        " FROM procrastinate_jobs WHERE id = %s"
    )

    def worker_main(self, concurrency: int = 1, install_signal_handlers: bool = True):
        app = self.app()

        async def main(ready: threading.Event, box: dict) -> None:
            async with app.open_async():
                loop = asyncio.get_running_loop()
                task = asyncio.create_task(
                    app.run_worker_async(
                        concurrency=concurrency, install_signal_handlers=install_signal_handlers
                    )
                )
                box["stop"] = lambda: loop.call_soon_threadsafe(task.cancel)
                box["loop"] = loop
                ready.set()
                try:
                    await task
                except asyncio.CancelledError:
                    pass

        return main

    def cancel(self, job_id: int) -> None:
        self.sync_app().job_manager.cancel_job_by_id(job_id, abort=True)

    def recovery(self) -> Thread:
        """What the app must add to get a killed worker's job back: a loop (or a periodic
        task) retrying the jobs of workers whose heartbeat is older than 30 s."""
        app = self.app(min_size=1, max_size=2)

        async def main(ready: threading.Event, box: dict) -> None:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            box["stop"] = lambda: loop.call_soon_threadsafe(stop.set)
            async with app.open_async():
                ready.set()
                while not stop.is_set():
                    for job in await app.job_manager.get_stalled_jobs():
                        await app.job_manager.retry_job(job)
                    try:
                        await asyncio.wait_for(stop.wait(), 1.0)
                    except TimeoutError:
                        pass

        return Thread(main)

    def close(self) -> None:
        if self._sync is not None:
            self._sync.close()


class PgQueuer:
    name = "pgqueuer"
    module = "pgqueuer"
    dist = "pgqueuer"
    cancel_variants = ("async job", "sync job in a thread")
    how_unique = "dedupe_key (unique among 'queued' and 'picked')"
    how_lane = "one entrypoint per lane with concurrency_limit=1 (in SQL)"
    how_retry = (
        "automatic: a 'picked' job whose heartbeat is older than heartbeat_timeout (30 s)"
        " is picked again by any worker's next dequeue"
    )
    how_cancel = (
        "Queries.mark_job_as_cancelled: deletes the row (frees the lane) and NOTIFYs; the job"
        " stops only if it runs inside ctx.cancellation"
    )

    def __init__(self, conninfo: str):
        self.conninfo = conninfo
        self._conn: psycopg.Connection | None = None

    def _sync(self):
        from pgqueuer.adapters.drivers.psycopg import SyncPsycopgDriver
        from pgqueuer.adapters.persistence.queries import SyncQueries

        if self._conn is None:
            self._conn = psycopg.connect(
                self.conninfo, autocommit=True, application_name="bench-enqueue"
            )
        return SyncQueries(SyncPsycopgDriver(self._conn))

    def _run_async(self, fn: Callable[[Any], Any]) -> Any:
        from pgqueuer import PsycopgDriver, Queries

        async def go():
            async with await psycopg.AsyncConnection.connect(
                self.conninfo, autocommit=True, application_name="bench-admin"
            ) as c:
                return await fn(Queries(PsycopgDriver(c)))

        return asyncio.run(go())

    def install(self) -> None:
        self._run_async(lambda q: q.install())

    def enqueue(self, kind: str, a: dict, *, key: str | None = None, lane: str | None = LANE,
                variant: str = "", queries: Any = None) -> int | None:  # fmt: skip
        from pgqueuer.domain.errors import DuplicateJobError

        payload = json.dumps({"kind": kind, "a": a, "variant": variant}).encode()
        entrypoint = f"lane_{lane}" if lane else "free"
        try:
            ids = (queries or self._sync()).enqueue(entrypoint, payload, dedupe_key=key)
        except DuplicateJobError:
            return None
        return int(ids[0])

    def racer(self):
        from pgqueuer.adapters.drivers.psycopg import SyncPsycopgDriver
        from pgqueuer.adapters.persistence.queries import SyncQueries

        c = psycopg.connect(self.conninfo, autocommit=True, application_name="bench-enqueue")
        return SyncQueries(SyncPsycopgDriver(c)), c.close

    def race_enqueue(self, racer: Any, kind: str, a: dict, key: str) -> int | None:
        return self.enqueue(kind, a, key=key, queries=racer)

    PURGE_SQL = "DELETE FROM pgqueuer WHERE status = 'queued'"
    # a job is done when its row has left the queue table (it moves to pgqueuer_log)
    DONE_SQL = (
        "SELECT NOT EXISTS (SELECT 1 FROM pgqueuer WHERE id = %(id)s), (SELECT"
        " string_agg(status::text, ',') FROM pgqueuer_log WHERE job_id = %(id)s)"
    )

    def queue_manager(self, driver):
        from pgqueuer import Queries, QueueManager
        from pgqueuer.domain.models import Context

        qm = QueueManager(Queries(driver))
        conninfo = self.conninfo

        async def run(job, ctx: Context) -> None:
            p = json.loads(job.payload)
            with ctx.cancellation:
                if p["variant"] == "sync job in a thread":
                    await asyncio.to_thread(sync_body, p["kind"], p["a"], conninfo)
                else:
                    await async_body(p["kind"], p["a"], conninfo)

        qm.entrypoint(f"lane_{LANE}", concurrency_limit=1, accepts_context=True)(run)
        qm.entrypoint("free", accepts_context=True)(run)
        return qm

    def worker_main(self, concurrency: int = 1, install_signal_handlers: bool = False):
        from pgqueuer import PsycopgDriver

        async def main(ready: threading.Event, box: dict) -> None:
            async with await psycopg.AsyncConnection.connect(self.conninfo, autocommit=True) as c:
                qm = self.queue_manager(PsycopgDriver(c))
                loop = asyncio.get_running_loop()
                box["stop"] = lambda: loop.call_soon_threadsafe(qm.shutdown.set)
                if install_signal_handlers:
                    for s in (signal.SIGINT, signal.SIGTERM):
                        loop.add_signal_handler(s, qm.shutdown.set)
                task = asyncio.create_task(qm.run())
                ready.set()
                await task

        return main

    def cancel(self, job_id: int) -> None:
        from pgqueuer.models import JobId

        self._run_async(lambda q: q.mark_job_as_cancelled([JobId(job_id)]))

    def recovery(self) -> None:
        return None

    def supervisor_in_thread(self) -> str:
        """pgqueuer's own runner (`pgqueuer.run`, as `pgq run` uses) started off the main
        thread: does it start?"""
        from pgqueuer import PsycopgDriver
        from pgqueuer.adapters.cli.supervisor import run

        result: dict = {}

        def target() -> None:
            async def go():
                async with await psycopg.AsyncConnection.connect(
                    self.conninfo, autocommit=True
                ) as c:
                    from contextlib import asynccontextmanager

                    @asynccontextmanager
                    async def factory():
                        yield self.queue_manager(PsycopgDriver(c))

                    from pgqueuer.domain.types import QueueExecutionMode

                    await asyncio.wait_for(run(factory, mode=QueueExecutionMode.drain), 10)

            try:
                asyncio.run(go())
                result["r"] = "starts"
            except BaseException as e:  # noqa: BLE001
                result["r"] = f"fails: {type(e).__name__}: {str(e)[:60]}"

        t = threading.Thread(target=target, daemon=True)
        t.start()
        t.join(15)
        return result.get("r", "did not return in 15 s")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()


class Lab:
    name = "lab (lib/core/jobs.py)"
    module = "lib.core.jobs"
    dist = None
    cancel_variants = ("sync job",)
    how_unique = "unique index on (kind, key) among live jobs; request() returns the live job"
    how_lane = "session advisory lock per lane"
    how_retry = (
        "the lane's advisory lock dies with the connection; the next worker to take the lane"
        " requeues the job (MAX_ATTEMPTS=3)"
    )
    how_cancel = "jobs.cancel: flag checked at each step + pg_cancel_backend(ctx's backend)"

    def __init__(self, conninfo: str):
        self.conninfo = conninfo
        self._db = None

    @staticmethod
    def jobs():
        sys.path.insert(0, str(ROOT))
        from lib.core import jobs

        if "bench_noop" not in jobs.kinds():
            for kind in ("noop", "span", "kill", "sleep"):

                def run(ctx, kind=kind) -> None:
                    a = dict(ctx.job.key)
                    sync_body(kind, a, ctx.db.conninfo, backend=ctx.backend)

                jobs.register(f"bench_{kind}", run)
        return jobs

    def db(self):
        if self._db is None:
            from lib.core.database import open_database

            self._db = open_database(self.conninfo)
        return self._db

    def prepare(self) -> None:
        self.jobs()
        self.db()

    def install(self) -> None:
        self.jobs().ensure_table(self.db())

    def enqueue(self, kind: str, a: dict, *, key: str | None = None, lane: str | None = LANE,
                variant: str = "", db: Any = None) -> int | None:  # fmt: skip
        k = dict(a, k=key) if key else dict(a)
        job = self.jobs().request(db or self.db(), f"bench_{kind}", k, lane or LANE)
        return job.id

    def racer(self):
        from lib.core.database import open_database

        db = open_database(self.conninfo)
        return db, db.close

    def race_enqueue(self, racer: Any, kind: str, a: dict, key: str) -> int | None:
        return self.enqueue(kind, a, key=key, db=racer)

    PURGE_SQL = "UPDATE lab_jobs SET state = 'cancelled' WHERE state = 'queued'"
    DONE_SQL = "SELECT state IN ('done', 'failed', 'cancelled'), state FROM lab_jobs WHERE id = %s"

    def worker_main(self, concurrency: int = 1, install_signal_handlers: bool = False):
        jobs = self.jobs()
        db = self.db()

        async def main(ready: threading.Event, box: dict) -> None:
            # The lab's worker is threads, not a loop: this only starts it and waits.
            w = jobs.Worker(db, lanes=(LANE,))
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            box["stop"] = lambda: loop.call_soon_threadsafe(stop.set)
            ready.set()
            await stop.wait()
            await asyncio.to_thread(w.stop)

        return main

    def cancel(self, job_id: int) -> None:
        self.jobs().cancel(self.db(), job_id)

    def recovery(self) -> None:
        return None

    def close(self) -> None:
        if self._db is not None:
            self._db.close()


ADAPTERS = {"procrastinate": Procrastinate, "pgqueuer": PgQueuer, "lab": Lab}


def importable(name: str) -> tuple[bool, str]:
    try:
        if name == "lab":
            Lab.jobs()
            from lib.core.database import open_database  # noqa: F401
        else:
            __import__(name)
        return True, ""
    except Exception as e:  # noqa: BLE001
        return False, f"{type(e).__name__}: {e}"


# ---------------------------------------------------------------------------------------------
# Helpers


def probe(conninfo: str) -> psycopg.Connection:
    return psycopg.connect(conninfo, autocommit=True, application_name="bench-probe")


def wait_for(check: Callable[[], Any], timeout: float, interval: float = 0.002) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(interval)
    return None


def done_check(p: psycopg.Connection, adapter: Any, job_id: int) -> Callable[[], Any]:
    sql = adapter.DONE_SQL
    params: Any = {"id": job_id} if "%(id)s" in sql else (job_id,)

    def check():
        row = p.execute(sql, params).fetchone()
        return row if row and row[0] else None

    return check


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def max_overlap(spans: list[tuple[float, float]]) -> int:
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    best = cur = 0
    for _, d in events:
        cur += d
        best = max(best, cur)
    return best


def marks(p: psycopg.Connection, test: str, note: str | None = None) -> list[tuple]:
    return p.execute(
        "SELECT job, pid, backend, started, ended, note FROM bench_marks WHERE test = %s"
        " AND (%s::text IS NULL OR note = %s) ORDER BY id",
        (test, note, note),
    ).fetchall()


def statement_running(p: psycopg.Connection, backend: int) -> bool:
    row = p.execute(
        "SELECT 1 FROM pg_stat_activity WHERE pid = %s AND state = 'active'"
        " AND query LIKE 'SELECT pg_sleep%%'",
        (backend,),
    ).fetchone()
    return row is not None


def connections(p: psycopg.Connection) -> int:
    row = p.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
        " AND backend_type = 'client backend' AND application_name NOT LIKE 'bench-%%'"
    ).fetchone()
    return int(row[0])


def import_seconds(module: str) -> float:
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    runs = []
    for _ in range(3):
        out = subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
        )
        runs.append(float(out.stdout.strip().splitlines()[-1]))
    return statistics.median(runs)


def footprint(dist: str | None) -> dict:
    """The distribution and its requirements (without extras), as installed: count and size."""
    if dist is None:
        return {"deps": "none new", "size_mb": 0.0}
    from importlib import metadata

    seen: dict[str, int] = {}
    todo = [dist]
    while todo:
        name = todo.pop()
        key = re.sub(r"[-_.]+", "-", name).lower()
        if key in seen:
            continue
        try:
            d = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        seen[key] = sum((f.size or 0) for f in (d.files or ()))
        for req in d.requires or ():
            if "extra ==" in req:
                continue
            m = re.match(r"[A-Za-z0-9._-]+", req)
            if m:
                todo.append(m.group(0))
    base = {"psycopg", "psycopg-binary", "psycopg-pool", "typing-extensions"}
    extra = {k: v for k, v in seen.items() if k not in base}
    return {
        "deps": ", ".join(sorted(k for k in extra if k != dist)),
        "size_mb": round(sum(extra.values()) / 1e6, 1),
    }


def fresh_database(base: str, name: str) -> str:
    with psycopg.connect(base, autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        c.execute(f'CREATE DATABASE "{name}"')
    conninfo = make_conninfo(base, dbname=name)
    with psycopg.connect(conninfo, autocommit=True) as c:
        c.execute(MARKS)
    return conninfo


def drop_database(base: str, name: str) -> None:
    with psycopg.connect(base, autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# ---------------------------------------------------------------------------------------------
# Worker processes (the lane and kill measures)


def worker_process(lib: str, conninfo: str, concurrency: int, seconds: float) -> None:
    adapter = ADAPTERS[lib](conninfo)
    main = adapter.worker_main(concurrency=concurrency, install_signal_handlers=True)
    box: dict = {}
    ready = threading.Event()

    async def bounded() -> None:
        task = asyncio.create_task(main(ready, box))
        while not ready.is_set() and not task.done():
            await asyncio.sleep(0.01)
        print("ready", flush=True)
        try:
            await asyncio.wait_for(asyncio.shield(task), seconds)
        except TimeoutError:
            box["stop"]()
            await asyncio.wait_for(task, 15)

    if lib == "lab":

        async def lab_bounded() -> None:
            loop = asyncio.get_running_loop()
            task = asyncio.create_task(main(ready, box))
            while not ready.is_set():
                await asyncio.sleep(0.01)
            print("ready", flush=True)
            done = asyncio.Event()
            loop.add_signal_handler(signal.SIGTERM, done.set)
            try:
                await asyncio.wait_for(done.wait(), seconds)
            except TimeoutError:
                pass
            box["stop"]()
            await asyncio.wait_for(task, 15)

        asyncio.run(lab_bounded())
    else:
        asyncio.run(bounded())


class Procs:
    def __init__(self, lib: str, conninfo: str, n: int, concurrency: int, seconds: float = 150):
        self.procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    __file__,
                    "--role",
                    "worker",
                    "--lib",
                    lib,
                    "--conninfo",
                    conninfo,
                    "--concurrency",
                    str(concurrency),
                    "--seconds",
                    str(seconds),
                ],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )  # fmt: skip
            for _ in range(n)
        ]
        for p in self.procs:
            line = p.stdout.readline() if p.stdout else ""
            if "ready" not in line:
                raise RuntimeError(f"a {lib} worker process did not start")
        time.sleep(1.0)  # registered, listening, polled once

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)


# ---------------------------------------------------------------------------------------------
# The measures


def measure(lib: str, base: str, keep: bool) -> dict:
    cls = ADAPTERS[lib]
    dbname = f"bench_queue_{lib}"
    conninfo = fresh_database(base, dbname)
    adapter = cls(conninfo)
    r: dict[str, Any] = {"library": cls.name}
    try:
        if cls.dist:
            from importlib import metadata

            r["version"] = metadata.version(cls.dist)
        else:
            r["version"] = "this repo"
        r.update(footprint(cls.dist))
        r["import_s"] = import_seconds(cls.module)
        getattr(adapter, "prepare", lambda: None)()
        t = time.perf_counter()
        adapter.install()
        r["schema_s"] = time.perf_counter() - t
        in_process(adapter, conninfo, r)
        lanes(adapter, lib, conninfo, r)
        killed(adapter, lib, conninfo, r)
        r["unique_how"] = cls.how_unique
        r["lane_how"] = cls.how_lane
        r["retry_how"] = cls.how_retry
        r["cancel_how"] = cls.how_cancel
    finally:
        adapter.close()
        if not keep:
            drop_database(base, dbname)
    return r


def in_process(adapter: Any, conninfo: str, r: dict) -> None:
    """The worker in a daemon thread with a loop of its own; the main thread runs an asyncio
    loop (Streamlit's server does) and measures how late its ticks are."""
    warnings: list[str] = []

    class Catch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.levelno >= logging.WARNING:
                warnings.append(record.getMessage()[:80])

    handler = Catch()
    logging.getLogger().addHandler(handler)
    logging.getLogger().setLevel(logging.WARNING)
    lags: list[tuple[float, float]] = []
    stop = threading.Event()

    async def host() -> None:
        loop = asyncio.get_running_loop()
        before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        loop_handlers_before = dict(getattr(loop, "_signal_handlers", {}))

        async def ticker() -> None:
            while not stop.is_set():
                t = loop.time()
                await asyncio.sleep(0.005)
                lags.append((time.monotonic(), loop.time() - t - 0.005))

        tick = asyncio.create_task(ticker())
        try:
            await loop.run_in_executor(None, sequence, adapter, conninfo, r, lags)
        finally:
            stop.set()
            await tick
        after = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        loop_handlers_after = dict(getattr(loop, "_signal_handlers", {}))
        r["signals_touched"] = (
            "no" if before == after and loop_handlers_before == loop_handlers_after else "YES"
        )

    asyncio.run(host())
    logging.getLogger().removeHandler(handler)
    r["worker_warnings"] = sorted(set(warnings))[:3]


def sequence(adapter: Any, conninfo: str, r: dict, lags: list) -> None:
    p = probe(conninfo)
    # first start: a job waits; start the worker; until it is done
    first = adapter.enqueue("noop", {"test": "first", "job": "0"}, key="first")
    t0 = time.perf_counter()
    worker = Thread(adapter.worker_main())
    r["thread_ok"] = "yes" if worker.error is None else f"no: {worker.error!r}"[:80]
    if worker.error is not None:
        return
    ok = wait_for(done_check(p, adapter, first), 30)
    r["first_job_s"] = time.perf_counter() - t0 if ok else None
    time.sleep(1.5)
    r["connections_idle"] = connections(p)

    # latency, one job at a time
    lat: list[float] = []
    deadline = time.monotonic() + MAX_SECTION_S
    for i in range(N_JOBS):
        if time.monotonic() > deadline:
            break
        t = time.perf_counter()
        job = adapter.enqueue("noop", {"test": "lat", "job": str(i)}, key=f"lat{i}")
        if not wait_for(done_check(p, adapter, job), 30, 0.001):
            break
        lat.append(time.perf_counter() - t)
    r["latency_n"] = len(lat)
    if lat:
        r["p50_ms"] = 1000 * statistics.median(lat)
        r["p95_ms"] = 1000 * pct(lat, 0.95)

    # throughput: 200 queued at once
    t = time.perf_counter()
    m0 = time.monotonic()
    ids = [adapter.enqueue("noop", {"test": "thr", "job": str(i)}, key=f"thr{i}")
           for i in range(N_JOBS)]  # fmt: skip
    r["enqueue_ms"] = 1000 * (time.perf_counter() - t) / N_JOBS
    wait_for(lambda: done_check(p, adapter, ids[-1])(), MAX_SECTION_S, 0.01)
    wait_for(lambda: all(done_check(p, adapter, j)() for j in ids), 10, 0.05)
    finished = sum(1 for j in ids if done_check(p, adapter, j)())
    r["throughput_per_s"] = finished / (time.perf_counter() - t)
    if finished < N_JOBS:
        r["throughput_note"] = f"{finished} of {N_JOBS} done in {MAX_SECTION_S:.0f} s"
        p.execute(adapter.PURGE_SQL)  # the rest would hold the lane for the next measures
    m1 = time.monotonic()
    window = [lag for (at, lag) in lags if m0 <= at <= m1]
    if window:
        r["host_lag_p99_ms"] = 1000 * pct(window, 0.99)
        r["host_lag_max_ms"] = 1000 * max(window)
        r["host_ticks"] = len(window)

    # one live job per key: 30 at once while nothing of it runs, then 30 while it runs
    racers = [adapter.racer() for _ in range(30)]
    try:
        seen: set[int] = set()
        for label in ("dedupe_idle", "dedupe_running"):
            barrier = threading.Barrier(30)
            got: list[Any] = []
            a = {"test": "dedupe", "job": "same", "seconds": 3.0}

            def one(
                racer: Any, a: dict = a, barrier: threading.Barrier = barrier, got: list = got
            ) -> None:
                try:
                    barrier.wait(10)
                    got.append(adapter.race_enqueue(racer, "span", a, "same-key"))
                except Exception as e:  # noqa: BLE001
                    got.append(f"error {type(e).__name__}: {e}"[:60])

            threads = [threading.Thread(target=one, args=(rc[0],)) for rc in racers]
            for th in threads:
                th.start()
            for th in threads:
                th.join(30)
            new = {g for g in got if isinstance(g, int)} - seen
            errors = sorted({g for g in got if isinstance(g, str)})
            r[label] = (
                len(new)
                if not errors
                else f"{len(new)} ({len(errors)} kinds of error: {errors[0]})"
            )
            seen |= new
            time.sleep(1.0)  # the 3 s job runs now
        wait_for(lambda: len(marks(p, "dedupe", "span")) >= len(seen), 15, 0.05)
    finally:
        for _, close in racers:
            try:
                close()
            except Exception:  # noqa: BLE001
                pass

    # cancel a job inside SELECT pg_sleep(30); the next job of its lane waits behind it
    for variant in adapter.cancel_variants:
        res = cancel_one(adapter, p, variant)
        r[f"cancel[{variant}]"] = res

    t = time.perf_counter()
    worker.stop()
    r["stop_s"] = time.perf_counter() - t
    p.close()


def cancel_one(adapter: Any, p: psycopg.Connection, variant: str) -> dict:
    test = f"cancel-{variant}"
    a = {"test": test, "job": "long", "seconds": SLEEP_S}
    job = adapter.enqueue("sleep", a, key=test, variant=variant)
    nxt = adapter.enqueue("span", {"test": test, "job": "next", "seconds": 0.05},
                          key=test + "-next", variant=variant)  # fmt: skip
    started = wait_for(lambda: marks(p, test, "start"), 30, 0.01)
    if not started:
        return {"error": "the long job did not start"}
    backend = started[0][2]
    wait_for(lambda: statement_running(p, backend), 5, 0.005)
    time.sleep(0.5)
    t0 = time.time()
    adapter.cancel(job)
    stopped = wait_for(lambda: not statement_running(p, backend), SLEEP_S + 5, 0.005)
    t_stop = time.time()
    ended = wait_for(done_check(p, adapter, job), 10, 0.01)
    t_end = time.time()
    nx = wait_for(lambda: marks(p, test, "span"), 10, 0.01)
    out = {
        "statement_stopped_s": round(t_stop - t0, 3) if stopped else None,
        "job_state": ended[1] if ended else "still running",
        "job_ended_s": round(t_end - t0, 3) if ended else None,
    }
    if nx:
        out["next_started_before_stop"] = bool(nx[0][3] < t_stop - 0.001)
    else:
        out["next_started_before_stop"] = "next did not run in 10 s"
    wait_for(lambda: marks(p, test, "end"), SLEEP_S + 5, 0.05)
    if nxt is not None:
        wait_for(done_check(p, adapter, nxt), 10, 0.05)
    return out


def lanes(adapter: Any, lib: str, conninfo: str, r: dict) -> None:
    p = probe(conninfo)
    procs = Procs(lib, conninfo, n=2, concurrency=2)
    try:
        for label, lane in (("lane_max_conc", LANE), ("control_no_lane", None)):
            if lane is None and lib == "lab":
                r[label] = "n/a (every job has a lane)"
                continue
            test = f"lane-{label}"
            t0 = time.time()
            for i in range(10):
                adapter.enqueue("span", {"test": test, "job": str(i), "seconds": 0.2},
                                key=f"{test}{i}", lane=lane)  # fmt: skip

            def all_ten(test: str = test) -> list[tuple] | None:
                m = marks(p, test, "span")
                return m if len(m) >= 10 else None

            spans = wait_for(all_ten, 90, 0.05)
            if not spans:
                r[label] = f"only {len(marks(p, test, 'span'))} of 10 ran in 90 s"
                continue
            pids = {s[1] for s in spans}
            r[label] = max_overlap([(s[3], s[4]) for s in spans])
            r[label + "_procs"] = len(pids)
            r[label + "_wall_s"] = max(s[4] for s in spans) - t0
    finally:
        procs.stop()
        p.close()


def killed(adapter: Any, lib: str, conninfo: str, r: dict) -> None:
    p = probe(conninfo)
    procs = Procs(lib, conninfo, n=2, concurrency=1)
    recovery = adapter.recovery()
    try:
        a = {"test": "kill", "job": "k", "seconds": SLEEP_S}
        job = adapter.enqueue("kill", a, key="kill")
        first = wait_for(lambda: marks(p, "kill", "start"), 30, 0.01)
        if not first:
            r["kill"] = {"error": "the job did not start"}
            return
        pid, backend = first[0][1], first[0][2]
        wait_for(lambda: statement_running(p, backend), 5, 0.005)
        time.sleep(0.5)
        t_kill = time.time()
        os.kill(pid, signal.SIGKILL)
        orphan_end = None
        retry = None
        deadline = time.monotonic() + 80
        while time.monotonic() < deadline:
            now = time.time()
            if orphan_end is None and not statement_running(p, backend):
                orphan_end = now
            if retry is None:
                again = marks(p, "kill", "start")
                if len(again) >= 2:
                    retry = again[1][3]
            if retry is not None and orphan_end is not None:
                break
            time.sleep(0.02)
        done = wait_for(done_check(p, adapter, job), 10, 0.02) if retry else None
        r["kill"] = {
            "retried_after_s": round(retry - t_kill, 2) if retry else "not in 80 s",
            "killed_statement_ran_s": round(orphan_end - t_kill, 2) if orphan_end else "> 80 s",
            "retry_while_killed_statement_ran": (
                bool(retry < orphan_end) if retry and orphan_end else None
            ),
            "final_state": done[1] if done else None,
        }
    finally:
        if recovery is not None:
            recovery.stop()
        procs.stop()
        p.close()


# ---------------------------------------------------------------------------------------------
# The table


def fmt(v: Any, unit: str = "") -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.3g}{unit}" if v < 100 else f"{v:,.0f}{unit}"
    return f"{v}{unit}"


ROWS: list[tuple[str, Callable[[dict], str]]] = [
    ("version", lambda r: fmt(r.get("version"))),
    ("installed beside psycopg (MB)", lambda r: fmt(r.get("size_mb"))),
    (
        "new distributions",
        lambda r: fmt(
            len(r["deps"].split(", ")) if r.get("deps") and r["deps"] != "none new" else 0
        ),
    ),  # fmt: skip
    ("import (s, fresh interpreter)", lambda r: fmt(r.get("import_s"))),
    ("schema install (s)", lambda r: fmt(r.get("schema_s"))),
    ("worker start -> first job done (s)", lambda r: fmt(r.get("first_job_s"))),
    (
        "no-op job enqueue->done p50 (ms)",
        lambda r: (
            fmt(r.get("p50_ms"))
            + (f" (n={r['latency_n']})" if r.get("latency_n", N_JOBS) < N_JOBS else "")
        ),
    ),
    ("no-op job enqueue->done p95 (ms)", lambda r: fmt(r.get("p95_ms"))),
    ("enqueue, one call (ms)", lambda r: fmt(r.get("enqueue_ms"))),
    (
        "200 no-op jobs, throughput (/s)",
        lambda r: (
            fmt(r.get("throughput_per_s"))
            + (f" ({r['throughput_note']})" if r.get("throughput_note") else "")
        ),
    ),
    (
        "host asyncio loop lag p99 / max (ms)",
        lambda r: f"{fmt(r.get('host_lag_p99_ms'))} / {fmt(r.get('host_lag_max_ms'))}",
    ),
    ("worker in a daemon thread", lambda r: fmt(r.get("thread_ok"))),
    ("signal handlers touched", lambda r: fmt(r.get("signals_touched"))),
    ("connections held by an idle worker", lambda r: fmt(r.get("connections_idle"))),
    ("30 same-key enqueues -> jobs", lambda r: fmt(r.get("dedupe_idle"))),
    ("... again while it runs -> new jobs", lambda r: fmt(r.get("dedupe_running"))),
    (
        "lane, 2 procs x 10 jobs: max concurrent",
        lambda r: (
            f"{fmt(r.get('lane_max_conc'))} ({fmt(r.get('lane_max_conc_procs'))} procs,"
            f" {fmt(r.get('lane_max_conc_wall_s'))} s)"
        ),
    ),
    ("  control, no lane: max concurrent", lambda r: fmt(r.get("control_no_lane"))),
    ("SIGKILL mid-job: retried after (s)", lambda r: fmt(r.get("kill", {}).get("retried_after_s"))),
    (
        "  killed statement ran on for (s)",
        lambda r: fmt(r.get("kill", {}).get("killed_statement_ran_s")),
    ),
    (
        "  retry overlapped the killed statement",
        lambda r: fmt(r.get("kill", {}).get("retry_while_killed_statement_ran")),
    ),
]


def cancel_rows(results: list[dict]) -> list[tuple[str, list[str]]]:
    rows = []
    for i in range(2):
        cells_stop, cells_next, names = [], [], []
        for r in results:
            variants = [k for k in r if k.startswith("cancel[")]
            if i < len(variants):
                c = r[variants[i]]
                names.append(variants[i][7:-1])
                cells_stop.append(
                    f"{fmt(c.get('statement_stopped_s'))} s ({c.get('job_state')})"
                    if "error" not in c
                    else c["error"]
                )
                cells_next.append(fmt(c.get("next_started_before_stop")))
            else:
                names.append("")
                cells_stop.append("")
                cells_next.append("")
        if any(names):
            rows.append((f"cancel in pg_sleep({SLEEP_S}) [{' / '.join(n or '-' for n in names)}]:"
                         " statement stopped after", cells_stop))  # fmt: skip
            rows.append(("  next job of the lane began before it stopped", cells_next))
    return rows


def table(results: list[dict]) -> str:
    head = ["measure"] + [r["library"] for r in results]
    body = [[name] + [f(r) for r in results] for name, f in ROWS]
    body += [[name] + cells for name, cells in cancel_rows(results)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    notes = []
    for r in results:
        notes.append(f"- {r['library']}: new distributions: {r.get('deps') or 'none'}")
        for k in ("unique_how", "lane_how", "retry_how", "cancel_how"):
            if r.get(k):
                notes.append(f"  - {k[:-4]}: {r[k]}")
        if r.get("worker_warnings"):
            notes.append(f"  - warnings while its worker ran: {r['worker_warnings']}")
        if r.get("supervisor_in_thread"):
            notes.append(f"  - its runner (pgqueuer.run) in a thread: {r['supervisor_in_thread']}")
    return "\n".join(lines + [""] + notes)


def default_url() -> str:
    url = os.environ.get("DATABASE_URL")
    if url:
        return url
    sys.path.insert(0, str(ROOT))
    from lib.core.database import start_embedded

    return start_embedded()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", help="server (default: DATABASE_URL or the embedded one)")
    ap.add_argument("--libs", default="procrastinate,pgqueuer,lab")
    ap.add_argument(
        "--also",
        action="append",
        default=[],
        metavar="PYTHON",
        help="another interpreter measuring the libraries this one cannot import",
    )
    ap.add_argument("--keep", action="store_true", help="keep the bench databases")
    ap.add_argument("--quick", action="store_true", help="20 jobs and 8 s statements (a check)")
    ap.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--role", default="main", help=argparse.SUPPRESS)
    ap.add_argument("--lib", help=argparse.SUPPRESS)
    ap.add_argument("--conninfo", help=argparse.SUPPRESS)
    ap.add_argument("--concurrency", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--seconds", type=float, default=150, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.role == "worker":
        worker_process(args.lib, args.conninfo, args.concurrency, args.seconds)
        return
    if args.quick:
        global N_JOBS, SLEEP_S
        N_JOBS, SLEEP_S = 20, 8
    url = args.url or default_url()
    base = make_conninfo(url)
    if "dbname" not in conninfo_to_dict(base):
        base = make_conninfo(base, dbname="postgres")
    wanted = [x for x in args.libs.split(",") if x]
    results: dict[str, dict] = {}
    skipped: list[str] = []
    for lib in wanted:
        ok, why = importable(lib)
        if not ok:
            hint = ("run from the repo with .venv/bin/python" if lib == "lab"
                    else f"pip install {lib} (or --also a python that has it)")  # fmt: skip
            skipped.append(lib)
            print(f"skipping {lib}: not importable here ({why[:60]}); {hint}", file=sys.stderr)
            continue
        print(f"measuring {lib} ...", file=sys.stderr, flush=True)
        results[lib] = measure(lib, base, args.keep)
        if lib == "pgqueuer":
            conninfo = fresh_database(base, "bench_queue_pgq_runner")
            try:
                pq = PgQueuer(conninfo)
                pq.install()
                results[lib]["supervisor_in_thread"] = pq.supervisor_in_thread()
            finally:
                drop_database(base, "bench_queue_pgq_runner")
    for python in args.also:
        rest = [lib for lib in skipped if lib not in results]
        if not rest:
            break
        out = subprocess.run(
            [python, __file__, "--url", url, "--libs", ",".join(rest), "--json"]
            + (["--keep"] if args.keep else []) + (["--quick"] if args.quick else []),
            cwd=ROOT, capture_output=True, text=True, timeout=1800,
        )  # fmt: skip
        sys.stderr.write(out.stderr)
        for line in out.stdout.splitlines():
            if line.startswith(TAG):
                results.update(json.loads(line[len(TAG) :]))
    if args.json:
        print(TAG + json.dumps(results, default=str))
        return
    order = [lib for lib in ("procrastinate", "pgqueuer", "lab") if lib in results]
    if not order:
        print("nothing measured")
        return
    print(table([results[lib] for lib in order]))
    cpus = os.cpu_count()
    load = os.getloadavg()[0]
    print(f"\n{cpus} cores; load average {load:.1f} at the end; {sys.version.split()[0]}")


if __name__ == "__main__":
    main()
