"""The lab keeps its tables in the schema pgvector_lab on any database, leaves a user's own
tables where they are, and moves the tables an earlier version left in `public` once."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from conftest import new_database
from psql_util import psql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from lib.core import lab_schema
from lib.core.database import Database, psql_command

pytestmark = pytest.mark.db


@pytest.fixture
def fresh(pg_url) -> Iterator[str]:
    with new_database(pg_url, "pglab_schema", extension=True) as url:
        yield url


def schema_of(url: str, name: str) -> str | None:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE c.relname = %s",
            (name,),
        ).fetchone()
    return row and row[0]


def test_the_labs_tables_go_to_its_schema_and_psql_finds_them(fresh):
    with psycopg.connect(fresh, autocommit=True) as conn:
        conn.execute("CREATE TABLE public.docs (id int)")  # the user's own
    db = Database(fresh, kind="url", location="fresh")
    try:
        db.ensure("lab_probe", "CREATE TABLE IF NOT EXISTS lab_probe (id int)")
        db.fetchone("INSERT INTO lab_probe VALUES (7) RETURNING id")
        assert db.fetchone("SELECT current_schemas(false)")[0] == ["pgvector_lab", "public"]
        assert db.fetchone("SELECT count(*) FROM docs")[0] == 0  # the user's, by the same path
        options = conninfo_to_dict(db.conninfo)["options"]
        assert psql_command("url", db.conninfo) == (f"PGOPTIONS='{options}' psql \"$DATABASE_URL\"")
    finally:
        db.close()
    assert schema_of(fresh, "lab_probe") == "pgvector_lab"
    assert schema_of(fresh, "docs") == "public"
    # pasted as a page shows it: unqualified, through psql with the lab's search_path
    assert psql(fresh, "SELECT id FROM lab_probe;")[0].rows == [["7"]]


def test_tables_an_earlier_version_left_in_public_move_once_and_a_users_stay(fresh):
    with psycopg.connect(fresh, autocommit=True) as conn:
        conn.execute("CREATE TABLE public.lab_jobs (id int)")
        conn.execute("CREATE TABLE public.recall_n500_d4 (id int PRIMARY KEY, embedding vector(4))")
        conn.execute(
            "CREATE INDEX recall_n500_d4_hnsw ON public.recall_n500_d4"
            " USING hnsw (embedding vector_cosine_ops)"
        )
        conn.execute("INSERT INTO public.recall_n500_d4 VALUES (1, '[1,2,3,4]')")
        conn.execute("CREATE VIEW public.reembed_demo_9_search AS SELECT * FROM recall_n500_d4")
        conn.execute(
            "CREATE TABLE public.reembed_runs (schema_name text, table_name text);"
            "INSERT INTO public.reembed_runs VALUES ('public', 'reembed_demo_9'),"
            " ('public', 'docs')"
        )
        conn.execute("CREATE TABLE public.docs (id int)")  # the user's: no lab prefix
        conn.execute("CREATE TABLE public.recall_of_mine (id int)")  # another owner's
        conn.execute("CREATE ROLE pglab_other")
        conn.execute("ALTER TABLE public.recall_of_mine OWNER TO pglab_other")
    try:
        db = Database(make_conninfo(fresh, user="postgres"), kind="url", location="fresh")
        db.close()
        for name in ("lab_jobs", "recall_n500_d4", "recall_n500_d4_hnsw",
                     "reembed_demo_9_search", "reembed_runs"):  # fmt: skip
            assert schema_of(fresh, name) == "pgvector_lab", name
        assert schema_of(fresh, "docs") == "public"
        with psycopg.connect(lab_schema.lab_conninfo(fresh)) as conn:
            assert conn.execute("SELECT count(*) FROM reembed_demo_9_search").fetchone()[0] == 1
            runs = conn.execute("SELECT schema_name, table_name FROM reembed_runs ORDER BY 2")
            assert runs.fetchall() == [("public", "docs"), ("pgvector_lab", "reembed_demo_9")]
            conn.execute("CREATE TABLE public.lab_jobs (id int)")  # left there again, later
            conn.commit()
        Database(fresh, kind="url", location="fresh").close()  # moved once: nothing moves now
        with psycopg.connect(fresh) as conn:
            n = conn.execute("SELECT count(*) FROM pg_tables WHERE tablename = 'lab_jobs'")
            assert n.fetchone()[0] == 2
    finally:
        with psycopg.connect(fresh, autocommit=True) as conn:
            conn.execute("DROP TABLE public.recall_of_mine")
            conn.execute("DROP ROLE pglab_other")


def test_the_search_path_keeps_what_the_url_and_the_server_set():
    assert lab_schema.path_option('pgvector_lab, "$user", public') == (
        '-c search_path=pgvector_lab,\\ "$user",\\ public'
    )
    info = lab_schema.with_path("host=/tmp dbname=x options='-c work_mem=64MB'", "pgvector_lab")
    assert conninfo_to_dict(info)["options"] == "-c work_mem=64MB -c search_path=pgvector_lab"
