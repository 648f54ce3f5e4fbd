"""What the Re-embedding page draws, shaped from stored reports (lib/lessons/reembed/demo.py):
latency over the migration coloured by phase, the phases' table and verdict, before and after,
and the drift signals per month. No database access, no Streamlit."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from lib.core.view import PlainFigure
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


WINDOWS = 300  # the stream is drawn as at most about this many windows
WIDTHS = (0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)  # seconds, the first that fits


def window_seconds(report: Mapping[str, Any]) -> float:
    """The width of the windows the latency figure sums the stream in."""
    t = report["queries"]["t"]
    span = (max(t) - min(t)) if t else 0.0
    return next((w for w in WIDTHS if span / w <= WINDOWS), WIDTHS[-1])


def latency_windows(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The stream in windows of `window_seconds`, per phase: each window's centre, number of
    queries, median, p95 (np.percentile, as the phases' table) and slowest query, from the
    latencies the stream recorded."""
    q = report["queries"]
    if not q["t"]:
        return []
    t, ms, phase = np.asarray(q["t"]), np.asarray(q["ms"]), np.asarray(q["phase"])
    width = window_seconds(report)
    start = float(t.min())
    cell = np.floor((t - start) / width).astype(int)
    names = q.get("phase_names", EARLIER_PHASES)
    rows = []
    for i, name in enumerate(names):
        mine = phase == i
        for c in np.unique(cell[mine]):
            got = ms[mine & (cell == c)]
            rows.append({
                "phase": name, "t": start + (c + 0.5) * width, "queries": int(got.size),
                "p50": float(np.percentile(got, 50)), "p95": float(np.percentile(got, 95)),
                "max": float(got.max()),
            })  # fmt: skip
    return rows


def latency_figure(report: Mapping[str, Any]) -> PlainFigure:
    """k-NN latency over the migration, coloured by phase: per window its median (line), p95
    (dotted) and slowest query (dots); errors at their own time; the cutover as a line. A
    plain spec: a few kilobytes, where every query as a point was 275 kB a page load."""
    q = report["queries"]
    rows = latency_windows(report)
    traces: list[dict[str, Any]] = []
    for name in q.get("phase_names", EARLIER_PHASES):
        mine = [r for r in rows if r["phase"] == name]
        if not mine:
            continue
        x = [round(r["t"], 3) for r in mine]
        extra = [[r["queries"], round(r["p50"], 3), round(r["p95"], 3), round(r["max"], 3)]
                 for r in mine]  # fmt: skip
        hover = ("%{x:.1f} s: %{customdata[0]} queries, p50 %{customdata[1]:.2f} ms, "
                 "p95 %{customdata[2]:.2f} ms, max %{customdata[3]:.2f} ms<extra>" + name +
                 "</extra>")  # fmt: skip
        colour = COLOURS.get(name, "#444")
        styles = {
            "p50": {"mode": "lines", "line": {"color": colour, "width": 2}},
            "p95": {"mode": "lines", "line": {"color": colour, "width": 1, "dash": "dot"}},
            "max": {"mode": "markers", "marker": {"color": colour, "size": 3}},
        }
        for stat, style in styles.items():
            traces.append({
                "type": "scatter", "x": x, "y": [round(r[stat], 3) for r in mine],
                "name": name if stat == "p50" else f"{name} {stat}", "legendgroup": name,
                "showlegend": stat == "p50", "customdata": extra, "hovertemplate": hover,
                **style,
            })  # fmt: skip
    errors = [j for j, e in enumerate(q["error"]) if e]
    if errors:
        traces.append({
            "type": "scatter", "x": [q["t"][j] for j in errors], "y": [q["ms"][j] for j in errors],
            "mode": "markers", "name": "error",
            "marker": {"size": 9, "color": "black", "symbol": "x"},
        })  # fmt: skip
    shapes = [{"type": "line", "xref": "x", "yref": "paper", "x0": q["t"][j], "x1": q["t"][j],
               "y0": 0, "y1": 1, "line": {"dash": "dot", "color": "#444", "width": 1}}
              for j in q["switched"]]  # fmt: skip
    notes = [{"x": q["t"][j], "xref": "x", "y": 1, "yref": "paper", "text": "cutover",
              "showarrow": False, "xanchor": "left", "yanchor": "bottom"}
             for j in q["switched"]]  # fmt: skip
    return PlainFigure({
        "data": traces,
        "layout": {
            "height": 360, "margin": {"l": 10, "r": 10, "t": 30, "b": 10},
            "xaxis": {"title": {"text": "seconds since the stream started"}},
            "yaxis": {"title": {"text": "k-NN latency, ms (log)"}, "type": "log"},
            "legend": {"orientation": "h", "y": 1.12}, "shapes": shapes, "annotations": notes,
        },
    })  # fmt: skip


def latency_caption(report: Mapping[str, Any]) -> str:
    return (
        f"Each point sums one {window_seconds(report):g} s window of the stream: its median "
        "(line), p95 (dotted) and slowest query (dot), from the "
        f"{len(report['queries']['t']):,} latencies the stream recorded (each is in the "
        "stored run); hover for a window's count."
    )


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
