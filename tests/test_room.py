"""A room: with an instructor token set, an attendee's click on shared work is refused with a
clear message and starts nothing; the instructor's link starts it; on a laptop (no token)
everyone may."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from lib.core import jobs as queue
from lib.harness import size_jobs
from lib.ui import room

pytestmark = pytest.mark.db

PAGE = "pages/4_Index_tuning.py"
N = 100_000  # the page's default size, never prepared by the tests
TOKEN = "a-test-token"


def tuning_page(pg_url, monkeypatch, token: str | None, link: str | None = None) -> AppTest:
    from apptest_util import PROJECT_DIR

    monkeypatch.setenv("DATABASE_URL", pg_url)
    monkeypatch.delenv("VOYAGE_API_KEY", raising=False)
    if token:
        monkeypatch.setenv(room.TOKEN_ENV, token)
    else:
        monkeypatch.delenv(room.TOKEN_ENV, raising=False)
    at = AppTest.from_file(str(PROJECT_DIR / "streamlit_app.py"), default_timeout=180)
    if link is not None:
        at.query_params[room.PARAM] = link
    at.run()
    at.switch_page(PAGE)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def prepare_button(at: AppTest):
    return next(b for b in at.button if b.label == f"Prepare {N:,} rows")


def test_an_attendees_click_on_shared_work_is_refused_and_starts_nothing(pg_url, monkeypatch, db):
    at = tuning_page(pg_url, monkeypatch, TOKEN)
    prepare_button(at).click().run()
    assert any("Ask the instructor" in i.value for i in at.info)
    assert size_jobs.live(db, N) is None


def test_a_wrong_token_is_an_attendee(pg_url, monkeypatch, db):
    at = tuning_page(pg_url, monkeypatch, TOKEN, link="not-the-token")
    prepare_button(at).click().run()
    assert any("Ask the instructor" in i.value for i in at.info)
    assert size_jobs.live(db, N) is None


def test_the_instructors_link_starts_it(pg_url, monkeypatch, db):
    at = tuning_page(pg_url, monkeypatch, TOKEN, link=TOKEN)
    prepare_button(at).click().run()
    job = size_jobs.live(db, N)
    try:
        assert job is not None
        assert not any("Ask the instructor" in i.value for i in at.info)
        assert room.PARAM not in at.query_params  # the token leaves the address bar
    finally:
        if job is not None:
            queue.cancel(db, job.id)
            assert queue.wait(db, job.job, timeout=120).state == "cancelled"
            assert queue.wait(db, job.job, timeout=120).state == "cancelled"


def test_on_a_laptop_everyone_may(pg_url, monkeypatch, db):
    at = tuning_page(pg_url, monkeypatch, None)
    prepare_button(at).click().run()
    job = size_jobs.live(db, N)
    try:
        assert job is not None
    finally:
        if job is not None:
            queue.cancel(db, job.id)
            assert queue.wait(db, job.job, timeout=120).state == "cancelled"
