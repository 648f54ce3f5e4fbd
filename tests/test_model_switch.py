"""Two real models offline in the sidebar, and switching them changes what the pages show: the
Embedding space map (its items' coordinates) and the Distance metrics rankings. Under AppTest,
through the entrypoint, as a browser reaches the pages."""

import json

import numpy as np
import pytest
from apptest_util import app_at

from lib.core.embeddings.local import MINILM
from lib.core.embeddings.onnx_local import MINILM_INT8, MINILM_L3


@pytest.fixture
def space_app(pg_url, monkeypatch):
    return app_at("pages/1_Embedding_space.py", pg_url, monkeypatch)


@pytest.fixture
def metrics_app(pg_url, monkeypatch):
    return app_at("pages/2_Distance_metrics.py", pg_url, monkeypatch)


def picker(at):
    return at.sidebar.selectbox(key="_model_picker")


def switch(at, name: str) -> None:
    picker(at).select(name).run()
    assert not at.exception, [e.value for e in at.exception]
    assert picker(at).value == name


def map_data(at) -> dict:
    """What the page sent the map component: its model, its points, their coordinates."""
    (element,) = [
        e for e in at.get("bidi_component") if e.proto.component_name.endswith("embedding_map")
    ]
    return json.loads(element.proto.json)


def coordinates(data: dict) -> dict[str, tuple[float, float]]:
    p = data["points"]
    return dict(zip(p["id"], zip(p["x"], p["y"], strict=True), strict=True))


def test_the_sidebar_offers_the_offline_models(space_app):
    space_app.run()
    assert not space_app.exception, [e.value for e in space_app.exception]
    options = picker(space_app).options
    assert {MINILM.name, MINILM_L3.name, MINILM_INT8.name} <= set(options)
    assert picker(space_app).value == MINILM.name, "the default stays first"


def test_switching_the_model_redraws_the_embedding_space_map(space_app):
    space_app.run()
    assert not space_app.exception, [e.value for e in space_app.exception]
    before = map_data(space_app)
    switch(space_app, MINILM_L3.name)
    after = map_data(space_app)
    assert (before["model"], after["model"]) == (MINILM.name, MINILM_L3.name)
    assert after["dimension"] == before["dimension"] == 384
    a, b = coordinates(before), coordinates(after)
    assert set(a) == set(b), "the same lesson items, each model's own vectors"
    xy_a = np.array([a[i] for i in sorted(a)])
    xy_b = np.array([b[i] for i in sorted(a)])
    # PCA may flip an axis: compare each axis up to its sign
    moved = np.minimum(np.abs(xy_a - xy_b), np.abs(xy_a + xy_b)).max()
    print(f"largest move of an item on the map (up to an axis's sign): {moved:.3f}")
    print(f"variance kept: {before['explained']} -> {after['explained']}")
    assert moved > 0.1
    assert before["explained"] != after["explained"]
    assert before["gram"] != after["gram"], "the items' cosine similarities differ too"
    tables = "\n".join(m.value for m in space_app.markdown)
    assert f"**{MINILM_L3.name}** embeds (384 dimensions)" in tables


def corpus_rankings(at):
    """The table of the corpus's top 10 under each metric (the toy's table has 4 rows)."""
    (table,) = [d.value for d in at.dataframe if len(d.value) == 10]
    return table


def test_switching_the_model_changes_the_distance_metrics_rankings(metrics_app):
    metrics_app.run()
    assert not metrics_app.exception, [e.value for e in metrics_app.exception]
    before = corpus_rankings(metrics_app)
    switch(metrics_app, MINILM_L3.name)
    after = corpus_rankings(metrics_app)
    print(before.iloc[:, 0].to_string(), after.iloc[:, 0].to_string(), sep="\n")
    assert list(before.columns) == list(after.columns)
    assert not before.equals(after)
    cosine = before.columns[0]
    names_before = [cell.rsplit("   ", 1)[0] for cell in before[cosine]]
    names_after = [cell.rsplit("   ", 1)[0] for cell in after[cosine]]
    assert names_before != names_after, "another model, another top 10 under cosine"
    shown = "\n".join(m.value for m in metrics_app.markdown)
    assert f"`{MINILM_L3.name}` returns **unit-length vectors**" in shown


def test_comparing_with_a_second_384_d_model_runs_without_an_error(space_app):
    """With a second offline model of the same dimension, the page's cross-model query shows
    the silent trap: Postgres compares the two spaces and says nothing."""
    space_app.run()
    button = next(
        b for b in space_app.button if b.label.startswith("Compare this table with another")
    )
    button.click().run()
    assert not space_app.exception, [e.value for e in space_app.exception]
    assert not space_app.error
    captions = " ".join(c.value for c in space_app.caption)
    assert f"{MINILM_L3.name}'s vector of “a small cat” (384 dimensions)" in captions
    assert any("ran it without complaint" in w.value for w in space_app.warning)
