"""What the Re-embedding page draws, shaped from stored reports (lib/lessons/reembed/demo.py):
latency over the migration coloured by phase, the phases' table and verdict, before and after,
and the drift signals per month. No database access, no Streamlit."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from lib.lessons.reembed.demo import EARLIER_PHASES, PHASES

COLOURS = {"warm-up": "#b6b6b6", "idle": "#636efa", "backfill": "#ef553b", "index build": "#ffa15a",
           "ready": "#00cc96", "after cutover": "#ab63fa"}  # fmt: skip
TARGET = 2.0  # the target: p95 during the run within 2× of idle


def phases(report: Mapping[str, Any]) -> list[tuple[str, dict]]:
    """The phases in the order they ran (stored JSON does not keep it)."""
    return [(p, report["phases"][p]) for p in PHASES if p in report["phases"]]


def phases_frame(report: Mapping[str, Any]) -> pd.DataFrame:
    rows = []
    for name, p in phases(report):
        rows.append({
            "phase": name, "queries": p["queries"], "p50 ms": round(p["p50_ms"], 2),
            "p95 ms": round(p["p95_ms"], 2), "max ms": round(p["max_ms"], 1),
            "p95 / idle": round(p["p95_vs_idle"], 2) if p["p95_vs_idle"] else None,
            "errors": p["errors"], "fewest rows": p["min_rows"],
        })  # fmt: skip
    return pd.DataFrame(rows)


def latency_figure(report: Mapping[str, Any]) -> go.Figure:
    q = report["queries"]
    fig = go.Figure()
    for i, name in enumerate(q.get("phase_names", EARLIER_PHASES)):
        idx = [j for j, p in enumerate(q["phase"]) if p == i]
        if not idx:
            continue
        fig.add_trace(go.Scattergl(
            x=[q["t"][j] for j in idx], y=[q["ms"][j] for j in idx], mode="markers",
            name=name, marker={"size": 3, "color": COLOURS[name]},
            hovertemplate="%{x:.2f} s: %{y:.2f} ms<extra>" + name + "</extra>",
        ))  # fmt: skip
    errors = [j for j, e in enumerate(q["error"]) if e]
    if errors:
        fig.add_trace(go.Scattergl(
            x=[q["t"][j] for j in errors], y=[q["ms"][j] for j in errors], mode="markers",
            name="error", marker={"size": 9, "color": "black", "symbol": "x"},
        ))  # fmt: skip
    for j in q["switched"]:
        fig.add_vline(x=q["t"][j], line_dash="dot", annotation_text="cutover")
    fig.update_layout(
        height=360, margin={"l": 10, "r": 10, "t": 30, "b": 10},
        xaxis_title="seconds since the stream started", yaxis_title="k-NN latency, ms (log)",
        yaxis_type="log", legend={"orientation": "h", "y": 1.12},
    )  # fmt: skip
    return fig


def verdict(report: Mapping[str, Any]) -> str:
    """Errors and p95 against idle, as measured, against the issue's target."""
    ph = report["phases"]
    idle = ph.get("idle", {}).get("p95_ms")
    parts = [
        f"**{report['errors']} errors** in {report['total']:,} queries "
        f"({'met' if report['errors'] == 0 else 'missed'}: the target is 0); every query "
        f"returned at least {min(p['min_rows'] for p in ph.values())} rows."
    ]
    for name in ("backfill", "index build"):
        if name in ph and idle:
            r = ph[name]["p95_ms"] / idle
            parts.append(
                f"p95 during the {name}: {ph[name]['p95_ms']:.2f} ms, **{r:.2f}× idle** "
                f"({idle:.2f} ms; target within {TARGET:.0f}×: "
                f"{'met' if r <= TARGET else 'missed'})."
            )
    if "warm-up" in ph:
        parts.append(
            f"Idle excludes the stream's first {ph['warm-up']['queries']} queries (warm-up: the "
            "pool connecting, the index's pages read)."
        )
    return " ".join(parts)


def before_after_frame(report: Mapping[str, Any]) -> pd.DataFrame:
    rows = []
    for s in report["before_after"]:
        rows.append({
            "model": s["model"], "column": s["column"],
            "nDCG@10 (labels)": round(s["ndcg"], 3) if s["ndcg"] is not None else "too few labels",
            "recall@10 vs its own exact scan": round(s["recall"], 3),
            "HNSW index": s["index"], "index size": f"{s['index_bytes'] / 2**20:.1f} MiB",
            "build s": round(s["build_seconds"], 2),
            "index used (EXPLAIN)": "yes" if s["index_used"] else "no",
        })  # fmt: skip
    return pd.DataFrame(rows)


def overlap_figure(report: Mapping[str, Any]) -> go.Figure:
    trap = report["trap"]
    fig = go.Figure(go.Histogram(x=trap["overlaps"], xbins={"start": -0.05, "end": 1.05,
                                                             "size": 0.1}))  # fmt: skip
    fig.add_vline(x=trap["chance"], line_dash="dot", annotation_text="chance")
    fig.update_layout(
        height=240, margin={"l": 10, "r": 10, "t": 10, "b": 10}, bargap=0.05,
        xaxis_title="share of the right top 10 the wrong query returns", yaxis_title="queries",
    )  # fmt: skip
    return fig


def drift_figure(report: Mapping[str, Any]) -> go.Figure:
    names = list(report["signals"])
    fig = make_subplots(rows=len(names), cols=1, shared_xaxes=True, vertical_spacing=0.04,
                        subplot_titles=[report["signals"][n] for n in names])  # fmt: skip
    months = report["months"]
    for i, name in enumerate(names, 1):
        values = report["series"][name]
        fig.add_trace(go.Scatter(x=months, y=values, mode="lines+markers", showlegend=False,
                                 line={"color": "#636efa"}), row=i, col=1)  # fmt: skip
        fired = report["fired"].get(name)
        if fired is not None:
            fig.add_trace(go.Scatter(
                x=[months[fired]], y=[values[fired]], mode="markers", showlegend=i == 1,
                name="fired", marker={"size": 14, "color": "#ef553b", "symbol": "star"},
            ), row=i, col=1)  # fmt: skip
    for m, text in (
        (report["shift_from"], "questions shift"),
        (report["arrives"], "content arrives"),
    ):
        fig.add_vline(x=months[m], line_dash="dot", line_color="grey")
        fig.add_annotation(x=months[m], y=1.02, yref="paper", text=text, showarrow=False)
    fig.update_layout(height=170 * len(names), margin={"l": 10, "r": 10, "t": 50, "b": 10})
    return fig


def fired_sentence(report: Mapping[str, Any]) -> str:
    months, labels = report["months"], report["signals"]
    first = report["first"]
    head = "No signal fired."
    if first:
        names = ", ".join(labels[s] for s in first)
        head = f"First to fire: **{names}** in {months[report['fired'][first[0]]]}"
    rest = "; ".join(
        f"{labels[s]}: {months[m] if m is not None else 'never'}"
        for s, m in report["fired"].items()
    )
    return (
        f"{head} (the questions shifted in {months[report['shift_from']]}, the content arrived in "
        f"{months[report['arrives']]}). Each signal: {rest}."
    )
