"""The embedding map component: the items a map shows on a plotly.js scatter, a query to drag.

While the learner drags, the browser lights up the k items nearest on the map, labels them,
and writes the live line "nearest: … · d = …": the cosine distance, in the model's full
space, of the query the point would make (the same blend as `EmbeddingSpace.lift`, computed
from the items' cosine similarities, sent once as `gram`). On release the component sends
the position back (`released` = {"x", "y"}) and the page asks Postgres for the true
neighbours, whose ids come back as `true_ids` (dashed rings) and whose first is the line.
plotly.js and the photos' thumbnails are served by the app from static/ (no CDN, and no
image bytes in the payload of a rerun).
"""

from __future__ import annotations

import base64
import hashlib
import os
import threading
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st

from lib.core.corpus import CorpusItem, content_hash
from lib.core.store import Neighbor
from lib.lessons.space.embedding_space import LIFT_ITEMS, EmbeddingSpace, Query, thumbnail_jpeg
from lib.ui.assets import PLOTLY_LOADER_JS, STATIC_DIR, ensure_plotly_static

_HERE = Path(__file__).resolve().parent
THUMBS_DIR = STATIC_DIR / "thumbs"

# Tableau 10 and one more: eleven themes, told apart on a projector. A theme keeps its
# colour whichever themes the map shows.
THEME_COLORS = [
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948",
    "#b07aa1", "#ff9da7", "#9c755f", "#79706e", "#17becf",
]  # fmt: skip

HTML = """<div class="es-root">
  <div class="es-stage"><div class="es-plot"></div><svg class="es-overlay"></svg>
    <div class="es-tip"></div></div>
  <div class="es-nearest"><span class="es-nearest-text"></span>
    <span class="es-nearest-how"></span><span class="es-status"></span></div>
  <div class="es-live"><span class="es-live-title"></span><ol class="es-live-list"></ol></div>
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


@lru_cache(maxsize=256)
def thumbnail_url(item: CorpusItem) -> str:
    """The photo's thumbnail, written once into static/thumbs/, as a URL relative to the app."""
    name = content_hash(item)[:24] + ".jpg"
    path = THUMBS_DIR / name
    if not path.exists():
        THUMBS_DIR.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_bytes(thumbnail_jpeg(item))
        tmp.replace(path)
    return f"app/static/thumbs/{name}"


def gram_base64(gram: np.ndarray) -> str:
    """The upper triangle (diagonal included, row by row) of a cosine-similarity matrix, as
    little-endian int16 of round(32767 × similarity), base64: 2 bytes a pair."""
    upper = gram[np.triu_indices(len(gram))]
    return base64.b64encode(np.round(upper * 32767).astype("<i2").tobytes()).decode("ascii")


@lru_cache(maxsize=32)
def map_layers(space: EmbeddingSpace) -> dict:
    """What the component draws that only the map decides (built once per cached space)."""
    items = space.items
    ids = [it.id for it in items]
    signature = hashlib.sha256(
        "\0".join([space.model_name, *space.themes, "", *ids]).encode()
    ).hexdigest()[:16]
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
        "themes": list(dict.fromkeys(it.theme for it in items)),
        "colors": {t: THEME_COLORS[i % len(THEME_COLORS)] for i, t in enumerate(space.all_themes)},
        "thumbs": {it.id: thumbnail_url(it) for it in space.photos},
        "lift": {"items": LIFT_ITEMS, "softening": space.softening},
        "gram": gram_base64(space.gram),
    }


def map_data(
    space: EmbeddingSpace, query: Query, k: int, true_neighbours: Sequence[Neighbor]
) -> dict:
    """The map's layers, the query, k, and Postgres's answer (ids, and the first with its
    distance, for the live line)."""
    first = true_neighbours[0] if true_neighbours else None
    return {
        **map_layers(space),
        "query": {"x": query.x, "y": query.y, "label": query.label, "source": query.source},
        "k": k,
        "true_ids": [n.id for n in true_neighbours],
        "nearest": None if first is None else {"id": first.id, "distance": first.distance},
    }


def embedding_map(
    space: EmbeddingSpace,
    query: Query,
    k: int,
    true_neighbours: Sequence[Neighbor],
    *,
    key: str,
    on_release: Callable[[], None],
) -> Any:
    """Mount the map; `on_release` runs (before the rerun) when a drag ends."""
    ensure_plotly_static()
    return _component(
        key=key,
        data=map_data(space, query, k, true_neighbours),
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
