"""The Embedding space page in Chromium: drag the query, type a query, upload a bad file."""

import re

import pytest
from browser_util import exceptions, open_page
from playwright.sync_api import expect

from lib.corpus import load_items
from lib.embeddings.registry import load_model
from lib.space import EmbeddingSpace
from lib.vectors import embeddable, item_vectors

pytestmark = pytest.mark.browser

MAP = ".es-root"


@pytest.fixture(scope="module")
def space():
    """The same map the page draws (same vectors, same projection), without the database."""
    model = load_model("all-MiniLM-L6-v2")
    items = embeddable(model, load_items())
    return EmbeddingSpace(
        model.info.name, "unused", items, item_vectors(model, items), normalized=True
    )


def open_map(page, app_url):
    open_page(page, f"{app_url}/Embedding_space")
    page.wait_for_selector(f'{MAP}[data-ready="true"]')
    page.locator(".es-plot").scroll_into_view_if_needed()


def highlighted(page) -> list[str]:
    return (page.locator(MAP).get_attribute("data-highlighted") or "").split(",")


def client_point(page, item_id=None) -> tuple[float, float]:
    p = page.evaluate("id => document.querySelector('.es-root').__es.clientPoint(id)", item_id)
    return p["x"], p["y"]


def query_caption(page) -> str:
    return page.get_by_text(re.compile(r"^Query: ")).inner_text()


def test_dragging_the_point_onto_a_cluster_lights_up_that_clusters_items(app_url, page, space):
    open_map(page, app_url)
    theme = {it.id: it.theme for it in space.items}
    before = highlighted(page)
    assert len(before) == 5 and not any(theme[i] == "weather" for i in before)
    # The weather item whose neighbourhood on the map is most weather: a cluster's heart.
    weather = [it for it in space.items if it.theme == "weather"]
    target = max(
        weather,
        key=lambda it: sum(n.item.theme == "weather" for n in space.map_nearest(it.x, it.y, 5)),
    )
    caption = query_caption(page)

    page.mouse.move(*client_point(page))
    page.mouse.down()
    page.mouse.move(*client_point(page, target.id), steps=12)
    during = highlighted(page)
    assert during != before
    assert sum(theme[i] == "weather" for i in during) >= 4, [theme[i] for i in during]
    assert target.id in during
    page.mouse.up()

    # On release the server answers: new caption, new true neighbours, the same lit items.
    page.wait_for_function(
        "old => [...document.querySelectorAll('p, div')].some("
        "e => e.innerText && e.innerText.startsWith('Query: ') && e.innerText !== old)",
        arg=caption,
    )
    expect(page.locator(MAP)).not_to_have_class(re.compile("es-waiting"))
    assert highlighted(page) == during
    true_list = page.locator(".st-key-es_true_list table").inner_text()
    assert "weather" in true_list
    assert exceptions(page) == []


def test_typing_a_small_cat_puts_a_cat_item_first(app_url, page):
    open_page(page, f"{app_url}/Embedding_space")
    box = page.get_by_label("Type a query", exact=True)
    box.fill("a small cat")
    box.press("Enter")
    first = page.locator(".st-key-es_true_list table tbody tr").first
    expect(first).to_contain_text("cat", timeout=60_000)
    expect(page.get_by_text("Query: “a small cat”")).to_be_visible()
    expect(page.locator(".es-handle-label")).to_have_text("“a small cat”")
    assert exceptions(page) == []


def test_uploading_a_non_image_shows_the_error(app_url, page):
    open_page(page, f"{app_url}/Embedding_space")
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(
        files=[{"name": "notes.png", "mimeType": "image/png", "buffer": b"my notes, no pixels\n"}]
    )
    alert = page.locator('[data-testid="stAlert"]').filter(has_text="notes.png is not an image")
    expect(alert).to_be_visible(timeout=60_000)
    # The page still works: the map and both lists are there.
    expect(page.locator(f'{MAP}[data-ready="true"]')).to_be_visible()
    expect(page.locator(".st-key-es_true_list table")).to_be_visible()
    assert exceptions(page) == []


def test_uploading_a_photo_under_a_text_only_model_says_so(app_url, page):
    open_page(page, f"{app_url}/Embedding_space")
    photo = next(it for it in load_items() if it.kind == "image")
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(
        str(photo.image_path)
    )
    alert = page.locator('[data-testid="stAlert"]').filter(
        has_text="all-MiniLM-L6-v2 embeds text only, so it cannot place an image on its map"
    )
    expect(alert).to_be_visible(timeout=60_000)
    assert exceptions(page) == []
