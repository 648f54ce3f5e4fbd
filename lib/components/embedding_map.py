"""The embedding map component: the corpus on a plotly.js scatter, a query point to drag.

While the learner drags, the browser lights up the k items nearest on the map every frame;
on release the component sends the position back (`released` = {"x", "y"}) and the page
asks Postgres for the true neighbours, whose ids come back as `true_ids` (dashed rings).
plotly.js is served by the app from the installed plotly package (no CDN).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import streamlit as st

from lib.components.assets import PLOTLY_LOADER_JS, ensure_plotly_static
from lib.space import EmbeddingSpace, Query

_HERE = Path(__file__).resolve().parent

# Tableau 10 and one more: eleven themes, told apart on a projector.
THEME_COLORS = [
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948",
    "#b07aa1", "#ff9da7", "#9c755f", "#79706e", "#17becf",
]  # fmt: skip

HTML = """<div class="es-root">
  <div class="es-stage"><div class="es-plot"></div><svg class="es-overlay"></svg>
    <div class="es-tip"></div></div>
  <div class="es-live"><span class="es-live-title"></span><ol class="es-live-list"></ol>
    <span class="es-status"></span></div>
  <div class="es-bar es-key">
    <span>● text</span><span>■ photo</span>
    <span>★ the query: drag it, or click anywhere</span>
    <span class="ring">◯ nearest on the map</span>
    <span>◌ nearest in <span class="es-dim"></span> dimensions (Postgres)</span>
  </div>
  <div class="es-error"></div>
</div>"""

_component = st.components.v2.component(
    "embedding_map",
    html=HTML,
    css=(_HERE / "embedding_map.css").read_text(),
    js=PLOTLY_LOADER_JS + (_HERE / "embedding_map.js").read_text(),
    isolate_styles=False,
)


def map_data(space: EmbeddingSpace, query: Query, k: int, true_ids: Sequence[str]) -> dict:
    """What the component draws: the corpus's map positions, the query, k and the true ids."""
    items = space.items
    ids = [it.id for it in items]
    signature = hashlib.sha256(
        f"{space.model_name}\0{len(items)}\0".encode() + "\0".join(ids).encode()
    ).hexdigest()[:16]
    themes = list(dict.fromkeys(it.theme for it in items))
    return {
        "signature": signature,
        "model": space.model_name,
        "dimension": space.dimension,
        "explained": list(space.explained),
        "points": {
            "id": ids,
            "x": [round(it.x, 5) for it in items],
            "y": [round(it.y, 5) for it in items],
            "kind": [it.kind for it in items],
            "theme": [it.theme for it in items],
            "text": [it.text for it in items],
            "lesson": [it.lesson for it in items],
        },
        "themes": themes,
        "colors": THEME_COLORS,
        "thumbs": dict(space.thumbnails),
        "query": {"x": query.x, "y": query.y, "label": query.label, "source": query.source},
        "k": k,
        "true_ids": list(true_ids),
    }


def embedding_map(
    space: EmbeddingSpace,
    query: Query,
    k: int,
    true_ids: Sequence[str],
    *,
    key: str,
    on_release: Callable[[], None],
) -> Any:
    """Mount the map; `on_release` runs (before the rerun) when a drag ends."""
    ensure_plotly_static()
    return _component(
        key=key,
        data=map_data(space, query, k, true_ids),
        on_released_change=on_release,
    )


def released(key: str) -> tuple[float, float] | None:
    """The position of the drag that just ended (inside `on_release`), or None."""
    value = st.session_state.get(key)
    pos = value.get("released") if value is not None else None
    if not isinstance(pos, dict):
        return None
    try:
        return float(pos["x"]), float(pos["y"])
    except (KeyError, TypeError, ValueError):
        return None
