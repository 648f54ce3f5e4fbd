"""The load benchmark's websocket client (bench/st_client.py) drives the real app as a browser
tab does: a page load, a widget inside a fragment, a widget of the whole page, a page change
through the sidebar's page hash, and messages the server sends as cache references."""

from __future__ import annotations

import asyncio
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from st_client import StreamlitSession  # noqa: E402

pytestmark = pytest.mark.db

L2 = "Euclidean (L2)  `<->`"


def _run(scenario):
    """Run an async scenario in a thread of its own: Playwright's sync API, used by other
    tests of the session, keeps an event loop running in this one."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, scenario()).result()


def _top_heading(session: StreamlitSession) -> str:
    return next(t for t in session.texts() if t.startswith("##### Top document under"))


def test_metric_switch_reruns_only_its_fragment_and_changes_the_top_heading(app_url):
    async def scenario():
        async with StreamlitSession(app_url, timeout=120) as session:
            load = await session.open("Distance metrics")
            before = _top_heading(session)
            metric = session.widget("Metric")
            switch = await session.set_widget("dm_metric", L2)
            return load, before, metric, switch, _top_heading(session), session.texts()

    load, before, metric, switch, after, texts = _run(scenario)
    assert load.status == "ok", load
    assert not load.exceptions
    assert "Cosine `<=>`" in before
    assert metric.key == "dm_metric" and metric.fragment_id  # it lives in an st.fragment
    assert switch.status == "ok" and switch.fragment, switch
    assert not switch.exceptions
    assert "L2 `<->`" in after and after != before
    assert "Distance metrics" in texts  # the rest of the page is still there


def _map(session: StreamlitSession) -> bytes:
    (node,) = [n for n in session.nodes() if n.kind == "bidi_component"]
    return node.element.SerializeToString()


def test_page_opened_by_url_reruns_itself_and_a_page_change_gets_the_map_from_cache(app_url):
    async def scenario():
        async with StreamlitSession(app_url, timeout=120) as session:
            opened = await session.open("Embedding space")  # its URL, in a new tab
            typed = await session.set_widget("Type a query", "a small cat")
            typed_texts, typed_map = session.texts(), _map(session)
            await session.open("Distance metrics")  # the sidebar links: by page hash
            back = await session.open("Embedding space")
            return opened, typed, typed_texts, typed_map, back, session.texts(), _map(session)

    opened, typed, typed_texts, typed_map, back, back_texts, back_map = _run(scenario)
    assert opened.status == "ok" and not opened.exceptions, opened
    assert typed.status == "ok" and not typed.fragment and not typed.exceptions, typed
    # The widget's rerun ran the page it is on (not the home page), with the text typed.
    assert "Embedding space" in typed_texts
    captions = [t for t in typed_texts if t.startswith("Query:")]
    assert len(captions) == 1 and "“a small cat”" in captions[0]
    # Back on the page, the same map: the server sends it as a reference to the copy this
    # client cached, and the client puts that copy back (an unresolved one fails the run).
    assert back.status == "ok", back
    assert "Embedding space" in back_texts and captions[0] in back_texts
    assert back.bytes_received < typed.bytes_received - 10_000
    assert back_map == typed_map


def test_a_selectbox_is_set_by_the_option_it_shows(app_url):
    async def scenario():
        async with StreamlitSession(app_url, timeout=120) as session:
            await session.open("Embedding space")
            picker = session.widget("_model_picker")
            options = list(picker.proto.options)
            other = next(o for o in options if o != options[picker.proto.default])
            switched = await session.set_widget("_model_picker", other)
            texts = session.texts()
            shown = session.widget("_model_picker").proto
            with pytest.raises(ValueError, match="has no option"):
                await session.set_widget("_model_picker", "no such model")
            return other, switched, texts, shown

    other, switched, texts, shown = _run(scenario)
    assert switched.status == "ok", switched.exceptions
    assert list(shown.options)[shown.default] == other  # the page now shows it picked
    assert any(other in t for t in texts)
