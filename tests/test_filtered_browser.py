"""The Filtered search page in a real Chromium, against the app served on the test database."""

import pytest
from browser_util import exceptions, open_page, wait_for_run
from playwright.sync_api import expect

from lib.dataset import builds
from lib.dataset.passages import load_dataset
from lib.lessons.filtered import tables as filtered_tables

pytestmark = pytest.mark.browser

N = 5_000


@pytest.fixture(scope="module")
def table(db):
    ds = load_dataset()
    builds.load_table(db, ds, N)
    return filtered_tables.build(db, ds, N)


def metric(page, label: str):
    return page.locator('[data-testid="stMetric"]').filter(has_text=label)


def test_changing_the_mode_changes_the_rows_returned_figure(app_url, page, table):
    open_page(page, f"{app_url}/Filtered_search?rows={N}")
    main = page.locator('[data-testid="stMain"]')
    short = metric(page, "Queries short of LIMIT 10")
    expect(short).to_be_visible(timeout=120_000)
    assert f"{N:,} rows" in main.inner_text() and "filter matches 50 of them" in main.inner_text()
    before = short.locator('[data-testid="stMetricValue"]').inner_text()
    assert before != "0 of 100"  # 1%, iterative scan off: queries come back short
    rows_before = metric(page, "Rows returned per query").inner_text()

    page.get_by_text("strict_order", exact=True).first.click()
    expect(short.locator('[data-testid="stMetricValue"]')).to_have_text("0 of 100", timeout=120_000)
    wait_for_run(page)
    assert metric(page, "Rows returned per query").inner_text() != rows_before
    text = main.inner_text()
    assert "all 100 queries returned LIMIT 10" in text  # the sentence, with measured numbers
    assert exceptions(page) == []
