"""What the recall page draws, shaped from the harness's reports: points, the figure, the
side-by-side tables, the SQL as it ran. No database access, no Streamlit."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from lib.core.database import Setting
from lib.core.view import PlainFigure, panel_title, when
from lib.dataset.index_specs import IndexSpec
from lib.dataset.passages import Dataset
from lib.dataset.recall_tables import VectorIndex
from lib.harness.recall import RecallReport
from lib.lessons.recall.generator_check import LOW_EF, Check


def knob_label(knobs: Mapping[str, Setting]) -> str:
    return ", ".join(f"{k.split('.')[-1]}={v}" for k, v in knobs.items())


def point(
    report: RecallReport, n: int, index: VectorIndex, knobs: Mapping[str, Setting], ds: Dataset
) -> dict[str, Any]:
    """One measurement as a few numbers and labels (what the session keeps)."""
    config = f"{index.label()} · {knob_label(knobs)}"
    return {
        "key": f"{n}|{index.name}|{config}",
        "rows": n,
        "config": config,
        "index": index.name,
        "recall": report.recall["mean"],
        "recall_min": report.recall["min"],
        "missing": report.queries_missing,
        "queries": report.queries,
        "exact_ms": report.exact_latency_ms["p50"],
        "index_ms": report.index_latency_ms["p50"],
        "real_rows": ds.real_rows(n),
        "exact_ran_at": report.exact_ran_at,
        "index_ran_at": report.index_ran_at,
    }


# The plot keeps a session's latest measurements: one curve per setting, so a learner who
# tries fifty ef_search values gets a legend of the last few, and a rerun draws a bounded plot.
MAX_POINTS = 12


def add_point(
    points: list[dict[str, Any]], new: dict[str, Any], keep: int = MAX_POINTS
) -> list[dict[str, Any]]:
    """`points` with `new` added, replacing an earlier measurement of the same thing; only
    the latest `keep` are kept."""
    return ([p for p in points if p["key"] != new["key"]] + [new])[-keep:]


# Two stacked panels sharing the rows axis (what plotly's make_subplots lays out for
# rows=2, vertical_spacing=0.08, row_heights=[0.62, 0.38]), written out as plain layout.
_TOP = [0.4296, 1.0]
_BOTTOM = [0.0, 0.3496]


def figure(
    points: Sequence[Mapping[str, Any]], sizes: Sequence[int] = (), real_end: int | None = None
) -> go.Figure:
    """Recall@10 against rows (log axis) above each method's median latency; the x axis
    spans `sizes` (the sizes on offer) so that every point lands where it will stay. A
    dashed line marks `real_end`, the last real row, when the axis reaches past it.

    Built as a plain spec and wrapped without plotly's per-property validation, which cost
    tens of milliseconds per rerun for a handful of points."""
    traces: list[dict[str, Any]] = []
    exact = sorted({p["rows"]: p for p in points}.values(), key=lambda p: p["rows"])
    if exact:
        rows = [p["rows"] for p in exact]
        style = {
            "type": "scatter", "mode": "lines+markers", "legendgroup": "exact",
            "line": {"color": "#555", "dash": "dot"}, "marker": {"symbol": "square", "size": 7},
        }  # fmt: skip
        traces.append(
            {
                **style,
                "x": rows,
                "y": [1.0] * len(rows),
                "name": "exact scan (ground truth, proved by its plan)",
                "hovertemplate": "%{x:,} rows<br>exact scan: recall 1 by definition<extra></extra>",
                "xaxis": "x",
                "yaxis": "y",
            }
        )
        traces.append(
            {
                **style,
                "x": rows,
                "y": [p["exact_ms"] for p in exact],
                "name": "exact scan latency",
                "showlegend": False,
                "hovertemplate": "%{x:,} rows<br>exact scan: %{y:.1f} ms median<extra></extra>",
                "xaxis": "x2",
                "yaxis": "y2",
            }
        )
    palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b"]
    configs = list(dict.fromkeys(p["config"] for p in points))
    for i, config in enumerate(configs):
        mine = sorted((p for p in points if p["config"] == config), key=lambda p: p["rows"])
        color = palette[i % len(palette)]
        hover = [
            f"{p['rows']:,} rows ({p['real_rows']:,} real)<br>{config}<br>"
            f"recall@10 mean {p['recall']:.3f}, worst query {p['recall_min']:.1f}<br>"
            f"{p['missing']} of {p['queries']} queries missed a true neighbour<br>"
            f"index {p['index_ms']:.2f} ms · exact {p['exact_ms']:.1f} ms (medians)<br>"
            f"measured {when(p['index_ran_at'])}"
            for p in mine
        ]
        style = {
            "type": "scatter", "mode": "lines+markers", "legendgroup": config,
            "line": {"color": color}, "hovertext": hover, "hoverinfo": "text",
            "x": [p["rows"] for p in mine],
        }  # fmt: skip
        traces.append(
            {
                **style,
                "y": [p["recall"] for p in mine],
                "name": config,
                "marker": {"size": 10},
                "xaxis": "x",
                "yaxis": "y",
            }
        )
        traces.append(
            {
                **style,
                "y": [p["index_ms"] for p in mine],
                "name": config,
                "marker": {"size": 8},
                "showlegend": False,
                "xaxis": "x2",
                "yaxis": "y2",
            }
        )
    low = min([p["recall"] for p in points] + [0.9])
    xs = [p["rows"] for p in points] + list(sizes)
    span = [math.log10(min(xs)) - 0.15, math.log10(max(xs)) + 0.15] if xs else None
    ticks = sorted(set(xs))
    rows_axis = {
        "type": "log", "range": span, "tickvals": ticks,
        "ticktext": [_short_count(x) for x in ticks], "domain": [0.0, 1.0],
    }  # fmt: skip
    latencies = [p[key] for p in points for key in ("exact_ms", "index_ms") if p[key] > 0]
    lat_ticks = _latency_ticks(latencies)
    layout = {
        "xaxis": {**rows_axis, "anchor": "y", "matches": "x2", "showticklabels": False},
        "xaxis2": {**rows_axis, "anchor": "y2", "title": {"text": "rows in the table (log scale)"}},
        "yaxis": {"anchor": "x", "domain": _TOP, "range": [max(0.0, low - 0.05), 1.02]},
        "yaxis2": {
            "anchor": "x2",
            "domain": _BOTTOM,
            "type": "log",
            "tickvals": lat_ticks,
            "ticktext": [f"{t:g} ms" for t in lat_ticks],
            "range": _latency_range(latencies, lat_ticks),
        },  # fmt: skip
        "annotations": [
            panel_title("recall@10 (mean over the query set)", _TOP[1]),
            panel_title("median latency per query (ms)", _BOTTOM[1]),
            *_real_end_label(real_end, xs),
        ],
        "shapes": _real_end_line(real_end, xs),
        "height": 560,
        "margin": {"l": 10, "r": 10, "t": 30, "b": 10},
        "legend": {"orientation": "h", "yanchor": "top", "y": -0.12, "x": 0},
        "hovermode": "closest",
    }
    return PlainFigure({"data": traces, "layout": layout})


def _real_end_line(real_end: int | None, xs: Sequence[int]) -> list[dict[str, Any]]:
    if not real_end or not xs or max(xs) <= real_end:
        return []
    return [  # shapes take data values on a log axis; annotations take their log10
        {
            "type": "line", "xref": "x", "yref": "paper", "x0": real_end, "x1": real_end,
            "y0": 0, "y1": 1,
            "line": {"color": "#888", "dash": "dash", "width": 1.5},
        }
    ]  # fmt: skip


def _real_end_label(real_end: int | None, xs: Sequence[int]) -> list[dict[str, Any]]:
    if not _real_end_line(real_end, xs):
        return []
    return [
        {
            "text": f"real rows end at {real_end:,} · generated past it →",
            "x": math.log10(real_end), "xref": "x", "y": _TOP[0] + 0.01, "yref": "paper",
            "xanchor": "right", "yanchor": "bottom", "showarrow": False,
            "font": {"size": 12, "color": "#555"},
        }
    ]  # fmt: skip


def _latency_ticks(values: list[float]) -> list[float]:
    """Labelled ticks for the latency axis: whole decades when the points span several,
    else 1-2-5 steps (plotly's own log ticks read "2, 5, 2, 5" with no decade in sight)."""
    values = [v for v in values if v > 0]
    if not values:
        return []
    lo, hi = min(values) / 1.3, max(values) * 1.3
    steps = (1, 2, 5) if hi / lo < 300 else (1,)
    ticks = [m * 10.0**e for e in range(-4, 7) for m in steps]
    inside = [t for t in ticks if lo <= t <= hi]
    if len(inside) >= 2:
        return inside
    ends = (min(values), max(values)) if max(values) / min(values) > 1.5 else (min(values),)
    return sorted({float(f"{v:.2g}") for v in ends})


def _latency_range(values: list[float], ticks: list[float]) -> list[float] | None:
    """The log10 range that shows every point and every labelled tick."""
    if not values:
        return None
    lo = min(values + ticks) / 1.3
    hi = max(values + ticks) * 1.3
    return [math.log10(lo), math.log10(hi)]


def _short_count(x: int) -> str:
    if x >= 1_000_000:
        return f"{x / 1_000_000:g}M"
    if x >= 1000:
        return f"{x / 1000:g}k"
    return str(x)


def side_by_side(
    ds: Dataset,
    exact: Sequence[tuple[Any, float]],
    got: Sequence[tuple[Any, float]],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The true top k and the index's answer, each row marked found or missed."""
    truth_ids = {i for i, _ in exact}
    got_ids = {i for i, _ in got}

    def source(row_id: int) -> str:
        p = ds.passage_of(row_id)
        return f"{p.source}: {p.text[:90]}…" if p else "generated row"

    def frame(rows: Sequence[tuple[Any, float]], mark: str, other: set) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "rank": range(1, len(rows) + 1),
                "found": [("✓" if i in other else mark) for i, _ in rows],
                "id": [i for i, _ in rows],
                "similarity": [round(1 - d, 4) for _, d in rows],
                "row": [source(i) for i, _ in rows],
            }
        )

    return frame(exact, "✗ missed by the index", got_ids), frame(
        got, "✗ not in the true top 10", truth_ids
    )


