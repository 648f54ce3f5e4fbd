"""The recall plot's spec, built without plotly's per-property validation, is valid plotly."""

import plotly.graph_objects as go

from lib.lessons.recall import view as recall_view


def _point(rows: int, ef: int, recall: float) -> dict:
    return {
        "key": f"{rows}|i|ef{ef}", "rows": rows, "config": f"HNSW · ef_search={ef}",
        "index": "i", "recall": recall, "recall_min": 0.4, "missing": 7, "queries": 100,
        "exact_ms": rows / 1000, "index_ms": 0.3, "real_rows": min(rows, 6234),
        "exact_ran_at": "2026-11-25T20:00:00+00:00", "index_ran_at": "2026-11-25T20:00:01+00:00",
    }  # fmt: skip


def test_the_recall_figure_passes_plotly_validation_with_recall_above_latency():
    points = [_point(n, ef, 1 - n / 1e6) for n in (500, 5000, 50000) for ef in (10, 40)]
    fig = recall_view.figure(points, [500, 1000, 500_000])
    spec = fig.to_dict()
    validated = go.Figure(spec)  # full validation: raises on any invalid property
    recall = [t for t in validated.data if t.yaxis == "y" and not t.name.startswith("exact")]
    latency = [t for t in validated.data if t.yaxis == "y2"]
    assert sum(len(t.x) for t in recall) == len(points)
    assert {t.name for t in recall} == {"HNSW · ef_search=10", "HNSW · ef_search=40"}
    assert len(latency) == 3  # the exact scan's and one per configuration
    assert validated.layout.xaxis2.range[1] > 5.69  # the axis spans the sizes on offer
    assert "ms" in validated.layout.yaxis2.ticktext[0]


def test_a_dashed_line_marks_where_real_rows_end_when_the_axis_reaches_past_them():
    points = [_point(500, 40, 1.0)]
    spec = recall_view.figure(points, [500, 500_000], real_end=310_377).to_dict()
    go.Figure(spec)  # valid plotly
    (line,) = spec["layout"]["shapes"]
    assert line["x0"] == line["x1"] == 310_377 and line["line"]["dash"] == "dash"
    labels = [a["text"] for a in spec["layout"]["annotations"]]
    assert "real rows end at 310,377 · generated past it →" in labels
    within = recall_view.figure(points, [500, 200_000], real_end=310_377).to_dict()
    assert not within["layout"].get("shapes")  # every size on offer is real: no line
