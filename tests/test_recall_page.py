"""The Recall at scale page in a real Chromium, against the app served on the test database."""

import pytest
from browser_util import exceptions, open_page, wait_for_run

pytestmark = pytest.mark.browser

RECALL_POINTS = (
    "() => { const plot = document.querySelector('.js-plotly-plot');"
    " if (!plot || !plot.data) return 0;"
    " return plot.data.filter(t => t.yaxis === 'y' && !t.name.startsWith('exact'))"
    ".reduce((n, t) => n + t.x.length, 0); }"
)


def recall_points(page) -> int:
    return page.evaluate(RECALL_POINTS)


def test_moving_the_size_control_adds_a_recall_point_to_the_plot(app_url, page):
    open_page(page, f"{app_url}/Recall_at_scale")
    page.wait_for_function(f"({RECALL_POINTS})() >= 1", timeout=120_000)
    assert recall_points(page) == 1
    assert "500 rows" in page.locator('[data-testid="stMain"]').inner_text()

    slider = page.get_by_role("slider").first
    slider.focus()
    page.keyboard.press("ArrowRight")  # 500 -> 1,000 rows
    page.wait_for_function(f"({RECALL_POINTS})() >= 2", timeout=120_000)
    wait_for_run(page)  # the run that drew the second point has ended: nothing more comes
    assert recall_points(page) == 2
    text = page.locator('[data-testid="stMain"]').inner_text()
    assert "1,000 rows" in text
    assert "returned 10 rows" in text  # the lesson's sentence, with measured numbers
    assert "SET LOCAL enable_indexscan = off;" in text  # the SQL that ran
    assert exceptions(page) == []


def test_a_size_too_large_is_refused_with_an_estimate(app_url, page):
    open_page(page, f"{app_url}/Recall_at_scale")
    page.get_by_text("Another size…").click()
    field = page.get_by_test_id("stPopoverBody").locator("input")
    field.fill("900000000")
    field.press("Enter")
    refusal = page.get_by_test_id("stPopoverBody").get_by_text("Refused.")
    refusal.wait_for(timeout=30_000)
    wait_for_run(page)  # stale elements of the previous run go only when this run ends
    text = page.get_by_test_id("stPopoverBody").inner_text()
    assert "900,000,000 rows" in text and "TB in memory" in text
    assert page.get_by_role("button", name="Build and measure").count() == 0
    assert exceptions(page) == []


def test_a_size_whose_passages_are_not_embedded_says_how_long_and_waits_for_a_click(
    pg_url, db, page, tmp_path
):
    """With an embedding cache that holds nothing (a fresh clone), 500,000 rows need about
    310,000 passages embedded: the page gives the estimate and queues nothing until asked."""
    from conftest import serve_app

    from lib.harness import size_jobs as jobs

    with serve_app(
        tmp_path / "streamlit.log",
        DATABASE_URL=pg_url,
        EMBEDDING_CACHE_PATH=str(tmp_path / "embeddings.sqlite"),
    ) as url:
        open_page(page, f"{url}/Recall_at_scale")
        slider = page.get_by_role("slider").first
        slider.focus()
        page.keyboard.press("End")  # 500,000 rows
        notice = page.get_by_text("500,000 rows are not built on this server yet.")
        notice.wait_for(timeout=120_000)
        wait_for_run(page)
        text = page.locator('[data-testid="stMain"]').inner_text()
        assert "passages to embed first: about" in text
        assert "Real rows end at row" in text and "come from a seeded generator" in text
        assert page.get_by_role("button", name="Embed and build 500,000 rows").count() == 1
        assert jobs.live(db, 500_000) is None, "nothing starts before the click"
        assert exceptions(page) == []


def test_a_link_opens_the_page_at_the_size_it_names(app_url, page):
    open_page(page, f"{app_url}/Recall_at_scale?rows=1000")
    page.wait_for_function(f"({RECALL_POINTS})() >= 1", timeout=120_000)
    main = page.locator('[data-testid="stMain"]').inner_text()
    assert "1,000 rows" in main and "500 rows" not in main
    assert exceptions(page) == []
