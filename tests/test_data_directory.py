"""The embedded server's data directory is checked on start: a PG_VERSION of another major
version stops the start with one message and changes nothing, until the user asks to move
the directory aside (renamed, never deleted)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from streamlit.testing.v1 import AppTest

from lib.core import data_directory
from lib.core.database import DataDirectoryMismatch, open_database, start_embedded, stop_embedded

PROJECT_DIR = Path(__file__).resolve().parent.parent
BUNDLED = data_directory.bundled_major()
OLD = BUNDLED - 1


@pytest.fixture
def root() -> Iterator[Path]:
    """A short directory in /tmp (a server's Unix socket lives in its data directory)."""
    path = Path(tempfile.mkdtemp(prefix="pglab-dd-", dir="/tmp"))
    yield path
    for pgdata in path.iterdir():
        if (pgdata / "postmaster.pid").exists():
            data_directory.stop_postmaster(pgdata)
    shutil.rmtree(path)


def fake_old_directory(pgdata: Path) -> dict[str, str]:
    """A data directory as an older PostgreSQL leaves it (as far as the check can tell)."""
    (pgdata / "base" / "1").mkdir(parents=True)
    files = {"PG_VERSION": f"{OLD}\n", "base/1/1259": "old table data", "postgresql.conf": "#"}
    for name, text in files.items():
        (pgdata / name).write_text(text)
    return files


def contents(path: Path) -> dict[str, str]:
    return {str(p.relative_to(path)): p.read_text() for p in path.rglob("*") if p.is_file()}


def test_an_older_pg_version_stops_the_start_with_one_message_and_changes_nothing(
    root, monkeypatch
):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    pgdata = root / "pgdata"
    files = fake_old_directory(pgdata)
    with pytest.raises(DataDirectoryMismatch) as e:
        open_database(pgdata=pgdata)
    message = str(e.value)
    assert f"made by PostgreSQL {OLD}" in message
    assert f"bundled server is PostgreSQL {BUNDLED}" in message
    assert "make move-db-aside" in message and "make clean-db" in message
    assert "nothing is deleted" in message
    assert contents(pgdata) == files
    assert [p.name for p in root.iterdir()] == ["pgdata"]


def test_the_command_line_check_says_the_same_and_fails(root):
    pgdata = root / "pgdata"
    fake_old_directory(pgdata)
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    run = subprocess.run(
        [sys.executable, "-m", "lib.core.database", "check"],
        cwd=PROJECT_DIR,
        env={**env, "PGVECTOR_LAB_PGDATA": str(pgdata)},
        capture_output=True,
        text=True,
    )
    assert run.returncode == 1
    assert f"made by PostgreSQL {OLD}" in run.stderr and "make move-db-aside" in run.stderr
    assert (pgdata / "PG_VERSION").read_text() == f"{OLD}\n"


def test_the_check_passes_a_directory_of_the_bundled_version_or_none(root):
    from lib.core.database import check_data_directory

    check_data_directory(root / "missing")
    (root / "current").mkdir()
    (root / "current" / "PG_VERSION").write_text(f"{BUNDLED}\n")
    check_data_directory(root / "current")


def test_moving_aside_stops_the_old_server_keeps_every_file_and_the_next_start_is_fresh(root):
    pgdata = root / "pgdata"
    # A server left running on the directory by an earlier process, as the app leaves it...
    start = (
        f"import lib.core.database as d, pathlib; d.start_embedded(pathlib.Path({str(pgdata)!r}))"
    )
    subprocess.run([sys.executable, "-c", start], cwd=PROJECT_DIR, check=True)
    server = data_directory.running_postmaster(pgdata)
    assert server is not None
    # ...and whose directory an older major version made (faked: the check reads PG_VERSION).
    (pgdata / "PG_VERSION").write_text(f"{OLD}\n")
    # what a shutdown removes: the pid file, the socket and its lock
    running_only = {"postmaster.pid", "postmaster.opts", ".s.PGSQL.5432", ".s.PGSQL.5432.lock"}
    before = {str(p.relative_to(pgdata)) for p in pgdata.rglob("*")} - running_only
    with pytest.raises(DataDirectoryMismatch):
        start_embedded(pgdata)

    moved = data_directory.move_aside(pgdata, expected=BUNDLED)

    assert moved is not None and moved.parent == root
    assert moved.name.startswith(f"pgdata-pg{OLD}-")
    assert not server.is_running()
    assert not pgdata.exists()
    assert before <= {str(p.relative_to(moved)) for p in moved.rglob("*")}
    assert (moved / "PG_VERSION").read_text() == f"{OLD}\n"
    assert data_directory.move_aside(pgdata, expected=BUNDLED) is None  # nothing left to move

    uri = start_embedded(pgdata)
    try:
        assert data_directory.made_by(pgdata) == BUNDLED
        with psycopg.connect(uri) as conn:
            (major,) = conn.execute(
                "SELECT current_setting('server_version_num')::int / 10000"
            ).fetchone()
        assert major == BUNDLED
    finally:
        stop_embedded(pgdata)


def test_the_page_shows_the_message_and_moves_the_directory_only_when_asked(root, monkeypatch):
    from lib.ui import connection as ui

    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("VOYAGE_API_KEY", raising=False)
    pgdata = root / "pgdata"
    files = fake_old_directory(pgdata)
    monkeypatch.setenv("PGVECTOR_LAB_PGDATA", str(pgdata))
    at = AppTest.from_file(str(PROJECT_DIR / "streamlit_app.py"), default_timeout=120).run()
    assert not at.exception
    shown = " ".join(e.value for e in at.error) + " ".join(i.value for i in at.info)
    assert f"made by PostgreSQL {OLD}" in shown and "make move-db-aside" in shown
    assert contents(pgdata) == files  # showing the message moved nothing

    button = next(b for b in at.button if "aside" in b.label)
    assert f"PostgreSQL {BUNDLED}" in button.label
    try:
        at = button.click().run()
        assert not at.exception
        (moved,) = root.glob(f"pgdata-pg{OLD}-*")
        assert contents(moved) == files
        assert data_directory.made_by(pgdata) == BUNDLED
        sidebar = " ".join(c.value for c in at.sidebar.caption)
        assert f"PostgreSQL {BUNDLED}." in sidebar
        assert not at.error
    finally:
        if data_directory.made_by(pgdata) == BUNDLED:
            ui._open_database(None).close()  # the cached one, on the server stopped next
            ui._open_database.clear(None)
            stop_embedded(pgdata)


def test_make_clean_db_asks_first_and_deletes_only_when_told(tmp_path):
    pgdata = tmp_path / "pgdata"
    pgdata.mkdir()
    (pgdata / "PG_VERSION").write_text("18\n")

    def clean(answer: str, *extra: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["make", "-s", "clean-db", f"PGDATA_DIR={pgdata}", *extra],
            input=answer, capture_output=True, text=True, cwd=PROJECT_DIR, timeout=120,
        )  # fmt: skip

    refused = clean("n\n")
    assert refused.returncode != 0 and "Nothing deleted." in refused.stdout
    assert pgdata.exists()
    forced = clean("", "FORCE=1")
    assert forced.returncode == 0, forced.stderr
    assert "not running" in forced.stdout and not pgdata.exists()
