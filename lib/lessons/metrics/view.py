"""Rankings shaped into tables for the Distance metrics page (pandas, no Streamlit)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import pandas as pd

from lib.lessons.metrics.rankings import METRICS, Hit, Metric, Ranked

AGREE_COLUMN = "Agree"
AGREE = "✓"
DIFFER = "✗"


def number(x: float, digits: int = 3) -> str:
    """A score as text: NaN spelled out, no negative zero."""
    if math.isnan(x):
        return "NaN"
    return f"{x + 0.0:.{digits}f}"


def score_legend() -> str:
    """What the numbers in a rankings table are, metric by metric."""
    return " · ".join(f"{m.label}: {m.score_name}" for m in METRICS)


def column(metric: Metric) -> str:
    return f"{metric.short} {metric.operator}"


def rankings_table(rankings: Mapping[str, Sequence[Ranked]]) -> pd.DataFrame:
    """Rank by rank, each metric's document and its score; the last column marks disagreement."""
    n = len(rankings[METRICS[0].key])
    rows = []
    for i in range(n):
        row: dict[str, str | int] = {"#": i + 1}
        names = set()
        for m in METRICS:
            r = rankings[m.key][i]
            names.add(r.name)
            row[column(m)] = f"{r.name}   {number(r.score)}"
        row[AGREE_COLUMN] = AGREE if len(names) == 1 else DIFFER
        rows.append(row)
    return pd.DataFrame(rows).set_index("#")


def engines_table(
    ours: Mapping[str, Sequence[Ranked]], theirs: Mapping[str, Sequence[Ranked]]
) -> pd.DataFrame:
    """numpy's and Postgres's rankings side by side: the operator's value, as it returns it."""
    n = len(ours[METRICS[0].key])
    rows = []
    for i in range(n):
        row: dict[str, str | int] = {"#": i + 1}
        for m in METRICS:
            a, b = ours[m.key][i], theirs[m.key][i]
            row[f"{m.operator} numpy"] = f"{a.name}  {number(a.value, 4)}"
            row[f"{m.operator} Postgres"] = f"{b.name}  {number(b.value, 4)}"
        rows.append(row)
    return pd.DataFrame(rows).set_index("#")


def corpus_table(
    rankings: Mapping[str, Sequence[Hit]], scaled: Sequence[str], factor: float, width: int = 34
) -> pd.DataFrame:
    """Top k of the corpus under each metric; scaled documents carry their factor."""
    mark = set(scaled) if factor != 1 else set()
    n = min(len(rankings[m.key]) for m in METRICS)
    rows = []
    for i in range(n):
        row: dict[str, str | int] = {"#": i + 1}
        ids = set()
        for m in METRICS:
            h = rankings[m.key][i]
            ids.add(h.id)
            tag = f" (×{factor:g})" if h.id in mark else ""
            room = width - len(tag)
            text = h.content if len(h.content) <= room else h.content[: room - 1] + "…"
            row[column(m)] = f"{text}{tag}   {number(h.score)}"
        row[AGREE_COLUMN] = AGREE if len(ids) == 1 else DIFFER
        rows.append(row)
    return pd.DataFrame(rows).set_index("#")
