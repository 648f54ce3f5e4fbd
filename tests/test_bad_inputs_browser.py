"""Bad inputs tried in a real Chromium, as a new user would (issue 9, part 5)."""

from __future__ import annotations

import pytest
from browser_util import exceptions, open_page, wait_for_run
from playwright.sync_api import expect

from lib.core.embeddings.local import MINILM
from lib.core.embeddings.registry import load_model
from lib.core.psql import vector_literal
from lib.core.queries import text_vector

pytestmark = pytest.mark.browser


def main(page):
    return page.locator('[data-testid="stMain"]')


def plans(page):
    """Distance metrics' EXPLAIN blocks, which bind the query's vector."""
    return page.locator("code").filter(has_text="EXPLAIN (ANALYZE")


def bound(query: str) -> str:
    """How those blocks begin to bind `query`'s MiniLM vector."""
    return f"\\bind '{vector_literal(text_vector(load_model(MINILM.name), query))[:60]}"


def test_a_nested_page_address_opens_the_page(app_url, page):
    open_page(page, f"{app_url}/Embedding_space/foo/bar")
    assert page.url == f"{app_url}/Embedding_space"
    expect(page.get_by_role("heading", name="Embedding space", level=1)).to_be_visible()
    assert exceptions(page) == []


def test_an_unknown_nested_address_lands_on_the_home_page(app_url, page):
    open_page(page, f"{app_url}/no_such_page/deeper")
    expect(page.get_by_role("heading", name="pgvector lab", level=1)).to_be_visible()
    assert page.url.rstrip("/") == app_url


def test_a_typed_query_is_shown_as_text_not_markdown(app_url, page):
    open_page(page, f"{app_url}/Embedding_space")
    typed = "[free pizza](https://example.org) $x^2$"
    field = page.get_by_role("textbox", name="Type a query")
    field.fill(typed)
    field.press("Enter")
    expect(main(page).get_by_text(f"Query: “{typed}”", exact=False)).to_be_visible(timeout=60_000)
    wait_for_run(page)
    assert main(page).locator('a[href="https://example.org"]').count() == 0
    assert main(page).locator(".katex").count() == 0
    assert exceptions(page) == []


def test_typing_a_sentence_that_starts_with_a_lesson_item_ranks_the_whole_sentence(app_url, page):
    open_page(page, f"{app_url}/Distance_metrics", timeout=180)
    sentence = "a small cat wearing a hat"
    field = page.get_by_role("textbox", name="Query — type your own and press Enter")
    field.click()
    field.press("Control+a")
    field.press_sequentially(sentence, delay=40)  # key by key, as a person types
    field.press("Enter")
    expect(plans(page)).to_contain_text(bound(sentence), timeout=60_000)
    wait_for_run(page)
    assert field.input_value() == sentence
    assert exceptions(page) == []


def test_the_last_good_query_named_in_an_error_is_shown_as_typed(app_url, page):
    open_page(page, f"{app_url}/Distance_metrics", timeout=180)
    typed = "[free pizza](https://example.org) $x^2$ www.example.org :smile:"
    field = page.get_by_role("textbox", name="Query — type your own and press Enter")
    field.fill(typed)
    field.press("Enter")
    expect(plans(page)).to_contain_text(bound(typed), timeout=60_000)  # its run ranked it
    wait_for_run(page)
    field.fill("   ")
    field.press("Enter")
    error = main(page).get_by_test_id("stAlertContentError").filter(has_text="query is empty")
    expect(error).to_be_visible(timeout=60_000)
    wait_for_run(page)
    assert typed in error.inner_text().replace("\u2060", "")
    assert main(page).locator('a[href*="example.org"]').count() == 0
    assert main(page).locator(".katex").count() == 0
    assert exceptions(page) == []


def test_the_other_size_field_builds_exactly_what_it_shows_or_nothing(app_url, page):
    open_page(page, f"{app_url}/Recall_at_scale")
    page.get_by_text("Another size…").click()
    body = page.get_by_test_id("stPopoverBody")
    field = body.locator("input")
    build = body.get_by_role("button", name="Build and measure")

    def enter(text: str, shows) -> None:
        """Type `text` and press Enter; once its run `shows` something, wait for it to end."""
        field.fill(text)
        field.press("Enter")
        expect(shows).to_be_visible()
        wait_for_run(page)

    enter("99", body.get_by_text("99 rows is outside the range"))
    assert build.count() == 0
    enter("1e9", body.get_by_text("Refused."))
    assert "1,000,000,000 rows" in body.inner_text() and "outside" not in body.inner_text()
    assert build.count() == 0
    enter("600", body.get_by_role("button", name="Build and measure 600 rows"))
    # Change the field to an invalid value and click the button without pressing Enter.
    field.fill("0")
    build.click()
    expect(main(page).get_by_text("0 rows is outside the range").first).to_be_visible()
    wait_for_run(page)
    assert "600 rows" not in main(page).inner_text()
    # A valid value: the button builds exactly that size.
    if not body.is_visible():
        page.get_by_text("Another size…").click()
    enter("600", body.get_by_role("button", name="Build and measure 600 rows"))
    body.get_by_role("button", name="Build and measure 600 rows").click()
    expect(main(page).get_by_text("600 rows", exact=False).first).to_be_visible(timeout=120_000)
    assert exceptions(page) == []
