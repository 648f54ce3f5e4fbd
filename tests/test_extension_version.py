"""pgvector on a database the lab does not own (a DATABASE_URL) is changed only when asked:
an older one is reported with both versions, in ServerInfo and in the sidebar, whose button
(or LAB_MANAGE_EXTENSION=1, at start) updates it; a missing one stops the app with a button
that creates it. The embedded server is the lab's own: it is updated at start."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from conftest import new_database
from psycopg import sql
from psycopg.conninfo import make_conninfo
from streamlit.testing.v1 import AppTest

from lib.core.database import Database, ExtensionMissing, extension_advice

PROJECT_DIR = Path(__file__).resolve().parent.parent
DBNAME = "pglab_old_vector"
LEARNER = "pglab_learner"


def extversion(url: str) -> str:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT extversion FROM pg_extension WHERE extname = 'vector'"
        ).fetchone()[0]


@pytest.fixture
def old_vector(pg_url) -> Iterator[tuple[str, str, str]]:
    """(URL of a database whose pgvector says it is the version before the server's, that
    version, the server's). The older version is faked in the catalog, as a superuser may:
    pgvector ships an install script for its current version only. The update script from the
    previous version is empty (checked), so the objects are those of either version."""
    with psycopg.connect(pg_url, autocommit=True) as conn:
        if not conn.execute(
            "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
        ).fetchone()[0]:
            pytest.skip("faking an older extension version needs a superuser")
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DBNAME))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DBNAME)))
        conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(LEARNER)))
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(LEARNER)))
    url = make_conninfo(pg_url, dbname=DBNAME)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION vector")
        current = conn.execute(
            "SELECT extversion FROM pg_extension WHERE extname = 'vector'"
        ).fetchone()[0]
        older, script = _previous_version(conn, current)
        if any(not line.startswith(("--", "\\echo")) for line in script.splitlines() if line):
            pytest.skip(f"pgvector's {older} -> {current} update script is not empty")
        conn.execute("UPDATE pg_extension SET extversion = %s WHERE extname = 'vector'", (older,))
    try:
        yield url, older, current
    finally:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(DBNAME)))
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(LEARNER)))


def _previous_version(conn: psycopg.Connection, current: str) -> tuple[str, str]:
    """The version whose update script leads to `current`, and that script's text."""
    (sharedir,) = conn.execute("SELECT setting FROM pg_config WHERE name = 'SHAREDIR'").fetchone()
    folder = f"{sharedir}/extension"
    names = [r[0] for r in conn.execute("SELECT pg_ls_dir(%s)", (folder,))]
    suffix = f"--{current}.sql"
    (name,) = [
        n for n in names if n.startswith("vector--") and n.endswith(suffix) and n.count("--") == 2
    ]
    (script,) = conn.execute("SELECT pg_read_file(%s)", (f"{folder}/{name}",)).fetchone()
    return name.removeprefix("vector--").removesuffix(suffix), script


def test_an_older_extension_on_a_database_url_is_left_as_it_is_unless_asked(
    old_vector, monkeypatch
):
    url, older, current = old_vector
    monkeypatch.delenv("LAB_MANAGE_EXTENSION", raising=False)
    db = Database(url, kind="url", location=DBNAME)
    try:
        info = db.info()
    finally:
        db.close()
    assert extversion(url) == older  # not the lab's database: it asks first
    assert info.pgvector_outdated and "ALTER EXTENSION vector UPDATE" in info.pgvector_outdated
    monkeypatch.setenv("LAB_MANAGE_EXTENSION", "1")  # asked: updated at start
    db = Database(url, kind="url", location=DBNAME)
    try:
        info = db.info()
    finally:
        db.close()
    assert extversion(url) == current
    assert (info.pgvector_version, info.pgvector_available) == (current, current)
    assert info.pgvector_outdated is None


def test_a_user_who_may_not_update_gets_both_versions_and_why(old_vector):
    url, older, current = old_vector
    learner_url = make_conninfo(url, user=LEARNER)
    db = Database(learner_url, kind="url", location=DBNAME, manage_extension=True)
    try:
        info = db.info()
        # the pool works with the older objects
        assert db.fetchone("SELECT '[3,4]'::vector <-> '[0,0]'::vector")[0] == 5
    finally:
        db.close()
    assert extversion(url) == older
    assert (info.pgvector_version, info.pgvector_available) == (older, current)
    advice = info.pgvector_outdated
    assert advice and older in advice and current in advice
    assert "ALTER EXTENSION vector UPDATE" in advice and "owner" in advice


def test_the_sidebar_shows_both_versions_and_the_warning(old_vector, monkeypatch):
    url, older, current = old_vector
    monkeypatch.setenv("DATABASE_URL", make_conninfo(url, user=LEARNER))
    monkeypatch.delenv("VOYAGE_API_KEY", raising=False)
    at = AppTest.from_file(str(PROJECT_DIR / "streamlit_app.py"), default_timeout=120).run()
    assert not at.exception
    caption = " ".join(c.value for c in at.sidebar.caption)
    assert f"pgvector {older} in this database, {current} on the server" in caption
    warning = " ".join(w.value for w in at.sidebar.warning)
    assert "ALTER EXTENSION vector UPDATE" in warning
    from lib.ui import connection as ui

    learner_url = make_conninfo(url, user=LEARNER)
    ui._open_database(learner_url).close()  # the cached one: its database is dropped next
    ui._open_database.clear(learner_url)


def test_the_sidebars_button_updates_the_extension(old_vector, monkeypatch):
    url, older, current = old_vector
    monkeypatch.setenv("DATABASE_URL", url)  # the database's owner
    monkeypatch.delenv("LAB_MANAGE_EXTENSION", raising=False)
    monkeypatch.delenv("LAB_INSTRUCTOR_TOKEN", raising=False)
    monkeypatch.delenv("VOYAGE_API_KEY", raising=False)
    at = AppTest.from_file(str(PROJECT_DIR / "streamlit_app.py"), default_timeout=120).run()
    assert not at.exception
    assert extversion(url) == older
    at.sidebar.button(key="lab_extension_update_sidebar").click().run()
    assert not at.exception
    assert extversion(url) == current
    caption = " ".join(c.value for c in at.sidebar.caption)
    assert f"pgvector {current} in this database, {current} on the server" in caption
    assert not any("ALTER EXTENSION" in w.value for w in at.sidebar.warning)
    from lib.ui import connection as ui

    ui._open_database(url).close()
    ui._open_database.clear(url)


@pytest.fixture
def no_vector(pg_url) -> Iterator[str]:
    """The URL of a new database without pgvector."""
    with new_database(pg_url, "pglab_no_vector", extension=False) as url:
        yield url


def test_a_database_without_pgvector_is_asked_before_the_extension_is_created(
    no_vector, monkeypatch
):
    monkeypatch.delenv("LAB_MANAGE_EXTENSION", raising=False)
    with pytest.raises(ExtensionMissing) as e:
        Database(no_vector, kind="url", location="no vector")
    assert "CREATE EXTENSION vector;" in e.value.problem
    with psycopg.connect(no_vector) as conn:  # nothing was changed
        assert (
            conn.execute("SELECT count(*) FROM pg_extension WHERE extname = 'vector'").fetchone()[0]
            == 0
        )
        assert conn.execute("SELECT to_regnamespace('pgvector_lab')").fetchone()[0] is None

    monkeypatch.setenv("DATABASE_URL", no_vector)
    monkeypatch.delenv("LAB_INSTRUCTOR_TOKEN", raising=False)
    monkeypatch.delenv("VOYAGE_API_KEY", raising=False)
    at = AppTest.from_file(str(PROJECT_DIR / "streamlit_app.py"), default_timeout=120).run()
    assert not at.exception
    assert any("has no pgvector extension" in m.value for m in at.sidebar.error)
    at.sidebar.button(key="lab_extension_create_sidebar").click().run()
    assert not at.exception
    assert extversion(no_vector)
    assert not any("has no pgvector" in m.value for m in at.sidebar.error)
    with psycopg.connect(no_vector) as conn:  # and the lab's schema with it
        assert conn.execute("SELECT to_regnamespace('pgvector_lab')").fetchone()[0] is not None
    from lib.ui import connection as ui

    ui._open_database(no_vector).close()
    ui._open_database.clear(no_vector)


def test_in_a_room_an_attendee_may_not_create_the_extension(no_vector, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", no_vector)
    monkeypatch.setenv("LAB_INSTRUCTOR_TOKEN", "s3cret")
    monkeypatch.delenv("LAB_MANAGE_EXTENSION", raising=False)
    monkeypatch.delenv("VOYAGE_API_KEY", raising=False)
    at = AppTest.from_file(str(PROJECT_DIR / "streamlit_app.py"), default_timeout=120).run()
    at.sidebar.button(key="lab_extension_create_sidebar").click().run()
    assert not at.exception
    assert any("Ask the instructor" in m.value for m in at.sidebar.info)
    with psycopg.connect(no_vector) as conn:
        assert (
            conn.execute("SELECT count(*) FROM pg_extension WHERE extname = 'vector'").fetchone()[0]
            == 0
        )


@pytest.mark.parametrize(
    "installed, available, outdated",
    [
        ("0.8.5", "0.8.5", False),
        ("0.8.4", "0.8.5", True),
        ("0.7.4", "0.8.0", True),
        ("0.10.0", "0.9.1", False),  # compared as numbers, not text
        ("0.9.0", "0.10.0", True),
    ],
)
def test_extension_advice_compares_versions_as_numbers(installed, available, outdated):
    assert (extension_advice(installed, available) is not None) == outdated
