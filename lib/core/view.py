"""Small helpers shared by the lessons' views: a time as the pages show it, a panel title
of a stacked plotly figure. No database access, no Streamlit."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


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
