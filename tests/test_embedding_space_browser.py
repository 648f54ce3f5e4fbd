"""The Embedding space page in Chromium: the lesson's map, dragging the query over every item,
adding themes, typing a query, uploading a bad file."""

import re

import pytest
from browser_util import exceptions, open_page, wait_for_run
from playwright.sync_api import expect

from lib.core.corpus import load_items

pytestmark = pytest.mark.browser

MAP = ".es-root"
THEME_PILLS = ".st-key-es_themes button[aria-pressed]"  # not the label's help button
WAIT = 60_000  # ms: the map waits for plotly.js and a script run, on a busy machine
LESSON_TEXTS = {
    "a small cat", "tabby cat", "a puppy", "a red car", "a pickup truck", "a motorbike",
    "a highway",
}  # fmt: skip

# Every label drawn on the map, and every pair of them whose boxes intersect.
OVERLAPS_JS = """() => {
  const els = [...document.querySelectorAll('.es-root .es-labels text')];
  const r = els.map((e) => e.getBoundingClientRect());
  const bad = [];
  for (let i = 0; i < r.length; i++)
    for (let j = i + 1; j < r.length; j++)
      if (r[i].left < r[j].right && r[j].left < r[i].right &&
          r[i].top < r[j].bottom && r[j].top < r[i].bottom)
        bad.push([els[i].textContent, els[j].textContent]);
  return {labels: els.map((e) => e.textContent), bad};
}"""


def open_map(page, app_url):
    open_page(page, f"{app_url}/Embedding_space")
    page.wait_for_selector(f'{MAP}[data-ready="true"]')
    page.locator(".es-plot").scroll_into_view_if_needed()


def attr(page, name: str) -> str:
    return page.locator(MAP).get_attribute(name) or ""


def highlighted(page) -> list[str]:
    return attr(page, "data-highlighted").split(",")


def client_point(page, item_id=None) -> tuple[float, float]:
    p = page.evaluate("id => document.querySelector('.es-root').__es.clientPoint(id)", item_id)
    return p["x"], p["y"]


def next_frame(page) -> None:
    """Wait until the browser has drawn what the last pointer event asked for."""
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")


def labels(page) -> dict:
    return page.evaluate(OVERLAPS_JS)


def add_themes(page, *themes: str) -> None:
    """Add each theme in turn: the map has more items (its own) before the next click."""
    for theme in themes:
        items = attr(page, "data-items")
        page.locator(THEME_PILLS, has_text=theme).first.click()
        expect(page.locator(MAP)).not_to_have_attribute("data-items", items, timeout=WAIT)
        wait_for_run(page)


def query_caption(page) -> str:
    return page.get_by_text(re.compile(r"^Query: ")).inner_text()


def test_the_default_map_shows_the_lesson_items_labelled_without_overlap(app_url, page):
    open_map(page, app_url)
    assert attr(page, "data-items") == "7"
    lesson = page.eval_on_selector_all(".es-label-lesson", "els => els.map(e => e.textContent)")
    assert set(lesson) == LESSON_TEXTS
    drawn = labels(page)
    assert drawn["bad"] == [] and "your point" in drawn["labels"]
    # The star starts on "a small cat": the line under the map says what Postgres found.
    line = page.locator(".es-nearest-text")
    expect(line).to_have_text(re.compile(r"^nearest: a small cat · d = 0\.\d\d$"), timeout=WAIT)
    assert attr(page, "data-nearest-source") == "postgres"
    assert exceptions(page) == []


def test_dragging_over_every_item_names_it_nearest_and_postgres_agrees_on_release(app_url, page):
    """The drag test over all items: with every theme on the map (114 texts), the star is
    dragged onto each item in turn; the live line, computed in the browser from the query the
    point makes, names that item. Let go on tabby cat, and Postgres says the same."""
    open_map(page, app_url)
    themes = page.locator(THEME_PILLS).all_inner_texts()
    add_themes(page, *[t.rsplit(" (", 1)[0] for t in themes])
    expect(page.locator(MAP)).to_have_attribute("data-items", "114", timeout=WAIT)
    ids = page.evaluate("() => document.querySelector('.es-root').__es.ids")
    assert len(ids) == 114

    page.mouse.move(*client_point(page))
    page.mouse.down()
    named, overlapping = [], []
    for n, item_id in enumerate(ids):
        page.mouse.move(*client_point(page, item_id))
        next_frame(page)
        assert attr(page, "data-nearest-source") == "live"
        named.append(attr(page, "data-nearest") == item_id)
        if n % 10 == 0:
            overlapping += labels(page)["bad"]
    assert sum(named) >= 0.95 * len(ids), f"{sum(named)} of {len(ids)}"
    assert overlapping == []

    page.mouse.move(*client_point(page, "tabby-cat"))
    next_frame(page)
    live = float(attr(page, "data-nearest-distance"))
    assert attr(page, "data-nearest") == "tabby-cat"
    page.mouse.up()
    expect(page.locator(MAP)).to_have_attribute("data-nearest-source", "postgres", timeout=WAIT)
    assert attr(page, "data-nearest") == "tabby-cat"
    assert abs(float(attr(page, "data-nearest-distance")) - live) < 1e-3
    first = page.locator(".st-key-es_true_list table tbody tr").first
    expect(first).to_contain_text("tabby cat", timeout=WAIT)
    assert "tabby cat" in query_caption(page)
    assert exceptions(page) == []


