"""Open a page under AppTest as a browser reaches it: through the entrypoint (switch_page),
against the test run's PostgreSQL, with no Voyage key."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

PROJECT_DIR = Path(__file__).resolve().parent.parent


def app_at(page: str, pg_url: str, monkeypatch) -> AppTest:
    """AppTest of `page` (e.g. "pages/2_Distance_metrics.py"), switched to but not yet run."""
    monkeypatch.setenv("DATABASE_URL", pg_url)
    monkeypatch.delenv("VOYAGE_API_KEY", raising=False)
    at = AppTest.from_file(str(PROJECT_DIR / "streamlit_app.py"), default_timeout=180)
    at.run()
    at.switch_page(page)
    return at
