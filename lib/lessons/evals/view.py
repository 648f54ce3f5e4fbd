"""What the Evals page draws beyond lib/ui/report_view.py: the link between recall against
the exact scan and nDCG. No database access, no Streamlit."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from lib.ui.report_view import (
    KIND_LABELS,
    METRIC_LABELS,
    answer_rank,
    by_name,
    cell,
    comparison,
    diff_cell,
    drill_rows,
    figure,
    kinds_frame,
    metrics_frame,
    short,
    significant,
    systems,
    verdict,
)

__all__ = [
    "KIND_LABELS", "METRIC_LABELS", "answer_rank", "by_name", "cell", "comparison", "diff_cell",
    "drill_rows", "figure", "kinds_frame", "metrics_frame", "short", "significant", "systems",
    "verdict",
]  # fmt: skip


def recall_against_exact(report: Mapping[str, Any], system: str, k: int = 10) -> float | None:
    """Mean share of the exact scan's top k that `system` returned: recall@k measured against
    the exact scan (no labels), from the top 10 lists the report kept."""
    names = by_name(report)
    if "exact" not in names or system not in names:
        return None
    exact, other = names["exact"]["per_query"], names[system]["per_query"]
    shares = [
        len(set(exact[q]["top"][:k]) & set(other[q]["top"][:k])) / max(1, len(exact[q]["top"][:k]))
        for q in exact
        if q in other
    ]
    return sum(shares) / len(shares) if shares else None


def recall_link_frame(report: Mapping[str, Any]) -> pd.DataFrame:
    """Each HNSW system: recall@10 against the exact scan, and what it costs in nDCG@10."""
    names = by_name(report)
    exact = names.get("exact")
    rows = []
    for s in systems(report):
        if not s["name"].startswith("hnsw"):
            continue
        r = recall_against_exact(report, s["name"])
        row = {"system": s["label"], "recall@10 against the exact scan": round(r or 0, 3)}
        if exact is not None:
            row["nDCG@10"] = round(s["metrics"]["ndcg@10"]["mean"], 3)
            row["exact scan's nDCG@10"] = round(exact["metrics"]["ndcg@10"]["mean"], 3)
            diff = comparison(report, "exact", s["name"])
            row["difference"] = diff_cell(diff) if diff else "—"
        rows.append(row)
    return pd.DataFrame(rows)
