"""Open a page under AppTest as a browser reaches it: through the entrypoint (switch_page),
against the test run's PostgreSQL, with no Voyage key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from streamlit.testing.v1 import AppTest

PROJECT_DIR = Path(__file__).resolve().parent.parent


def app_at(
    page: str,
    pg_url: str,
    monkeypatch,
    *,
    query_params: dict[str, str] | None = None,
    state: dict[str, Any] | None = None,
) -> AppTest:
    """AppTest of `page` (e.g. "pages/2_Distance_metrics.py"), switched to but not yet run:
    opened with `query_params` in its address, with `state` in its session before the page's
    first run."""
    monkeypatch.setenv("DATABASE_URL", pg_url)
    monkeypatch.delenv("VOYAGE_API_KEY", raising=False)
    at = AppTest.from_file(str(PROJECT_DIR / "streamlit_app.py"), default_timeout=180)
    for name, value in (query_params or {}).items():
        at.query_params[name] = value
    at.run()
    for name, value in (state or {}).items():
        at.session_state[name] = value
    at.switch_page(page)
    return at
