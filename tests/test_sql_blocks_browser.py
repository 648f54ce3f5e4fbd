"""The SQL block a page shows, read from the page in Chromium and pasted into psql, returns
the rows the page shows (the Embedding space page draws a v2 component, so not AppTest)."""

import pytest
from browser_util import open_page, wait_for_run
from playwright.sync_api import expect
from psql_util import psql

pytestmark = pytest.mark.browser


def main(page):
    return page.locator('[data-testid="stMain"]')


def test_embedding_space_sql_pasted_into_psql_returns_the_table_the_page_shows(
    app_url, page, pg_url
):
    open_page(page, f"{app_url}/Embedding_space")
    code = main(page).locator("code").filter(has_text="SET LOCAL enable_indexscan = off").first
    (result,) = psql(pg_url, code.inner_text())
    rows = page.locator(".st-key-es_true_list tbody tr")
    # The map component reports its first position once it has drawn, which may rerun the
    # page after the first run ended: wait for the table, then for that run to end.
    expect(rows).to_have_count(len(result.rows), timeout=60_000)
    wait_for_run(page)
    shown = [[c.strip() for c in r.locator("td").all_inner_texts()] for r in rows.all()]
    assert len(shown) == len(result.rows) >= 3
    for cells, (_id, kind, theme, content, distance) in zip(shown, result.rows, strict=True):
        item, shown_theme, shown_kind, shown_distance = cells[-6:-2]
        assert content.startswith(item.rstrip("…"))
        assert (shown_theme, shown_kind) == (theme, kind)
        assert shown_distance == f"{float(distance):.4f}"
