"""A workshop's instance: several app processes on one database, sharing the heavy work."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from contextlib import ExitStack

import psutil
import psycopg
import pytest
from browser_util import exceptions, open_page, wait_connected, wait_for_run
from conftest import PROJECT_DIR, free_port, own_server, serve_app, short_tmp_dir, with_extension
from psycopg.conninfo import make_conninfo
from relay import Relay

from lib.core.lab_schema import lab_conninfo

pytestmark = [pytest.mark.browser, pytest.mark.db]

RECALL_MEASURED = "Ground truth: 100 exact scans run at"


@pytest.fixture
def fresh_database(pg_url):
    """A new, empty database on the test server (the recall tables are not built there)."""
    name = f"lab_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = make_conninfo(pg_url, dbname=name)
    with_extension(url)
    yield url
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def test_two_app_processes_asking_for_the_same_new_size_run_one_build(
    fresh_database, browser, tmp_path
):
    with ExitStack() as stack:
        urls = [
            stack.enter_context(serve_app(tmp_path / f"app{i}.log", DATABASE_URL=fresh_database))
            for i in range(2)
        ]
        contexts = [browser.new_context(viewport={"width": 1400, "height": 1000}) for _ in urls]
        pages = [c.new_page() for c in contexts]
        for page, url in zip(pages, urls, strict=True):  # both ask before either is done
            page.goto(f"{url}/Recall_at_scale", wait_until="commit")
        texts = []
        for page in pages:
            page.get_by_text(RECALL_MEASURED).wait_for(timeout=180_000)
            wait_for_run(page)
            assert exceptions(page) == []
            texts.append(page.locator('[data-testid="stMain"]').inner_text())
        for c in contexts:
            c.close()

    with psycopg.connect(lab_conninfo(fresh_database)) as conn:  # as `make psql` connects
        ran = conn.execute(
            "SELECT count(*) FILTER (WHERE (facts ->> 'loaded')::boolean),"
            " count(*) FILTER (WHERE (facts ->> 'indexed')::boolean),"
            " count(*) FILTER (WHERE (facts ->> 'truth_computed')::boolean),"
            " count(DISTINCT worker) FROM lab_jobs WHERE kind = 'size' AND key ->> 'n' = '500'"
        ).fetchone()
        truths = conn.execute("SELECT ran_at FROM recall_truths").fetchall()
    assert ran[:3] == (1, 1, 1)  # one load, one index build, one ground truth: by one worker
    assert len(truths) == 1
    # and both pages show that one ground truth, with the time it ran
    stamps = [t.split(RECALL_MEASURED, 1)[1].split()[0] for t in texts]
    assert stamps[0] == stamps[1]


PAGES = ("", "/Embedding_space", "/Distance_metrics", "/Recall_at_scale")
AWAY = "is not answering"


def _main_text(page) -> str:
    return page.locator('[data-testid="stMain"]').inner_text()


def _wait_until_recovered(page, url: str, timeout: float = 90) -> str:
    """Reload `url` until the page runs without the database message; return its text."""
    deadline = time.monotonic() + timeout
    while True:
        open_page(page, url)
        text = _main_text(page)
        if AWAY not in text or time.monotonic() > deadline:
            return text
        time.sleep(1)


def test_every_page_says_the_server_is_away_and_recovers_when_it_is_started_again(
    browser, tmp_path
):
    # the test's own server, stopped and started as `docker compose restart` would
    with (
        own_server(extension=True) as server,
        serve_app(tmp_path / "app.log", DATABASE_URL=server.get_uri()) as url,
    ):
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        open_page(page, f"{url}/Distance_metrics", timeout=180)
        assert AWAY not in _main_text(page) and exceptions(page) == []

        server.stop()
        for path in PAGES:
            open_page(page, f"{url}{path}")
            text = _main_text(page)
            assert AWAY in text and "How to fix" in text, path
            assert exceptions(page) == [], path

        with server._lock:
            server.ensure_postgres_running()
        text = _wait_until_recovered(page, f"{url}/Distance_metrics")
        assert "Top document under" in text and AWAY not in text
        assert exceptions(page) == []
        page.close()


def test_the_app_starts_its_killed_embedded_server_again_by_itself(browser, tmp_path):
    pgdata = short_tmp_dir() / "pgdata"
    with serve_app(tmp_path / "app.log", PGVECTOR_LAB_PGDATA=str(pgdata), DATABASE_URL="") as url:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        open_page(page, url, timeout=180)
        assert "PostgreSQL 18" in _main_text(page)
        killed = int((pgdata / "postmaster.pid").read_text().split()[0])
        os.kill(killed, signal.SIGKILL)

        text = _wait_until_recovered(page, f"{url}/Distance_metrics")
        assert "Top document under" in text and AWAY not in text
        assert exceptions(page) == []
        restarted = int((pgdata / "postmaster.pid").read_text().split()[0])
        assert restarted != killed
        page.close()
    from lib.core.database import stop_embedded

    stop_embedded(pgdata)


def _measurements(page) -> int:
    text = _main_text(page)
    marker = " in this session"
    if marker not in text:
        return 0
    return int(text.split(marker)[0].split()[-2])


def test_behind_haproxy_a_dropped_connection_comes_back_to_its_own_page_state(
    pg_url, db, browser, tmp_path
):
    """`scripts/workshop.py`: two app processes behind HAProxy; an attendee's connection
    drops (every TCP connection cut) and comes back to the same process and session."""
    from test_tuning import prepared

    from lib.dataset.passages import load_dataset

    prepared(db, load_dataset(), 500)  # as `make prepare` would: in a room, attendees build none
    port = free_port()
    env = {**os.environ, "DATABASE_URL": pg_url}
    with open(tmp_path / "workshop.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "scripts/workshop.py", "--processes", "2", "--port", str(port),
             "--bind", "127.0.0.1", "--first-app-port", "0"],
            cwd=PROJECT_DIR, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    relay = None
    try:
        deadline = time.monotonic() + 180
        while b"HAProxy on" not in (tmp_path / "workshop.log").read_bytes():
            assert proc.poll() is None, (tmp_path / "workshop.log").read_text()
            assert time.monotonic() < deadline, "the workshop did not start"
            time.sleep(0.5)
        relay = Relay(port)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        open_page(page, f"http://127.0.0.1:{relay.port}/Recall_at_scale", timeout=180)
        page.get_by_text(RECALL_MEASURED).wait_for(timeout=180_000)
        cookies = {c["name"]: c["value"] for c in page.context.cookies()}
        assert cookies.get("LAB_APP") in ("app1", "app2")  # pinned to one process

        ef = page.get_by_role("slider").nth(1)
        ef.focus()
        page.keyboard.press("ArrowRight")  # a second measurement, kept in this session
        page.wait_for_function(
            "() => document.body.innerText.includes('2 measurements in this session')",
            timeout=60_000,
        )

        before = relay.accepted
        relay.drop()  # the Wi-Fi drops; the page reconnects by itself
        deadline = time.monotonic() + 60
        while relay.accepted == before:
            assert time.monotonic() < deadline, "the page did not reconnect"
            time.sleep(0.2)
        # That new connection is the page's health ping, made once it saw the drop; its
        # widgets stay disabled (a key press on them is lost) until the websocket is back.
        wait_connected(page, timeout=60)
        ef.focus()
        page.keyboard.press("ArrowRight")
        page.wait_for_function(
            "() => document.body.innerText.includes('3 measurements in this session')",
            timeout=90_000,
        )
        assert _measurements(page) == 3  # not 1: the same session, on the same process
        assert exceptions(page) == []
        page.close()

        # Stopped as a supervisor stops it (SIGTERM), it stops its app processes and HAProxy.
        children = psutil.Process(proc.pid).children(recursive=True)
        assert len(children) >= 3
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
        _, alive = psutil.wait_procs(children, timeout=15)
        assert alive == []
    finally:
        if relay is not None:
            relay.close()
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
