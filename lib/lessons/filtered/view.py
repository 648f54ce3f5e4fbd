"""What the Filtered search page draws, shaped from measured runs (lib/lessons/filtered/search.py):
the lesson's sentences, the fixes side by side, the plot. No database access, no Streamlit."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from lib.core.view import PlainFigure, panel_title, when
from lib.lessons.filtered.search import Cell, Run
from lib.lessons.filtered.tables import BY_VALUE, PARTIAL, SELECTIVITIES, TWIN, FilteredTable

MODE_COLORS = {"off": "#d62728", "strict_order": "#1f77b4", "relaxed_order": "#2ca02c"}
# strict and relaxed often lie on top of each other: a dash and a marker tell them apart
MODE_DASH = {"off": "solid", "strict_order": "solid", "relaxed_order": "dash"}
MODE_SYMBOL = {"off": "circle", "strict_order": "square", "relaxed_order": "diamond-open"}


def share(value: float) -> str:
    """A selectivity as the page writes it: 50%, 1%, 0.1%, 0.02%."""
    pct = 100 * value
    return f"{pct:.2g}%" if pct < 1 else f"{pct:.3g}%"


def selectivity_label(table: FilteredTable, category: int) -> str:
    rows = table.counts.get(category, 0)
    return f"{BY_VALUE[category].label} — category = {category}, {rows:,} of {table.n:,} rows"


def path_label(cell: Cell) -> str:
    """What a fix is, in a few words."""
    if cell.path == "hnsw" and cell.filter.value == PARTIAL.value:
        return f"partial HNSW index (category {PARTIAL.value}, twin of {TWIN.value})"
    return {
        "hnsw": f"HNSW, iterative_scan = {cell.mode}",
        "cte_plain": "relaxed_order + CTE, ORDER BY distance",
        "cte": "relaxed_order + CTE, ORDER BY distance + 0",
        "planner": "planner's choice (nothing forced)",
        "threshold": "threshold in the WHERE clause",
        "threshold_cte": "threshold outside a materialized CTE",
    }[cell.path]


def short_label(cell: Cell) -> str:
    """A fix in a word or two (for a printed table)."""
    if cell.path == "hnsw" and cell.filter.value == PARTIAL.value:
        return f"partial index (category {PARTIAL.value})"
    return {
        "hnsw": cell.mode,
        "cte_plain": "relaxed + CTE, ORDER BY distance",
        "cte": "relaxed + CTE, ORDER BY distance + 0",
        "planner": "planner's choice",
        "threshold": "threshold in WHERE",
        "threshold_cte": "threshold outside a CTE",
    }[cell.path]


def rows_sentence(run: Run, table: FilteredTable) -> str:
    """The lesson's sentence, with the measured numbers."""
    cell = run.key
    k, n = cell.k, run.queries
    at = f"At {share(run.matching / run.rows)} selectivity ({run.matching:,} of {run.rows:,} rows)"
    fewer = min(run.expected) < k  # some query has fewer matching rows than LIMIT
    limit = f"LIMIT {k}" + (" (or every matching row, when fewer match)" if fewer else "")
    if run.short == 0:
        text = f"{at}, all {n} queries returned {limit}"
    else:
        per = run.missing_rows / run.short
        what = "the exact filtered truth holds" if fewer else f"{k}"
        text = (
            f"{at}, {run.short} of {n} queries returned fewer rows than {what}: "
            f"{per:.1f} rows short on average"
            + (f", and {run.empty} returned none" if run.empty else "")
        )
    text += f"; recall@{k} against the exact filtered truth is {run.mean_recall:.3f}."
    if run.cancelled:
        text += f" {run.cancelled} queries ran past statement_timeout and were cancelled."
    return text


def cost_sentence(run: Run) -> str:
    visited = run.median_visited
    seen = (
        f" The scan read {visited:,.0f} rows per query (median of {len(run.visited)} under "
        f"EXPLAIN ANALYZE, at most {run.max_visited:,}) to return them."
        if visited is not None
        else ""
    )
    return (
        f"Median latency {run.latency():.2f} ms, p95 {run.latency(95):.2f} ms "
        f"(measured {when(run.ran_at)}).{seen}"
    )


def plan_label(run: Run, table: FilteredTable) -> str:
    """Which index answered, in a word or two, from the plan that ran."""
    from lib.lessons.filtered.tables import index_names

    names = index_names(table.name)
    used = set(run.indexes)
    if names["partial"] in used:
        return "partial HNSW"
    if names["hnsw"] in used:
        return "HNSW"
    if used & {names["category"], names["chapter"]}:
        return "B-tree + exact sort"
    return "sequential scan" if "Seq Scan" in run.plan else " → ".join(run.plan)


def fixes_frame(runs: Sequence[tuple[Cell, Run | None]], table: FilteredTable) -> pd.DataFrame:
    """One row per fix: what it returned, how right, how fast, what it read."""
    return _frame(
        runs,
        table,
        lambda c, r: {
            f"short of LIMIT {c.k}": f"{r.short} of {r.queries}",
            "rows (mean)": round(r.mean_rows, 1),
            f"recall@{c.k}": round(r.mean_recall, 3),
            "out of order": f"{r.disordered} of {r.queries}",
            "p50 ms": round(r.latency(), 2),
            "rows read (median)": _whole(r.median_visited),
        },
    )


