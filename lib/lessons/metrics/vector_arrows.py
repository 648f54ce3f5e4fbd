"""The vector arrows component: documents and a query as draggable 2D arrows (plotly.js).

Python decides everything the picture shows (arrows, labels, the chosen metric's overlay:
the angle for cosine, the straight lines for L2, the projections for inner product);
the browser only draws it and lets the learner drag a tip. On release the component sends
`moved` = {"name", "x", "y"}; `vector_arrows(..., on_move=...)` hands it to the page.
plotly.js is served by the app from the installed plotly package (no CDN).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st

from lib.lessons.metrics.rankings import X_RANGE, Y_RANGE, Ranked, normalised
from lib.ui.assets import PLOTLY_LOADER_JS, ensure_plotly_static

_HERE = Path(__file__).resolve().parent

QUERY = "q"
QUERY_COLOR = "#d93025"
# Colour-blind-safe and distinct on a projector (Okabe-Ito, then two more).
DOC_COLORS = [
    "#0072b2", "#009e73", "#cc79a7", "#e69f00",
    "#56b4e9", "#7f3c8d", "#8c6d31", "#404040",
]  # fmt: skip
POSITIONS = ["top right", "bottom right", "bottom left", "top left"]
# The window when every vector is normalised: the unit circle, same shape as the other.
UNIT_X_RANGE = (-2.0, 2.0)
UNIT_Y_RANGE = (-1.3, 1.3)

_component = st.components.v2.component(
    "vector_arrows",
    css=(_HERE / "vector_arrows.css").read_text(),
    js=PLOTLY_LOADER_JS + (_HERE / "vector_arrows.js").read_text(),
    isolate_styles=False,
)


def doc_color(index: int) -> str:
    return DOC_COLORS[index % len(DOC_COLORS)]


def _score_text(metric_key: str, r: Ranked) -> str:
    if metric_key == "cosine":
        return "cos undefined" if math.isnan(r.score) else f"cos {r.score:.3f}"
    if metric_key == "l2":
        return f"dist {r.score:.2f}"
    return f"q·{r.name} = {r.score + 0.0:.2f}"


def _angle(x: float, y: float) -> float:
    return math.atan2(y, x)


def picture_data(
    names: Sequence[str],
    docs: np.ndarray,
    query: np.ndarray,
    metric_key: str,
    ranking: Sequence[Ranked],
    *,
    normalise: bool = False,
    max_height: int = 560,
) -> dict[str, Any]:
    """Everything the component draws, as JSON: arrows, labels and the metric's overlay.

    Normalised, every arrow ends on the unit circle, so the window closes in on it.
    """
    x_range, y_range = (UNIT_X_RANGE, UNIT_Y_RANGE) if normalise else (X_RANGE, Y_RANGE)
    raw_docs = np.asarray(docs, dtype=np.float64)
    raw_query = np.asarray(query, dtype=np.float64).reshape(-1)
    shown_docs = normalised(raw_docs).astype(np.float64) if normalise else raw_docs
    shown_query = normalised(raw_query[None, :])[0].astype(np.float64) if normalise else raw_query
    by_name = {r.name: r for r in ranking}
    top = ranking[0].name if ranking and not math.isnan(ranking[0].value) else None

    qx, qy = float(shown_query[0]), float(shown_query[1])
    q_length = math.hypot(qx, qy)
    # Each label sits beyond its tip, away from its own arrow; near another label it takes
    # the next free corner (twins, tips that almost touch, the zero vector at the origin).
    near = 0.09 * (x_range[1] - x_range[0])
    placed: list[tuple[float, float, str]] = []

    def place(x: float, y: float, first: str) -> str:
        taken = {pos for px, py, pos in placed if math.hypot(px - x, py - y) < near}
        start = POSITIONS.index(first)
        rotation = [POSITIONS[(start + k) % len(POSITIONS)] for k in range(len(POSITIONS))]
        position = next((p for p in rotation if p not in taken), first)
        placed.append((x, y, position))
        return position

    query_position = place(
        qx, qy, ("bottom" if qy >= 0 else "top") + (" right" if qx >= 0 else " left")
    )
    points = []
    for i, (name, (x, y)) in enumerate(zip(names, shown_docs, strict=True)):
        length = math.hypot(x, y)
        beyond = ("top" if y >= 0 else "bottom") + (" right" if x >= 0 else " left")
        position = place(x, y, beyond if length > 0 else "bottom left")
        score = _score_text(metric_key, by_name[name]) if name in by_name else ""
        size = "" if normalise else f" ‖{length:.2f}‖"
        points.append(
            {
                "name": name,
                "kind": "document",
                "x": float(x),
                "y": float(y),
                "color": doc_color(i),
                "label": f"<b>{name}</b>{size}<br>{score}",
                "hover": f"{name} = [{x:.2f}, {y:.2f}], length {length:.2f}, {score}",
                "textposition": position,
                "top": name == top,
            }
        )
    points.append(
        {
            "name": QUERY,
            "kind": "query",
            "x": qx,
            "y": qy,
            "color": QUERY_COLOR,
            "label": "<b>query</b>" + ("" if normalise else f" ‖{q_length:.2f}‖"),
            "hover": f"query = [{qx:.2f}, {qy:.2f}], length {q_length:.2f}",
            "textposition": query_position,
            "top": False,
        }
    )
    extent = max(map(abs, (*x_range, *y_range)))
    segments, labels = _overlay(metric_key, names, shown_docs, (qx, qy), top, extent)
    return {
        "points": points,
        "segments": segments,
        "labels": labels,
        "metric": metric_key,
        "x_range": list(x_range),
        "y_range": list(y_range),
        "max_height": max_height,
    }


def _overlay(
    metric_key: str,
    names: Sequence[str],
    docs: np.ndarray,
    query: tuple[float, float],
    top: str | None,
    extent: float,
) -> tuple[list[dict], list[dict]]:
    """The chosen metric drawn: the angle (cosine), tip-to-tip lines (L2), projections (IP)."""
    qx, qy = query
    q_len = math.hypot(qx, qy)
    segments: list[dict] = []
    labels: list[dict] = []
    if metric_key == "l2":
        for i, (x, y) in enumerate(docs):
            segments.append(
                {"x0": qx, "y0": qy, "x1": float(x), "y1": float(y), "color": doc_color(i)}
            )
    elif metric_key == "ip" and q_len > 0:
        ux, uy = qx / q_len, qy / q_len
        far = extent * 2
        segments.append(
            {"x0": -ux * far, "y0": -uy * far, "x1": ux * far, "y1": uy * far,
             "color": QUERY_COLOR, "dash": "dot", "width": 1.5}
        )  # fmt: skip
        for i, (x, y) in enumerate(docs):
            t = x * ux + y * uy
            segments.append(
                {"x0": float(x), "y0": float(y), "x1": t * ux, "y1": t * uy,
                 "color": doc_color(i), "dash": "dot"}
            )  # fmt: skip
    elif metric_key == "cosine" and top is not None and q_len > 0:
        i = list(names).index(top)
        x, y = docs[i]
        if math.hypot(x, y) > 0:
            a0, a1 = _angle(qx, qy), _angle(float(x), float(y))
            delta = (a1 - a0 + math.pi) % (2 * math.pi) - math.pi
            radius = 0.6
            steps = 24
            angles = [a0 + delta * s / steps for s in range(steps + 1)]
            pts = [(radius * math.cos(a), radius * math.sin(a)) for a in angles]
            for (x0, y0), (x1, y1) in zip(pts, pts[1:], strict=False):
                segments.append(
                    {"x0": x0, "y0": y0, "x1": x1, "y1": y1, "color": "#f9ab00",
                     "dash": "solid", "width": 3}
                )  # fmt: skip
            mid = a0 + delta / 2
            labels.append(
                {"x": radius * math.cos(mid), "y": radius * math.sin(mid), "ax": 50, "ay": 45,
                 "text": f"angle {abs(math.degrees(delta)):.1f}°", "color": "#b06000"}
            )  # fmt: skip
    return segments, labels


def vector_arrows(
    data: Mapping[str, Any],
    *,
    key: str,
    on_move: Callable[[str, float, float], None],
) -> Any:
    """Mount the picture; `on_move(name, x, y)` runs (before the rerun) when a drag ends."""
    ensure_plotly_static()

    def moved() -> None:
        value = st.session_state.get(key)
        event = value.get("moved") if value is not None else None
        if not isinstance(event, dict):
            return
        try:
            name, x, y = str(event["name"]), float(event["x"]), float(event["y"])
        except (KeyError, TypeError, ValueError):
            return
        if math.isfinite(x) and math.isfinite(y):
            on_move(name, x, y)

    return _component(key=key, data=dict(data), on_moved_change=moved)
