"""Every page runs: under Streamlit's AppTest, and in a real Chromium against the served app."""

from pathlib import Path

import pytest
from browser_util import exceptions, open_page
from streamlit.testing.v1 import AppTest

from lib.ui.nav import PAGES

PROJECT_DIR = Path(__file__).resolve().parent.parent
PAGE_FILES = sorted(str(p.relative_to(PROJECT_DIR)) for p in (PROJECT_DIR / "pages").glob("*.py"))
ALL_FILES = ["streamlit_app.py", *PAGE_FILES]


def url_path(file: str) -> str:
    """The URL path Streamlit gives a page file: pages/1_Embedding_space.py -> Embedding_space."""
    if file == "streamlit_app.py":
        return ""
    stem = Path(file).stem
    return stem.split("_", 1)[1] if stem.split("_", 1)[0].isdigit() else stem


def test_every_page_file_is_in_the_sidebar():
    listed = {p[0] for p in PAGES}
    assert set(ALL_FILES) <= listed


@pytest.mark.parametrize("file", ALL_FILES)
def test_page_runs_under_apptest_without_exception(file, pg_url, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", pg_url)
    monkeypatch.delenv("VOYAGE_API_KEY", raising=False)
    # Pages run as Streamlit runs them: from the entrypoint, so the sidebar's links resolve.
    at = AppTest.from_file(str(PROJECT_DIR / "streamlit_app.py"), default_timeout=120).run()
    if file != "streamlit_app.py":
        at.switch_page(file).run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title, "every page has a title"


def test_home_shows_the_database_and_model_in_the_sidebar(pg_url, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", pg_url)
    at = AppTest.from_file(str(PROJECT_DIR / "streamlit_app.py"), default_timeout=60).run()
    sidebar_text = " ".join(c.value for c in at.sidebar.caption)
    assert "pgvector 0." in sidebar_text and "PostgreSQL 1" in sidebar_text
    assert at.sidebar.selectbox[0].value == "all-MiniLM-L6-v2"


def test_an_unreachable_database_gives_one_message_with_the_fix(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://lab:hunter2@127.0.0.1:1/lab?connect_timeout=2")
    at = AppTest.from_file(str(PROJECT_DIR / "streamlit_app.py"), default_timeout=60).run()
    assert not at.exception
    shown = " ".join(e.value for e in at.error) + " ".join(i.value for i in at.info)
    assert "not available" in shown and "How to fix" in shown
    assert "hunter2" not in shown


@pytest.mark.browser
@pytest.mark.parametrize("file", ALL_FILES)
def test_page_opens_in_chromium_without_exception(file, app_url, page):
    open_page(page, f"{app_url}/{url_path(file)}")
    assert page.locator("h1").first.is_visible()
    assert exceptions(page) == []


@pytest.mark.browser
def test_sidebar_links_reach_every_page(app_url, page):
    open_page(page, app_url)
    for file, label, *_ in PAGES[1:]:
        if file not in ALL_FILES:
            continue
        page.locator('[data-testid="stSidebar"]').get_by_text(label, exact=True).click()
        page.wait_for_url(f"**/{url_path(file)}")
        page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]')
        assert exceptions(page) == []
