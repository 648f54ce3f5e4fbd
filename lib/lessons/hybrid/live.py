"""One query, run now through every ranker of the Hybrid search page: the vector index, full
text, BM25 in SQL and as a sparsevec, the fusion with the learner's knobs, and the fused list
re-ranked by MaxSim. Each comes back with the SQL that ran (a Script: pasted into psql it
gives the same rows), its rows, where each fused row came from, and the time it took."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lib.core.database import Database
from lib.core.psql import Script
from lib.dataset.bm25_tables import K1, B
from lib.dataset.passages import Dataset
from lib.harness import evals, hybrid, lexical, rerank
from lib.harness.recall import HarnessError
from lib.lessons.hybrid import reports

SHOWN = 10
EF_SEARCH = 100
REL = 1e-4  # BM25 as float4 sparsevec weights against BM25 in float8: the tolerance shown


@dataclass(frozen=True)
class Knobs:
    """The learner's fusion: its lexical side, RRF or convex, k, weights, candidate depths,
    BM25's k1 and b, and how many fused rows MaxSim re-ranks (0: none)."""

    text: str = "bm25"
    method: str = "rrf"
    k: float = hybrid.RRF_K
    vector_weight: float = 1.0
    text_weight: float = 1.0
    vector_depth: int = 100
    text_depth: int = 100
    k1: float = K1
    b: float = B
    rerank: int = 20
    reranker: str = "maxsim"  # or "voyage": Voyage's rerank endpoint (VOYAGE_API_KEY)

    def fusion(self) -> hybrid.Fusion:
        return hybrid.Fusion(
            self.method, self.k, self.vector_weight, self.text_weight,
            self.vector_depth, self.text_depth,
        )  # fmt: skip


@dataclass(frozen=True)
class Ranked:
    """One ranker's answer to the query: its best rows first."""

    name: str
    label: str
    keys: tuple[int, ...]
    scores: tuple[float, ...]
    ms: float  # the statement's round trip (and the re-rank's own time, for the re-rank)
    script: Script | None  # the SQL that ran; None for the re-rank (it runs in Python)
    vector_rank: tuple[int | None, ...] = ()  # fused rows: the rank on each side, or None
    text_rank: tuple[int | None, ...] = ()


def _ranker(kind: str, source: lexical.TextSource, bm25, knobs: Knobs) -> lexical.Ranker:
    if kind == "bm25_sparse":
        return lexical.Ranker(kind, source, bm25, bm25.k1, bm25.b)
    k1, b = (knobs.k1, knobs.b) if kind == "bm25" else (K1, B)
    return lexical.Ranker(kind, source, bm25 if kind.startswith("bm25") else None, k1, b)


def _timed(db: Database, system: evals.System, query) -> tuple[Script, float]:
    t0 = time.perf_counter()
    script = system.script(db, query)
    ms = (time.perf_counter() - t0) * 1000
    if script.error:
        raise HarnessError(f"{system.label}: {script.error}")
    return script, ms


FUSED_DEPTH = 50  # the fused statement's LIMIT: enough for the largest re-rank offered

ALONE = ("hnsw", "fts", "bm25", "bm25_sparse")


def alone(
    db: Database, ds: Dataset, n: int, text_table: str, kind: str, text: str,
    vector: np.ndarray, k1: float = K1, b: float = B, sides: tuple | None = None,
) -> Ranked:  # fmt: skip
    """One ranker on its own, now: the HNSW index (`vector`), or a lexical one (`text`; BM25
    in SQL with `k1` and `b`). `sides`: reports.sides of the size, when the caller has it."""
    target, index, source, bm25 = sides or reports.sides(db, ds, n, text_table)
    if kind == "hnsw":
        system = evals.index_system(
            f"hnsw:{EF_SEARCH}", f"HNSW ef_search={EF_SEARCH}", target, index, EF_SEARCH,
            depth=SHOWN,
        )  # fmt: skip
        script, ms = _timed(db, system, vector)
        return _ranked(system, script, ms)
    if kind not in ALONE:
        raise ValueError(f"unknown ranker {kind!r}: {', '.join(ALONE)}")
    if kind == "fts":
        system = evals.fts_system(source, depth=SHOWN)
    else:
        system = hybrid.lexical_system(_ranker(kind, source, bm25, Knobs(k1=k1, b=b)), depth=SHOWN)
    script, ms = _timed(db, system, text)
    return _ranked(system, script, ms)


