"""A `DATABASE_URL` user who may not create tables gets, on every page that needs its own
tables, one clear message and the statement that fixes it (here the lab's schema, owned by
that user), pasteable into psql; once it is run, the page works at the next click."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from browser_util import exceptions, open_page
from conftest import serve_app
from playwright.sync_api import expect
from psql_util import psql
from psycopg.conninfo import make_conninfo

pytestmark = [pytest.mark.browser, pytest.mark.db]

DENIED = "This database user may not create tables."
PAGES_WITH_TABLES = ["Embedding_space", "Recall_at_scale", "Index_tuning", "Filtered_search"]


@pytest.fixture
def database_without_create(pg_url):
    """A new database with pgvector, and a role that may connect but not create tables."""
    name, role = f"lab_{uuid.uuid4().hex[:8]}", f"learner_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
        conn.execute(f'CREATE ROLE "{role}" LOGIN')
    owner_url = make_conninfo(pg_url, dbname=name)
    with psycopg.connect(owner_url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION vector")
        allowed = conn.execute(
            "SELECT has_schema_privilege(%s, 'public', 'CREATE')", (role,)
        ).fetchone()[0]
        assert not allowed  # PostgreSQL 15 and later: only the database's owner may
    yield owner_url, make_conninfo(pg_url, dbname=name, user=role), role
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        conn.execute(f'DROP ROLE "{role}"')


def test_a_user_without_create_gets_the_grant_and_the_page_works_once_it_ran(
    database_without_create, page, tmp_path
):
    owner_url, learner_url, role = database_without_create
    with serve_app(tmp_path / "app.log", DATABASE_URL=learner_url) as url:
        grant = f'CREATE SCHEMA "pgvector_lab" AUTHORIZATION "{role}";'
        for name in PAGES_WITH_TABLES:
            open_page(page, f"{url}/{name}")
            assert exceptions(page) == [], name
            expect(page.get_by_text(DENIED)).to_be_visible()
            expect(page.locator("code").filter(has_text="CREATE SCHEMA")).to_have_text(grant)
        # The distance picture makes no table: it works; the page's corpus part says why not.
        open_page(page, f"{url}/Distance_metrics")
        assert exceptions(page) == []
        expect(page.get_by_text("Top document under")).to_be_visible()
        expect(page.get_by_text(DENIED)).to_be_visible()

        psql(owner_url, grant)  # pasted as the page shows it, as the owner
        open_page(page, f"{url}/Embedding_space", timeout=180)  # the next click: no wait
        assert exceptions(page) == []
        expect(page.get_by_text(DENIED)).to_have_count(0)
        expect(page.locator(".st-key-es_true_list tbody tr")).to_have_count(5, timeout=60_000)
