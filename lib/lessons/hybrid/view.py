"""What the Hybrid search page draws: one query's top rows per ranker with their relevance and,
for a fused list, where each row came from; and from the stored report, what fusion and
re-ranking gain against the vector index and what they cost. No database access, no
Streamlit."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pandas as pd

from lib.lessons.hybrid.live import Ranked, origin
from lib.ui.report_view import by_name, comparison, diff_cell, short, significant, systems

BASELINE = "hnsw:100"
# the report's systems by short names, where a label is too long (bars, column heads)
SHORT = {
    "hnsw:100": "HNSW", "fts": "ts_rank_cd", "bm25": "BM25 (SQL)",
    "bm25_sparse": "BM25 (sparsevec)", "hybrid": "RRF (BM25 SQL)",
    "hybrid:text=bm25_sparse": "RRF (sparsevec)", "hybrid:convex": "convex (BM25 SQL)",
    "hybrid:rerank=20": "RRF + MaxSim top 20",
}  # fmt: skip


def ranked_frame(
    r: Ranked,
    passages: Sequence[str],
    judged: Mapping[str, int] | None,
    doc_id: Callable[[Any], str],
) -> dict[str, list]:
    """A ranker's top rows, as columns: rank, relevance (2 the answer, 1 its section, 0
    neither; blank when the query is not labelled), the passage's opening words, the score,
    and for a fused list where the row came from. (Columns, not a pandas frame: the page
    makes an Arrow table of them, and a new query draws six.)"""
    frame: dict[str, list] = {"#": list(range(1, len(r.keys) + 1))}
    if judged is not None:
        frame["rel"] = [judged.get(doc_id(k), 0) for k in r.keys]
    frame["passage"] = [short(p) if p else "(a generated row: no text)" for p in passages]
    frame["score"] = [round(s, 4) for s in r.scores]
    if r.vector_rank:
        frame["from"] = [origin(v, t) for v, t in zip(r.vector_rank, r.text_rank, strict=True)]
    frame["id"] = list(r.keys)
    return frame


def found(r: Ranked, judged: Mapping[str, int], doc_id: Callable[[Any], str]) -> str:
    """'answer at rank 3' or 'answer not in the top 10', and how many relevant rows."""
    if not r.keys:
        return "no row"
    grades = [judged.get(doc_id(k), 0) for k in r.keys]
    at = next((i for i, g in enumerate(grades, 1) if g == 2), None)
    where = f"answer at rank {at}" if at else f"answer not in the top {len(r.keys)}"
    return f"{where}; {sum(g > 0 for g in grades)} relevant rows"


def cost_frame(report: Mapping[str, Any], baseline: str = BASELINE) -> pd.DataFrame:
    """Each system against the vector index: the difference in nDCG@10 with its interval and
    p-value, whether it is more than chance, and p50 / p95 latency."""
    names = by_name(report)
    rows = []
    for s in systems(report):
        row = {"system": s["label"]}
        if s["name"] == baseline or baseline not in names:
            row["nDCG@10 against HNSW"] = "(the baseline)"
            row["more than chance?"] = "—"
        else:
            c = comparison(report, baseline, s["name"])
            row["nDCG@10 against HNSW"] = diff_cell(c) if c else "—"
            row["more than chance?"] = (
                "—" if c is None else (("better" if c["difference"] > 0 else "worse")
                                       if significant(c) else "no")
            )  # fmt: skip
        row["p50 ms"] = round(s["latency_ms"]["p50"], 2)
        row["p95 ms"] = round(s["latency_ms"]["p95"], 2)
        rows.append(row)
    return pd.DataFrame(rows)


def kind_winners(report: Mapping[str, Any], metric: str = "ndcg@10") -> dict[str, tuple]:
    """Per kind of query: (the vector index's mean, the best lexical ranker's label and mean,
    the best fusion's label and mean, the number of queries)."""
    out = {}
    ss = systems(report)
    kinds = sorted({k for s in ss for k in s["kinds"]})
    for kind in kinds:

        def mean(s: dict, kind: str = kind) -> float:
            return s["kinds"].get(kind, {}).get(metric, {}).get("mean") or 0.0

        vec = next((s for s in ss if s["name"] == BASELINE), None)
        lexical = [s for s in ss if s["input"] == "text"]
        fused = [s for s in ss if s["input"] == "hybrid"]
        if vec is None or not lexical or not fused:
            continue
        best_lex = max(lexical, key=mean)
        best_fused = max(fused, key=mean)
        queries = vec["kinds"].get(kind, {}).get("queries", 0)
        out[kind] = (
            mean(vec), best_lex["label"], mean(best_lex), best_fused["label"], mean(best_fused),
            queries,
        )  # fmt: skip
    return out


def showcase(report: Mapping[str, Any], kind: str = "identifier") -> str | None:
    """A labelled query of `kind` worth opening the page with: full text (BM25) finds its
    answer where the vector index does worse, and the fused list finds it (nDCG@10 of each,
    from the stored run); ties by id. None when the report has no query of `kind`."""
    per = {s["name"]: s["per_query"] for s in systems(report)}
    labelled = report["labelled"]
    ids = sorted(q for q in labelled if labelled[q]["kind"] == kind)
    if not ids or not {"bm25", "hnsw:100", "hybrid"} <= per.keys():
        return ids[0] if ids else None

    def gain(q: str) -> tuple[float, float]:
        def nd(name: str) -> float:
            return per[name].get(q, {}).get("ndcg@10", 0.0)

        return (min(nd("bm25") - nd("hnsw:100"), nd("hybrid")), nd("hybrid"))

    return max(ids, key=lambda q: (gain(q), q))
