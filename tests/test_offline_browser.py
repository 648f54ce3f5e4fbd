"""The lab works with no network: no page asks the browser to fetch anything from anywhere
but the app itself (a page icon given as `:material/…:` made the browser fetch it from
fonts.gstatic.com, for one)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest
from browser_util import exceptions, open_page

from lib.ui import nav

pytestmark = [pytest.mark.db, pytest.mark.browser]


def path_of(file: str) -> str:
    """pages/7_Hybrid_search.py -> Hybrid_search; the entrypoint -> ''."""
    name = Path(file).stem
    return name.split("_", 1)[1] if file.startswith("pages/") else ""


def test_no_page_fetches_anything_from_outside_the_app(app_url, page):
    app = urlsplit(app_url).hostname
    outside: list[str] = []

    def watch(request) -> None:
        url = urlsplit(request.url)
        if url.scheme in ("http", "https", "ws", "wss") and url.hostname != app:
            outside.append(request.url)

    page.on("request", watch)
    files = [f for f, *_ in nav.existing_pages()]
    assert len(files) >= 9  # the home page and every lesson's
    for file in files:
        open_page(page, f"{app_url}/{path_of(file)}", timeout=180)
        assert exceptions(page) == [], file
    assert outside == []
