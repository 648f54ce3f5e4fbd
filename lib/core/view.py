"""Small helpers shared by the lessons' views: a time as the pages show it, a panel title
of a stacked plotly figure. No database access, no Streamlit."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import plotly.graph_objects as go


def when(iso: str) -> str:
    """An ISO time as the pages show it (UTC, to the second); the text itself if unreadable."""
    try:
        return datetime.fromisoformat(iso).astimezone(UTC).strftime("%H:%M:%S UTC")
    except ValueError:
        return iso


def panel_title(text: str, top: float) -> dict[str, Any]:
    """A plotly annotation titling the panel whose top edge is at `top` (paper coordinates)."""
    return {
        "text": text, "x": 0.5, "xref": "paper", "y": top, "yref": "paper",
        "xanchor": "center", "yanchor": "bottom", "showarrow": False, "font": {"size": 16},
    }  # fmt: skip


class PlainFigure(go.Figure):
    """A plotly spec written as plain dicts, handed to st.plotly_chart as it is.

    st.plotly_chart only calls `to_dict()` on a figure. A go.Figure, even built with
    `_validate=False`, makes an object per trace and property and copies the spec twice on
    the way (several milliseconds a rerun for a dozen traces); this one returns the spec.
    Tests validate the spec with `go.Figure(spec)`."""

    def __init__(self, spec: dict[str, Any]) -> None:  # no plotly objects are built
        object.__setattr__(self, "_spec", spec)

    def to_dict(self) -> dict[str, Any]:
        return self._spec

    def to_plotly_json(self) -> dict[str, Any]:
        return self._spec