def fused(
    db: Database, ds: Dataset, n: int, text_table: str, text: str, vector: np.ndarray,
    knobs: Knobs = Knobs(), sides: tuple | None = None,
) -> Ranked:  # fmt: skip
    """The fusion with `knobs` (its re-rank fields aside), now; its `rows` hold the first
    FUSED_DEPTH rows for a re-rank. `sides` as for `alone`."""
    target, index, source, bm25 = sides or reports.sides(db, ds, n, text_table)
    system = hybrid.fusion_system(
        target, index, _ranker(knobs.text, source, bm25, knobs), knobs.fusion(),
        depth=FUSED_DEPTH,
    )  # fmt: skip
    script, ms = _timed(db, system, (vector, text))
    return _ranked(system, script, ms, fused=True)


def reranked(ds: Dataset, text: str, fused_list: Ranked, top: int, reranker: str) -> Ranked:
    """The fused list's first `top` rows re-ranked by `reranker` (maxsim or voyage), now."""
    if reranker not in ("maxsim", "voyage"):
        raise ValueError(f"unknown re-ranker {reranker!r}: maxsim or voyage")
    rows = fused_list.script.rows if fused_list.script is not None else []
    make = rerank.lab_voyage(ds) if reranker == "voyage" else rerank.lab_maxsim(ds)
    r = make(top)
    t0 = time.perf_counter()
    keys, scores = r(text, [row[0] for row in rows], [float(row[1]) for row in rows])
    ms = (time.perf_counter() - t0) * 1000
    sides = {row[0]: (row[2], row[3]) for row in rows}
    head = keys[:SHOWN]
    return Ranked(
        "rerank", f"the fused list, then {r.label}", tuple(int(k) for k in head),
        tuple(scores[:SHOWN]), ms, None, tuple(sides[k][0] for k in head),
        tuple(sides[k][1] for k in head),
    )  # fmt: skip


def run(
    db: Database,
    ds: Dataset,
    n: int,
    text_table: str,
    text: str,
    vector: np.ndarray,
    knobs: Knobs = Knobs(),
) -> list[Ranked]:
    """`text` (and its embedding `vector`) through each ranker on size `n`, now."""
    out = [alone(db, ds, n, text_table, k, text, vector, knobs.k1, knobs.b) for k in ALONE]
    out.append(fused(db, ds, n, text_table, text, vector, knobs))
    if knobs.rerank:
        out.append(reranked(ds, text, out[-1], knobs.rerank, knobs.reranker))
    return out


def _ranked(system: evals.System, script: Script, ms: float, fused: bool = False) -> Ranked:
    rows = script.rows[:SHOWN]
    return Ranked(
        system.name, system.label, tuple(int(r[0]) for r in rows),
        tuple(float(r[1]) for r in rows), ms, script,
        tuple(r[2] for r in rows) if fused else (), tuple(r[3] for r in rows) if fused else (),
    )  # fmt: skip


@dataclass(frozen=True)
class Agreement:
    """BM25 in SQL against BM25 as sparsevec on one query's top rows."""

    same_order: bool
    compared: int
    max_relative: float | None  # the largest |a − b| / |a| over the rows both returned


def agreement(sql_side: Ranked, sparse: Ranked) -> Agreement:
    a = dict(zip(sql_side.keys, sql_side.scores, strict=True))
    b = dict(zip(sparse.keys, sparse.scores, strict=True))
    both = [k for k in a if k in b]
    rel = [abs(a[k] - b[k]) / abs(a[k]) for k in both if a[k]]
    return Agreement(sql_side.keys == sparse.keys, len(both), max(rel) if rel else None)


def stored_agreement(report: dict) -> tuple[int, int]:
    """Of the report's test queries, on how many BM25 in SQL and as sparsevec returned the
    same top 10, in the same order; and how many were compared."""
    by = {s["name"]: s["per_query"] for s in report["systems"]}
    if "bm25" not in by or "bm25_sparse" not in by:
        return 0, 0
    same = [by["bm25"][q]["top"] == by["bm25_sparse"][q]["top"] for q in by["bm25"]]
    return sum(same), len(same)


def origin(vector_rank: int | None, text_rank: int | None) -> str:
    """Where a fused row came from, in words."""
    parts = []
    if vector_rank is not None:
        parts.append(f"vector #{vector_rank}")
    if text_rank is not None:
        parts.append(f"text #{text_rank}")
    return " + ".join(parts) if parts else "—"


def texts(ds: Dataset, keys: Sequence[int]) -> list[str]:
    return rerank.lab_texts(ds)(keys)