def query_label(ds: Dataset, i: int, recall: float | None = None) -> str:
    p = ds.query_passages[i]
    score = f" · recall {recall:.1f}" if recall is not None else ""
    return f"query {i + 1}{score} · {p.source} · {p.text[:60]}"


def rebuild_estimate(current: VectorIndex | None, n: int, spec: IndexSpec) -> str:
    """A rough forecast of a rebuild's time, from the last build measured on this table."""
    spec = spec.resolved(n)
    if current is None or not current.build_seconds:
        return "No build of this table has been timed yet."
    base = current.build_seconds
    old = current.spec()
    if spec.kind == "hnsw" and old.kind == "hnsw":
        factor = (spec.m * spec.ef_construction) / (old.m * old.ef_construction)
        guess = base * factor**0.8
        return (
            f"The current index took {base:.1f} s to build here. HNSW build time grows with "
            f"m × ef_construction, so expect very roughly {guess:.0f} s."
        )
    return (
        f"The current index ({old.label()}) took {base:.1f} s to build here; "
        f"the {spec.label()} build is timed and shown when it ends."
    )


def check_frame(checks: Sequence[Check]) -> pd.DataFrame:
    """Real against generated rows, one line per side and size, as generator_check.py
    measured them."""
    lines = []
    for c in checks:
        for label, side in (("real", c.real), ("generated", c.generated)):
            if label == "real" and side.real_rows < side.rows:
                label = f"real ({side.real_rows:,}) + generated"
            lines.append(
                {
                    "rows": f"{c.n:,}",
                    "rows are": label,
                    "LID": round(side.lid_median, 1),
                    "contrast": round(side.rc_median, 3),
                    "nearest similarity": round(side.nearest_similarity_median, 3),
                    **{f"recall@10 ef {ef}": round(side.recall[str(ef)], 3) for ef in LOW_EF},
                }
            )
    return pd.DataFrame(lines)


def check_caption(checks: Sequence[Check], n_queries: int) -> str:
    when_ = ", ".join(f"{c.n:,} rows at {c.measured_at:%Y-%m-%d %H:%M} UTC" for c in checks)
    index = checks[0].real.index if checks else ""
    return (
        f"Measured by `python -m lib.lessons.recall.generator_check` (`make prepare` runs it): "
        f"{when_}. "
        f"Medians over the {n_queries} held-out real queries of their local intrinsic "
        "dimensionality (LID, k = 100) and relative contrast (k = 10) against the rows, "
        "computed exactly, and of their nearest row's cosine similarity; mean recall@10 of "
        f"the same index ({index}) on both tables at hnsw.ef_search = 10, 20 and 40. Higher "
        "LID, lower contrast and lower recall mean rows that are harder for an approximate "
        "index (Aumüller and Ceccarello, 2019)."
    )
