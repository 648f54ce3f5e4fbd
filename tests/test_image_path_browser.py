"""The image path of the Embedding space page in Chromium, against a local fake of Voyage's API.

No image model can be installed here, so the app runs voyage-multimodal-3.5 against the fake
started by the `voyage_app` fixture (tests/voyage_fake.py, which checks every request against
the documented API). Its vectors are not Voyage's: texts get all-MiniLM-L6-v2's vectors, and a
photo the corpus holds (recognised by its pixels, also scaled) gets its caption's vector plus
a little noise (tests/fake_multimodal.py). So what is tested is the path — upload, request,
Postgres, the map, the hover, the model switch — with vectors that put a photo by its caption.
"""

import io
import re

import pytest
from browser_util import exceptions, open_page, wait_for_run
from playwright.sync_api import expect

from lib.core.corpus import load_items

pytestmark = pytest.mark.browser

MAP = ".es-root"
WAIT = 60_000  # ms: the map waits for plotly.js and a script run, on a busy machine
VOYAGE = "voyage-multimodal-3.5"
CAT_PHOTO = "photo-cat-chelsea"


def open_map(page, url):
    open_page(page, f"{url}/Embedding_space", timeout=180)
    page.wait_for_selector(f'{MAP}[data-ready="true"]', timeout=180_000)
    page.locator(".es-plot").scroll_into_view_if_needed()


def view(page, expression: str):
    return page.evaluate(f"() => {{ const v = document.querySelector('.es-root').__es; "
                         f"return {expression}; }}")  # fmt: skip


def client_point(page, item_id=None) -> tuple[float, float]:
    p = page.evaluate("id => document.querySelector('.es-root').__es.clientPoint(id)", item_id)
    return p["x"], p["y"]


def cat_photo_png(scale: float = 0.6) -> bytes:
    """The corpus's cat photo scaled down, as a PNG: a new file showing the same cat."""
    photo = next(it for it in load_items() if it.id == CAT_PHOTO).load_image()
    small = photo.resize((int(photo.width * scale), int(photo.height * scale)))
    buf = io.BytesIO()
    small.save(buf, format="PNG")
    return buf.getvalue()


def test_the_multimodal_map_shows_the_lesson_photo_with_its_thumbnail_on_hover(voyage_app, page):
    url, fake = voyage_app
    open_map(page, url)
    assert page.locator(MAP).get_attribute("data-model") == VOYAGE
    # The app says where its vectors come from: the fake, not Voyage AI.
    sidebar = page.locator('[data-testid="stSidebar"]')
    expect(sidebar).to_contain_text(f"served by {fake.base_url} (VOYAGE_BASE_URL)", timeout=WAIT)
    # The lesson's map of a multimodal model: its 7 texts and the cat photo, labelled.
    assert view(page, "v.ids.length") == 8
    assert view(page, "Object.keys(v.thumbs)") == [CAT_PHOTO]
    labelled = page.eval_on_selector_all(".es-label-lesson", "els => els.map(e => e.dataset.id)")
    assert CAT_PHOTO in labelled
    # The photo sits with the cats: among its 3 nearest on the map are cat texts.
    x, y = view(page, f"[v.px[v.index.get('{CAT_PHOTO}')], v.py[v.index.get('{CAT_PHOTO}')]]")
    near = view(
        page,
        f"v.ids.map((id, i) => [Math.hypot(v.px[i] - {x}, v.py[i] - {y}), id])"
        ".sort((a, b) => a[0] - b[0]).slice(1, 3).map((p) => p[1])",
    )
    assert set(near) == {"a-small-cat", "tabby-cat"}

    page.mouse.move(*client_point(page, CAT_PHOTO))
    tip = page.locator(".es-tip img")
    expect(tip).to_be_visible(timeout=WAIT)
    assert "/app/static/thumbs/" in tip.get_attribute("src")
    page.wait_for_function(
        "() => { const i = document.querySelector('.es-tip img');"
        " return i.complete && i.naturalWidth > 0 && i.naturalWidth <= 120; }"
    )
    assert exceptions(page) == []


def test_an_uploaded_photo_is_embedded_through_the_api_and_placed_by_its_cat(voyage_app, page):
    url, fake = voyage_app
    open_map(page, url)
    before = len(fake.requests)
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(
        files=[{"name": "my-cat.png", "mimeType": "image/png", "buffer": cat_photo_png()}]
    )
    expect(page.locator(".es-handle-label")).to_have_text("photo: my-cat.png", timeout=60_000)
    expect(page.get_by_text("Query: photo: my-cat.png")).to_be_visible(timeout=WAIT)

    # One request, as the API documents it: the photo as a PNG data URL, input_type query.
    sent = [r.body for r in fake.requests[before:]]
    assert len(sent) == 1 and sent[0]["input_type"] == "query"
    (piece,) = sent[0]["inputs"][0]["content"]
    assert piece["type"] == "image_base64"
    assert piece["image_base64"].startswith("data:image/png;base64,")

    # Postgres's first true neighbour is the corpus's photo of the same cat, and the map
    # places the upload by it: the photo lights up among the nearest on the map.
    first = page.locator(".st-key-es_true_list table tbody tr").first
    expect(first).to_contain_text("Chelsea, a tabby cat", timeout=WAIT)
    expect(first).to_contain_text("image", timeout=WAIT)
    highlighted = page.locator(MAP).get_attribute("data-highlighted").split(",")
    assert CAT_PHOTO in highlighted[:3]
    expect(page.locator(".es-nearest-text")).to_have_text(
        re.compile(r"^nearest: Chelsea, a tabby cat, looking straight at the camera · d = "),
        timeout=WAIT,
    )
    assert exceptions(page) == []


def test_switching_the_model_redraws_the_map_in_the_new_space(voyage_app, page):
    url, _ = voyage_app
    open_map(page, url)
    title = page.locator(".es-plot .g-xtitle").text_content()
    page.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]').click()
    page.get_by_role("option", name="all-MiniLM-L6-v2", exact=True).click()
    expect(page.locator(MAP)).to_have_attribute("data-model", "all-MiniLM-L6-v2", timeout=WAIT)
    wait_for_run(page)
    # MiniLM embeds text only: the same lesson texts, no photo, another projection.
    assert view(page, "v.ids.length") == 7
    assert view(page, "Object.keys(v.thumbs).length") == 0
    expect(page.locator(".es-plot .g-xtitle")).not_to_have_text(title, timeout=WAIT)
    expect(page.locator(".es-plot .point")).to_have_count(7, timeout=WAIT)
    true_list = page.locator(".st-key-es_true_list table")
    expect(true_list).not_to_contain_text("image", timeout=WAIT)
    assert exceptions(page) == []
