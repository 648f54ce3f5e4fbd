"""The Index tuning page in a real Chromium, against the app served on the test database."""

from __future__ import annotations

import pytest
from browser_util import exceptions, open_page, wait_for_run
from playwright.sync_api import expect
from test_tuning import prepared

from lib.dataset.passages import load_dataset
from lib.lessons.tuning.view import CHEAPEST_NAME

pytestmark = pytest.mark.browser

N = 5000
PLOT = "document.querySelector('[data-testid=\"stMain\"] .js-plotly-plot')"
CURVES = f"() => {{ const p = {PLOT}; if (!p || !p.data) return 0;" \
    f" return p.data.filter(t => t.name !== '{CHEAPEST_NAME}').length; }}"  # fmt: skip
STAR = f"() => {{ const p = {PLOT}; if (!p || !p.data) return null;" \
    f" const s = p.data.find(t => t.name === '{CHEAPEST_NAME}');" \
    " return s ? [s.x[0], s.y[0]] : null; }"  # fmt: skip


@pytest.fixture(scope="module")
def ready(db):
    ds = load_dataset()
    prepared(db, ds, N)
    return ds


def test_moving_the_recall_target_moves_the_highlighted_point(app_url, page, ready):
    open_page(page, f"{app_url}/Index_tuning?rows={N}")
    page.wait_for_function(f"({CURVES})() >= 1", timeout=180_000)
    page.wait_for_function(f"({STAR})() !== null", timeout=60_000)
    before = page.evaluate(STAR)
    assert before[1] >= 0.95
    slider = page.get_by_role("slider", name="Recall@10 you need")
    assert slider.get_attribute("aria-valuetext") == "0.95"
    slider.focus()
    page.keyboard.press("End")  # 1.00: only points where every query found its true 10
    page.wait_for_function(f"(() => {{ const s = ({STAR})(); return s && s[1] === 1; }})()")
    after = page.evaluate(STAR)
    assert after != before and after[0] >= before[0]  # more recall costs latency
    text = page.locator('[data-testid="stMain"]').inner_text()
    assert "recall@10 ≥ 1.00" in text
    assert exceptions(page) == []


def test_pinning_a_configuration_adds_a_curve(app_url, page, ready):
    open_page(page, f"{app_url}/Index_tuning?rows={N}")
    page.wait_for_function(f"({CURVES})() >= 1", timeout=180_000)
    curves = page.evaluate(CURVES)
    pin = page.get_by_role("button", name="halfvec m=16, efc=64")
    pin.click()
    expect(pin).to_be_disabled(timeout=60_000)  # the run that pinned it has drawn it so
    wait_for_run(page)
    build = page.get_by_role("button", name="Build")
    if build.count():  # not built on this server yet: build it (shared, queued)
        build.first.click()
    page.wait_for_function(f"({CURVES})() >= {curves + 1}", timeout=300_000)
    names = page.evaluate(f"() => {PLOT}.data.map(t => t.name)")
    assert "halfvec HNSW m=16 ef_construction=64" in names
    assert exceptions(page) == []


def test_a_gallery_case_shows_both_plans(app_url, page, ready):
    open_page(page, f"{app_url}/Index_tuning?rows={N}")
    page.get_by_text("no LIMIT", exact=True).click()
    page.get_by_text("The fix.").wait_for(timeout=120_000)
    wait_for_run(page)
    text = page.locator('[data-testid="stMain"]').inner_text()
    assert "the plan reads no index" in text and "the plan reads the index recall_n5000" in text
    assert "EXPLAIN (ANALYZE, BUFFERS)" in text and "\\bind '[" in text
    assert exceptions(page) == []
