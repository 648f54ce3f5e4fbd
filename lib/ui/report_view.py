"""What a page draws from a stored evals report (lib/harness/evals.py's JSON): the table of
systems × metrics with intervals, the figure, the winners per kind of query, a regression
between two systems, and one query drilled down. No database access, no Streamlit."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
import plotly.graph_objects as go

METRIC_LABELS = {
    "ndcg@10": "nDCG@10",
    "recall@10": "recall@10",
    "recall@100": "recall@100",
    "mrr@10": "MRR@10",
}
KIND_LABELS = {
    "faq": "FAQ question",
    "faq_nooverlap": "FAQ question, no word shared with its answer",
    "glossary": "glossary term",
    "glossary_nooverlap": "glossary term, no word shared with its definition",
    "heading": "section heading (known item)",
    # the Hybrid search page's kinds (lib/lessons/hybrid/reports.py)
    "identifier": "names an identifier (a function, an option, a constant)",
    "question": "FAQ question",
    "term": "glossary term",
    "known_item": "section heading (known item)",
}


def systems(report: Mapping[str, Any]) -> list[dict]:
    return list(report["systems"])


def by_name(report: Mapping[str, Any]) -> dict[str, dict]:
    return {s["name"]: s for s in report["systems"]}


def cell(m: Mapping[str, Any]) -> str:
    """'0.612 [0.581, 0.644]': a mean and its 95% interval."""
    if m.get("mean") is None:
        return "—"
    return f"{m['mean']:.3f} [{m['low']:.3f}, {m['high']:.3f}]"


def metrics_frame(report: Mapping[str, Any]) -> pd.DataFrame:
    """One row per system: each metric's mean with its bootstrap interval, and latency."""
    rows = []
    for s in systems(report):
        row = {"system": s["label"]}
        row |= {METRIC_LABELS[m]: cell(s["metrics"][m]) for m in report["metrics"]}
        row["p50 ms"] = round(s["latency_ms"]["p50"], 2)
        row["p95 ms"] = round(s["latency_ms"]["p95"], 2)
        rows.append(row)
    return pd.DataFrame(rows)


def short_label(s: Mapping[str, Any], names: Mapping[str, str] | None) -> str:
    """A system's name for a narrow place: `names[its name]` when given, else its label."""
    return (names or {}).get(s["name"], s["label"])


def figure(
    report: Mapping[str, Any], metric: str = "ndcg@10", names: Mapping[str, str] | None = None
) -> go.Figure:
    """`metric` per system as bars with their 95% intervals."""
    ss = systems(report)
    means = [s["metrics"][metric]["mean"] for s in ss]
    fig = go.Figure(
        go.Bar(
            x=[short_label(s, names) for s in ss],
            y=means,
            error_y={
                "type": "data",
                "symmetric": False,
                "array": [s["metrics"][metric]["high"] - m for s, m in zip(ss, means, strict=True)],
                "arrayminus": [
                    m - s["metrics"][metric]["low"] for s, m in zip(ss, means, strict=True)
                ],
            },
            marker_color=["#4c78a8" if s["input"] == "vector" else "#f58518" for s in ss],
            hovertemplate="%{x}: %{y:.3f}<extra></extra>",
        )
    )
    fig.update_layout(
        yaxis={"title": f"{METRIC_LABELS[metric]} (mean, 95% interval)", "rangemode": "tozero"},
        height=360,
        margin={"l": 60, "r": 20, "t": 20, "b": 60},
    )
    return fig


def kinds_frame(
    report: Mapping[str, Any], metric: str = "ndcg@10", names: Mapping[str, str] | None = None
) -> pd.DataFrame:
    """Per kind of query: how many, each system's mean of `metric`, and which system won."""
    ss = systems(report)
    kinds = sorted({k for s in ss for k in s["kinds"]})
    rows = []
    for kind in kinds:
        row: dict[str, Any] = {
            "kind of query": KIND_LABELS.get(kind, kind),
            "queries": ss[0]["kinds"].get(kind, {}).get("queries", 0),
        }
        best, best_mean = None, -1.0
        for s in ss:
            m = s["kinds"].get(kind, {}).get(metric, {})
            row[short_label(s, names)] = cell(m)
            if m.get("mean") is not None and m["mean"] > best_mean:
                best, best_mean = short_label(s, names), m["mean"]
        row["best"] = best
        rows.append(row)
    return pd.DataFrame(rows)


def comparison(report: Mapping[str, Any], a: str, b: str, kind: str = "all") -> dict | None:
    """The stored paired comparison of b against a (nDCG@10), either way round."""
    for c in report["comparisons"]:
        if c["kind"] != kind:
            continue
        if (c["a"], c["b"]) == (a, b):
            return c
        if (c["a"], c["b"]) == (b, a):
            return c | {
                "a": a, "b": b, "difference": -c["difference"],
                "low": -c["high"], "high": -c["low"],
            }  # fmt: skip
    return None


def diff_cell(c: Mapping[str, Any]) -> str:
    return f"{c['difference']:+.3f} [{c['low']:+.3f}, {c['high']:+.3f}], p = {c['p_value']:.4f}"


def significant(c: Mapping[str, Any], alpha: float = 0.05) -> bool:
    """The gate's rule: p below alpha and the interval of the difference excludes zero."""
    return c["p_value"] < alpha and (c["high"] < 0 or c["low"] > 0)


def verdict(report: Mapping[str, Any], a: str, b: str) -> str:
    """A sentence on b against a: the difference in nDCG@10, its interval, and whether it is
    more than chance (the regression gate's rule)."""
    c = comparison(report, a, b)
    if c is None:
        return "These two were not compared."
    names = by_name(report)
    la, lb = names[a]["label"], names[b]["label"]
    if significant(c):
        way = "worse" if c["difference"] < 0 else "better"
        return (
            f"{lb} is {way} than {la}: nDCG@10 {diff_cell(c)} over {c['queries']} queries. "
            "The interval excludes zero and the paired randomisation test says chance would "
            "rarely make it: a regression gate would "
            + ("fail this change." if way == "worse" else "pass it.")
        )
    return (
        f"{lb} against {la}: nDCG@10 {diff_cell(c)} over {c['queries']} queries. The interval "
        "includes zero (or the test's p is not below 0.05): on these queries the difference is "
        "within what chance makes, and a regression gate would pass it."
    )


def drill_rows(
    report: Mapping[str, Any],
    query_id: str,
    judged: Mapping[str, int],
    passage: Mapping[str, str],
) -> dict[str, pd.DataFrame]:
    """For one query, each system's top 10: rank, relevance (2 answers, 1 same section), and
    the passage's opening words."""
    out = {}
    for s in systems(report):
        top = s["per_query"].get(query_id, {}).get("top", [])
        out[s["label"]] = pd.DataFrame(
            {
                "rank": list(range(1, len(top) + 1)),
                "relevance": [judged.get(d, 0) for d in top],
                "passage": [short(passage.get(d, d)) for d in top],
            }
        )
    return out


def answer_rank(report: Mapping[str, Any], query_id: str, answers: Sequence[str]) -> dict:
    """Per system: the rank (1-based, within its top 10) at which an answer came, or None."""
    out = {}
    for s in systems(report):
        top = s["per_query"].get(query_id, {}).get("top", [])
        out[s["label"]] = next((i for i, d in enumerate(top, 1) if d in answers), None)
    return out


def short(text: str, n: int = 110) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"