def test_adding_a_theme_refits_the_map_and_dragging_lights_up_its_cluster(app_url, page):
    open_map(page, app_url)
    title = page.locator(".es-plot .g-xtitle").text_content()
    add_themes(page, "weather")
    expect(page.locator(MAP)).to_have_attribute("data-items", "15", timeout=WAIT)
    expect(page.locator(".es-plot .g-xtitle")).not_to_have_text(title, timeout=WAIT)
    expect(
        page.get_by_text(re.compile(r"the lesson's items and 1 theme\(s\), 15 items"))
    ).to_be_visible(timeout=WAIT)
    assert labels(page)["bad"] == []

    view = page.evaluate(
        "() => { const v = document.querySelector('.es-root').__es;"
        " return {ids: v.ids, x: Array.from(v.px), y: Array.from(v.py)}; }"
    )
    lesson = {it.id for it in load_items() if it.lesson}
    weather = [i for i in view["ids"] if i not in lesson]

    def five_nearest(j: int) -> list[str]:
        d = [
            (view["x"][i] - view["x"][j]) ** 2 + (view["y"][i] - view["y"][j]) ** 2
            for i in range(15)
        ]
        return [view["ids"][i] for i in sorted(range(15), key=d.__getitem__)[:5]]

    # The weather item whose neighbourhood on the map is most weather: the cluster's heart.
    heart = max(
        (view["ids"].index(w) for w in weather),
        key=lambda j: sum(i in weather for i in five_nearest(j)),
    )
    target = view["ids"][heart]
    caption = query_caption(page)
    page.mouse.move(*client_point(page))
    page.mouse.down()
    page.mouse.move(*client_point(page, target), steps=12)
    next_frame(page)
    during = highlighted(page)
    assert target in during and sum(i in weather for i in during) >= 4, during
    assert labels(page)["bad"] == []
    page.mouse.up()

    # On release the server answers: new caption, the same lit items, weather in the list.
    page.wait_for_function(
        "old => [...document.querySelectorAll('p, div')].some("
        "e => e.innerText && e.innerText.startsWith('Query: ') && e.innerText !== old)",
        arg=caption,
    )
    expect(page.locator(MAP)).not_to_have_class(re.compile("es-waiting"), timeout=WAIT)
    assert highlighted(page) == during
    assert "weather" in page.locator(".st-key-es_true_list table").inner_text()
    assert exceptions(page) == []


def test_typing_a_small_cat_puts_a_cat_item_first(app_url, page):
    # Typed once the map is drawn. Typed while the map's script still loads, the lists and the
    # SQL follow the typed query but the map sometimes keeps its first query's label (seen on
    # a loaded machine, about one run in four; not understood yet).
    open_map(page, app_url)
    box = page.get_by_label("Type a query", exact=True)
    box.fill("a small cat")
    box.press("Enter")
    first = page.locator(".st-key-es_true_list table tbody tr").first
    expect(first).to_contain_text("cat", timeout=60_000)
    expect(page.get_by_text("Query: “a small cat”")).to_be_visible(timeout=WAIT)
    expect(page.locator(".es-error")).to_have_text("")  # the map drew every update
    try:
        expect(page.locator(".es-handle-label")).to_have_text("“a small cat”", timeout=WAIT)
    except AssertionError:
        state = page.evaluate(
            """() => { const v = document.querySelector('.es-root').__es;
            return {roots: document.querySelectorAll('.es-root').length, label: v.queryLabel,
                    dragging: v.dragging, data: v.data && v.data.query,
                    ready: document.querySelector('.es-root').getAttribute('data-ready')}; }"""
        )
        query_lines = [
            line
            for line in page.locator('[data-testid="stMain"]').inner_text().splitlines()
            if line.startswith("Query:")
        ]
        raise AssertionError(f"map state: {state}; page: {query_lines}") from None
    assert exceptions(page) == []


def test_uploading_a_non_image_shows_the_error(app_url, page):
    open_page(page, f"{app_url}/Embedding_space")
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(
        files=[{"name": "notes.png", "mimeType": "image/png", "buffer": b"my notes, no pixels\n"}]
    )
    alert = page.locator('[data-testid="stAlert"]').filter(has_text="notes.png is not an image")
    expect(alert).to_be_visible(timeout=60_000)
    # The page still works: the map and both lists are there.
    expect(page.locator(f'{MAP}[data-ready="true"]')).to_be_visible(timeout=WAIT)
    expect(page.locator(".st-key-es_true_list table")).to_be_visible(timeout=WAIT)
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


def test_the_plan_runs_only_when_its_expander_is_opened_and_shows_a_sequential_scan(app_url, page):
    open_page(page, f"{app_url}/Embedding_space")
    box = page.get_by_test_id("stExpander").filter(has_text="Proof that it is exact")
    assert "Seq Scan" not in box.inner_text()  # closed: no EXPLAIN ran for it
    box.get_by_text("Proof that it is exact").click()
    expect(box).to_contain_text("Seq Scan", timeout=WAIT)
    text = box.inner_text()
    assert "EXPLAIN (COSTS OFF)" in text and "Index Scan" not in text
    assert "checked on every run" in text
    assert exceptions(page) == []
