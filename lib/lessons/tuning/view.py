"""What the Index tuning page draws, shaped from stored sweeps: the frontier figure, the
configurations table, the sentences. No database access, no Streamlit."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from lib.core.view import PlainFigure
from lib.lessons.tuning.frontier import Cheapest, Sweep, knob_label

PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b"]
CHEAPEST_NAME = "cheapest reaching the target"


def when(value: Any) -> str:
    """A stored time as the page shows it: 2026-11-25 21:04 UTC."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return str(value)


def size_text(b: int | None) -> str:
    if b is None:
        return "—"
    for unit in ("B", "kB", "MB", "GB"):
        if b < 1024 or unit == "GB":
            return f"{b:,.0f} {unit}" if unit in ("B", "kB") else f"{b:,.1f} {unit}"
        b /= 1024  # type: ignore[assignment]
    return f"{b:.1f} GB"


def figure(
    sweeps: Sequence[Sweep], target: float, best: Cheapest | None, colors: Sequence[str] = ()
) -> go.Figure:
    """Recall@k (mean over the queries) against median latency per query (log axis), p95 as
    whiskers, one curve per configuration; the recall target as a line and the cheapest point
    reaching it as a star. A plain spec, wrapped without plotly's per-property validation."""
    traces: list[dict[str, Any]] = []
    for i, s in enumerate(sweeps):
        color = colors[i] if i < len(colors) else PALETTE[i % len(PALETTE)]
        knob = knob_label(s.knob)
        pts = s.points
        hover = [
            f"{s.config.label()}<br>{knob} = {p.value}"
            + (f", candidates {s.k * s.oversample}" if s.oversample else "")
            + f"<br>recall@{s.k} {p.recall['mean']:.3f} (worst query {p.recall['min']:.2f})"
            f"<br>latency p50 {p.latency_ms['p50']:.2f} ms, p95 {p.latency_ms['p95']:.2f} ms"
            f"<br>{p.qps:,.0f} queries/s, one client<br>swept {when(s.ran_at)}"
            for p in pts
        ]
        traces.append(
            {
                "type": "scatter",
                "mode": "lines+markers+text",
                "name": s.config.label(),
                "x": [p.latency_ms["p50"] for p in pts],
                "y": [p.recall["mean"] for p in pts],
                "text": [
                    str(p.value) if j in (0, len(pts) - 1) or p.recall["mean"] < 0.995 else ""
                    for j, p in enumerate(pts)
                ],
                "textposition": "top left",
                "textfont": {"size": 10, "color": color},
                "error_x": {
                    "type": "data",
                    "symmetric": False,
                    "array": [p.latency_ms["p95"] - p.latency_ms["p50"] for p in pts],
                    "arrayminus": [0.0] * len(pts),
                    "color": color,
                    "thickness": 1,
                    "width": 3,
                },
                "line": {"color": color},
                "marker": {"size": 8, "color": color},
                "hovertext": hover,
                "hoverinfo": "text",
            }
        )
    xs = [p.latency_ms[q] for s in sweeps for p in s.points for q in ("p50", "p95")]
    xs = [x for x in xs if x > 0]
    lo, hi = (min(xs) / 1.3, max(xs) * 1.3) if xs else (0.1, 10.0)
    ticks = latency_ticks(lo, hi)
    if best is not None:
        p = best.point
        traces.append(
            {
                "type": "scatter",
                "mode": "markers",
                "name": CHEAPEST_NAME,
                "x": [p.latency_ms["p50"]],
                "y": [p.recall["mean"]],
                "marker": {
                    "symbol": "star",
                    "size": 22,
                    "color": "gold",
                    "line": {"color": "black", "width": 1.5},
                },  # fmt: skip
                "hovertext": [f"{best.label}<br>the cheapest setting reaching {target:.2f}"],
                "hoverinfo": "text",
            }
        )
    ys = [p.recall["mean"] for s in sweeps for p in s.points] + [target]
    layout = {
        "xaxis": {
            "type": "log",
            "title": {"text": "latency per query, median (whisker: p95), ms — log scale"},
            "range": [math.log10(lo), math.log10(hi)],
            "tickvals": ticks,
            "ticktext": [f"{t:g}" for t in ticks],
        },
        "yaxis": {
            "title": {"text": "recall@10 (mean over the query set)"},
            "range": [max(0.0, min(ys) - 0.03), 1.01],
        },
        "shapes": [
            {
                "type": "line",
                "xref": "paper",
                "x0": 0,
                "x1": 1,
                "yref": "y",
                "y0": target,
                "y1": target,
                "line": {"color": "#888", "dash": "dash", "width": 1},
            }  # fmt: skip
        ],
        "annotations": [
            {
                "xref": "paper",
                "x": 1.0,
                "xanchor": "right",
                "yref": "y",
                "y": target,
                "yanchor": "bottom",
                "text": f"target {target:.2f}",
                "showarrow": False,
                "font": {"color": "#555"},
            }  # fmt: skip
        ],
        "height": 520,
        "margin": {"l": 10, "r": 10, "t": 20, "b": 10},
        "legend": {"orientation": "h", "yanchor": "top", "y": -0.15, "x": 0},
        "hovermode": "closest",
    }
    return PlainFigure({"data": traces, "layout": layout})