def _whole(value: float | None) -> int | None:
    return None if value is None else round(value)


def trap_frame(runs: Sequence[tuple[Cell, Run | None]], table: FilteredTable) -> pd.DataFrame:
    """One row per way of writing the threshold: what came back, what it cost."""
    return _frame(
        runs,
        table,
        lambda c, r: {
            "rows returned": sum(max(0, n) for n in r.rows_returned),
            "rows that close (exact scan)": sum(r.exact_closer),
            "p50 ms": round(r.latency(), 2),
            "rows read (median)": _whole(r.median_visited),
            "cancelled by statement_timeout": f"{r.cancelled} of {r.queries}",
        },
    )


def _frame(runs, table: FilteredTable, columns) -> pd.DataFrame:
    rows = []
    for cell, run in runs:
        row = {"how": path_label(cell)}
        if run is None:
            row["answered by"] = "not measured yet"
        else:
            row["answered by"] = plan_label(run, table)
            row.update(columns(cell, run))
        rows.append(row)
    return pd.DataFrame(rows)


def trap_sentence(inside: Run, outside: Run) -> str:
    """What the trap measured, in the lesson's words."""
    cell = inside.key
    cancelled = (
        f"; {inside.cancelled} of {inside.queries} ran past statement_timeout and were cancelled"
        if inside.cancelled
        else ""
    )
    returned = sum(max(0, r) for r in inside.rows_returned)
    return (
        f"With relaxed_order and `embedding <=> $1 < {cell.threshold}` inside the WHERE clause, "
        f"the scan read **{inside.median_visited or 0:,.0f} rows per query** (median; "
        f"`hnsw.max_scan_tuples` = {cell.max_scan_tuples:,}, the table has {inside.rows:,}) "
        f"and returned {returned} rows in all, taking {inside.latency():.1f} ms per query "
        f"(median){cancelled}. The same threshold outside a materialized CTE read "
        f"{outside.median_visited or 0:,.0f} rows in {outside.latency():.2f} ms and returned "
        f"the same nothing. An exact scan finds {sum(inside.exact_closer)} rows that close to "
        f"any of the {inside.queries} queries."
    )


def figure(grid: Mapping[Cell, Run], k: int) -> go.Figure:
    """Rows returned per query (mean) above recall@k, against the filter's selectivity (log
    axis), one line per iterative-scan mode; from the runs measured so far."""
    traces: list[dict[str, Any]] = []
    for mode, color in MODE_COLORS.items():
        mine = sorted(
            ((c, r) for c, r in grid.items() if c.mode == mode), key=lambda cr: -cr[1].matching
        )
        if not mine:
            continue
        x = [r.matching / r.rows for _, r in mine]
        hover = [
            f"iterative_scan = {mode}<br>{c.filter.label()}: {r.matching:,} of {r.rows:,} rows"
            f"<br>{r.short} of {r.queries} queries short of LIMIT {k}; {r.mean_rows:.1f} rows "
            f"on average<br>recall@{k} {r.mean_recall:.3f} · median {r.latency():.2f} ms"
            f"<br>measured {when(r.ran_at)}"
            for c, r in mine
        ]
        style = {
            "type": "scatter", "mode": "lines+markers", "legendgroup": mode, "x": x,
            "line": {"color": color, "dash": MODE_DASH[mode]},
            "marker": {"size": 9, "symbol": MODE_SYMBOL[mode]}, "hovertext": hover,
            "hoverinfo": "text",
        }  # fmt: skip
        traces.append(
            {**style, "y": [r.mean_rows for _, r in mine], "name": f"iterative_scan = {mode}"}
        )
        traces.append(
            {
                **style,
                "y": [r.mean_recall for _, r in mine],
                "name": mode,
                "showlegend": False,
                "xaxis": "x2",
                "yaxis": "y2",
            }
        )
    ticks = sorted({c.share for c in SELECTIVITIES})
    axis = {
        "type": "log", "tickvals": ticks, "ticktext": [share(t) for t in ticks],
        "range": [-3.3, 0],
    }  # fmt: skip
    layout = {
        "xaxis": {**axis, "anchor": "y", "matches": "x2", "showticklabels": False},
        "xaxis2": {
            **axis,
            "anchor": "y2",
            "title": {"text": "selectivity: share of rows the filter matches (log scale)"},
        },
        "yaxis": {"anchor": "x", "domain": [0.55, 1.0], "range": [-0.5, k * 1.1 + 0.5]},
        "yaxis2": {"anchor": "x2", "domain": [0.0, 0.42], "range": [-0.03, 1.05]},
        "shapes": [
            {
                "type": "line",
                "xref": "paper",
                "x0": 0,
                "x1": 1,
                "yref": "y",
                "y0": k,
                "y1": k,
                "line": {"color": "#888", "dash": "dot"},
            }  # fmt: skip
        ],
        "annotations": [
            panel_title(f"rows returned per query (mean); the dotted line is LIMIT {k}", 1.0),
            panel_title(f"recall@{k} against the exact filtered truth", 0.42),
        ],
        "height": 520,
        "margin": {"l": 10, "r": 10, "t": 30, "b": 10},
        "legend": {"orientation": "h", "yanchor": "top", "y": -0.14, "x": 0},
        "hovermode": "closest",
    }
    return PlainFigure({"data": traces, "layout": layout})
