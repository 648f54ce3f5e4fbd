"""The Distance metrics page in headless Chromium: the metric switch and dragging an arrow.

AppTest cannot render custom components v2, so the picture is tested here, in a real browser
against the served app and the test run's real Postgres.
"""

from __future__ import annotations

import pytest
from browser_util import exceptions, open_page
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

HEADLINE = "h5"


def headline(page):
    return page.locator(HEADLINE, has_text="Top document under")


def choose_metric(page, label: str) -> None:
    page.locator('[data-testid="stButtonGroup"] button', has_text=label).first.click()


def open_metrics_page(page, app_url: str) -> None:
    open_page(page, f"{app_url}/Distance_metrics", timeout=180)
    page.wait_for_selector(".va-root[data-ready='true']", timeout=60_000)
    assert exceptions(page) == []


def tip_position(page, x: float, y: float) -> tuple[float, float]:
    """Where the data point (x, y) of the arrows picture is on the screen, in pixels."""
    page.locator(".va-plot").scroll_into_view_if_needed()
    return page.evaluate(
        """([x, y]) => {
            const gd = document.querySelector('.va-root .va-plot');
            const fl = gd._fullLayout, box = gd.getBoundingClientRect();
            return [box.left + fl.xaxis._offset + fl.xaxis.l2p(x),
                    box.top + fl.yaxis._offset + fl.yaxis.l2p(y)];
        }""",
        [x, y],
    )


def test_switching_the_metric_changes_the_top_document(app_url, page):
    open_metrics_page(page, app_url)
    expect(headline(page)).to_contain_text("Cosine")
    expect(headline(page)).to_contain_text(": A")
    choose_metric(page, "Euclidean (L2)")
    expect(headline(page)).to_contain_text("L2", timeout=30_000)
    expect(headline(page)).to_contain_text(": C")
    choose_metric(page, "Inner product")
    expect(headline(page)).to_contain_text("Inner product", timeout=30_000)
    expect(headline(page)).to_contain_text(": B")
    # The picture marks the new top document (gold ring) once it has redrawn.
    page.wait_for_function(
        """() => {
            const gd = document.querySelector('.va-root .va-plot');
            const t = gd && gd.data && gd.data[gd.data.length - 1];
            if (!t) return false;
            const i = t.marker.line.width.indexOf(4);
            return i >= 0 && t.text[i].includes('<b>B</b>');
        }""",
        timeout=30_000,
    )
    assert exceptions(page) == []


def test_dragging_a_document_changes_the_ranking(app_url, page):
    open_metrics_page(page, app_url)
    choose_metric(page, "Inner product")
    expect(headline(page)).to_contain_text(": B", timeout=30_000)
    # D starts at (-1, 2), pointing away from the query; drag it long and along the query.
    start = tip_position(page, -1.0, 2.0)
    end = tip_position(page, 4.6, 2.2)
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move(*end, steps=12)
    page.mouse.up()
    expect(headline(page)).to_contain_text(": D", timeout=30_000)
    # Postgres agrees with numpy about the new order.
    expect(page.get_by_text("the same order as numpy").first).to_be_visible()
    assert page.get_by_text("a different order").count() == 0
    assert exceptions(page) == []


def test_normalising_makes_the_metrics_agree(app_url, page):
    open_metrics_page(page, app_url)
    page.get_by_test_id("stCheckbox").get_by_text("Normalise vectors").click()
    expect(page.get_by_text("The three metrics agree")).to_be_visible(timeout=30_000)
    assert exceptions(page) == []