def latency_ticks(lo: float, hi: float) -> list[float]:
    """Labelled ticks for a log latency axis from `lo` to `hi` ms: 1-2-5 steps, or whole
    decades when the span is wider than three of them."""
    steps = (1, 2, 5) if hi / lo < 3000 else (1,)
    return [m * 10.0**e for e in range(-3, 6) for m in steps if lo <= m * 10.0**e <= hi]


def cheapest_sentence(best: Cheapest | None, sweeps: Sequence[Sweep], target: float) -> str:
    """The highlighted point in words, or why there is none."""
    if best is None:
        top = max((p.recall["mean"] for s in sweeps for p in s.points), default=None)
        reached = f"; the best measured is {top:.3f}" if top is not None else ""
        return (
            f"No setting measured here reaches recall@10 ≥ {target:.2f}{reached}. Pin a "
            "configuration with a larger graph, more lists, or more oversampling."
        )
    s = sweeps[best.sweep_index]
    p = best.point
    extra = f" with {s.k * s.oversample} candidates re-ranked" if s.oversample else ""
    return (
        f"Cheapest setting reaching recall@10 ≥ {target:.2f}: **{s.config.label()}** at "
        f"`{s.knob} = {p.value}`{extra}: recall {p.recall['mean']:.3f}, median "
        f"{p.latency_ms['p50']:.2f} ms (p95 {p.latency_ms['p95']:.2f} ms), "
        f"{p.qps:,.0f} queries per second from one client."
    )


_ACTUAL_ROWS = re.compile(r"actual time=[\d.]+\.\.[\d.]+ rows=(\d+)")


def index_and_rerank_rows(plan: Sequence[str]) -> tuple[int | None, int | None]:
    """From a binary-quantization query's EXPLAIN ANALYZE: the rows its index scan returned
    (the candidates) and the rows the statement returned after the re-rank."""
    index_rows = final_rows = None
    for line in plan:
        m = _ACTUAL_ROWS.search(line)
        if not m:
            continue
        if final_rows is None:
            final_rows = int(m.group(1))  # the top node: what the statement returned
        if "Index Scan using" in line:
            index_rows = int(m.group(1))
    return index_rows, final_rows


def sweep_caption(s: Sweep) -> str:
    """Where a curve's points come from: when, by whom, with which parameters."""
    values = f"{knob_label(s.knob)} {s.values[0]}…{s.values[-1]} ({len(s.values)} values)"
    over = f", candidates k × {s.oversample} = {s.k * s.oversample}" if s.oversample else ""
    return (
        f"{s.config.label()}: swept {when(s.ran_at)} by the {s.source} in {s.seconds:.1f} s — "
        f"{s.queries} queries, k = {s.k}, {values}{over}; ground truth of {when(s.truth_ran_at)}"
    )


def configs_frame(statuses: Sequence[Any], sweeps: Sequence[Sweep | None]) -> pd.DataFrame:
    """One row per configuration: where it lives, what its build cost, when it was swept."""
    rows = []
    for st, sw in zip(statuses, sweeps, strict=True):
        rows.append(
            {
                "configuration": st.config.label(),
                "index": st.place.index if st.built else "not built",
                "build s": round(st.build_seconds, 1) if st.build_seconds else None,
                "index size": size_text(st.index_bytes) if st.built else "—",
                "maintenance_work_mem": st.maintenance_work_mem or "—",
                "built": when(st.built_at) if st.built_at else "—",
                "swept": when(sw.ran_at) if sw else "—",
            }
        )
    return pd.DataFrame(rows)
