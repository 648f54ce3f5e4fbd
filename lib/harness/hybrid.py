"""Hybrid search as systems of the evals harness: the lexical rankers alone
(lib/harness/lexical.py) and full text fused with vectors in one SQL statement.

Fusion runs the two sides as ranked CTEs, in pgvector-python's shape
(examples/hybrid_search/rrf.py): `semantic` is the vector index's nearest rows, `keyword` a
lexical ranker's best, each numbered from 1 (ties by key), joined with a FULL OUTER JOIN so
a row found by either side is kept. Two ways of scoring the joined rows:

- `rrf`, Reciprocal Rank Fusion (Cormack, Clarke and Büttcher, SIGIR 2009):
  score = w_v / (k + rank_v) + w_t / (k + rank_t), a side's term 0 where it did not find the
  row. k = 60 is the paper's and pgvector-python's; Supabase's `hybrid_search()` uses 50.
- `convex`: each side's scores min-max normalised over its own candidates (1 for its best,
  0 for its worst, 1 when they are all equal), then w_v·norm_v + w_t·norm_t. It depends on
  how each side's scores are spread, which rank fusion ignores.

A fused statement's parameters: $1 the query vector, $2 the depth, $3 the query's text, then
the fusion's knobs (RRF: $4 k, $5 and $6 the weights, $7 and $8 each side's candidate
depth; convex: $4 and $5 the weights, $6 and $7 the depths), then the lexical ranker's (BM25's
k1 and b). Each row comes back with where it came from: its rank on each side (NULL where
that side did not find it). The vector side reads the HNSW index at `hnsw.ef_search` ≥ its
candidate depth; the plan is checked to read it.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass

from psycopg import sql

from lib.core.psql import ident
from lib.dataset.bm25_tables import K1, B
from lib.harness.evals import DEPTH, HYBRID, TEXT, System, _read_only
from lib.harness.lexical import KINDS, Ranker
from lib.harness.recall import INDEX_TIMEOUT_MS, HarnessError, Target, index_settings
from lib.harness.rerank import MaxSim

METHODS = ("rrf", "convex")
RRF_K = 60


def _settings(timeout_ms: int) -> dict:
    settings = {"plan_cache_mode": "force_custom_plan", "jit": "off"}
    return _read_only({**settings, "statement_timeout": f"{timeout_ms}ms"})


def lexical_system(
    ranker: Ranker, *, depth: int = DEPTH, timeout_ms: int = INDEX_TIMEOUT_MS
) -> System:
    """A lexical ranker alone: $1 the query's text, $2 the depth, then its knobs."""
    knobs = ranker.knobs()
    placeholders = [f"${3 + i}" for i in range(len(knobs))]
    name = ranker.kind
    if ranker.kind == "bm25" and (ranker.k1, ranker.b) != (K1, B):
        name = f"bm25:{ranker.k1:g}:{ranker.b:g}"
    return System(
        name, ranker.label, TEXT, ranker.select("$1", "$2", placeholders),
        _settings(timeout_ms), "score", None, tuple(v for _, v in knobs),
        ("the query's text", "depth", *(k for k, _ in knobs)), depth,
    )  # fmt: skip


@dataclass(frozen=True)
class Fusion:
    """How two ranked lists become one, and how many candidates each side gives."""

    method: str = "rrf"
    k: float = RRF_K  # RRF only
    vector_weight: float = 1.0
    text_weight: float = 1.0
    vector_depth: int = 100
    text_depth: int = 100

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown fusion {self.method!r}: rrf or convex")
        if min(self.vector_depth, self.text_depth) < 1:
            raise ValueError("each side's candidate depth is 1 or more")
        if min(self.vector_weight, self.text_weight) < 0 or self.k < 0:
            raise ValueError("weights and k are 0 or more")

    def knobs(self) -> tuple[tuple[str, float | int], ...]:
        weights = (("vector weight", self.vector_weight), ("text weight", self.text_weight))
        depths = (("vector candidates", self.vector_depth), ("text candidates", self.text_depth))
        return ((("k", self.k),) if self.method == "rrf" else ()) + weights + depths

    def label(self, ranker: Ranker) -> str:
        how = f"RRF k={self.k:g}" if self.method == "rrf" else "convex"
        weights = ""
        if (self.vector_weight, self.text_weight) != (1.0, 1.0) or self.method == "convex":
            weights = f" {self.vector_weight:g}·vector + {self.text_weight:g}·text"
        return f"hybrid {how}{weights}: HNSW + {ranker.label}"


def _vector_side(target: Target, depth: str) -> str:
    if target.where or target.key == "ctid":
        raise HarnessError("hybrid search needs a table with a key and no filter")
    key = ident(target.key)
    alias = sql.SQL("") if target.key == "id" else sql.SQL(" AS id")
    col, op = ident(target.column), sql.SQL(target.operator)
    return (
        sql.SQL(
            "SELECT {key}{alias}, {col} {op} $1 AS distance\n"
            "FROM {table}\n"
            "ORDER BY {col} {op} $1\n"
            "LIMIT " + depth
        )
        .format(key=key, alias=alias, col=col, op=op, table=target.name())
        .as_string()
    )


def _text_side(ranker: Ranker, depth: str, knobs: Sequence[str]) -> str:
    text = ranker.select("$3", depth, knobs)
    key = ranker.source.key
    if key != "id" and ranker.kind in ("fts", "fts_or"):
        text = text.replace(f"SELECT {ident(key).as_string()},", f"SELECT {key} AS id,", 1)
    return text


def _indent(text: str) -> str:
    return textwrap.indent(text, " " * 8)


def fusion_sql(target: Target, ranker: Ranker, fusion: Fusion) -> str:
    """The one statement fusing the vector side and the lexical side."""
    n = len(fusion.knobs())
    p = [f"${4 + i}" for i in range(n)]
    lexical_knobs = [f"${4 + n + i}" for i in range(len(ranker.knobs()))]
    if fusion.method == "rrf":
        k, wv, wt, dv, dt = p
        vector_col = "row_number() OVER (ORDER BY distance, id) AS rank"
        text_col = "row_number() OVER (ORDER BY score DESC, id) AS rank"
        score = (
            f"coalesce({wv}::float8 / ({k}::float8 + semantic.rank), 0)\n"
            f"         + coalesce({wt}::float8 / ({k}::float8 + keyword.rank), 0) AS score"
        )
    else:
        wv, wt, dv, dt = p
        vector_col = (
            "row_number() OVER (ORDER BY distance, id) AS rank,\n"
            "           coalesce((max(distance) OVER () - distance)\n"
            "                    / nullif(max(distance) OVER () - min(distance) OVER (), 0), 1)"
            " AS norm"
        )
        text_col = (
            "row_number() OVER (ORDER BY score DESC, id) AS rank,\n"
            "           coalesce((score - min(score) OVER ())\n"
            "                    / nullif(max(score) OVER () - min(score) OVER (), 0), 1)"
            " AS norm"
        )
        score = (
            f"{wv}::float8 * coalesce(semantic.norm, 0)\n"
            f"         + {wt}::float8 * coalesce(keyword.norm, 0) AS score"
        )
    return (
        "WITH semantic AS (\n"
        f"    SELECT id, {vector_col}\n"
        "    FROM (\n"
        f"{_indent(_vector_side(target, dv))}\n"
        "    ) AS nearest\n"
        "),\n"
        "keyword AS (\n"
        f"    SELECT id, {text_col}\n"
        "    FROM (\n"
        f"{_indent(_text_side(ranker, dt, lexical_knobs))}\n"
        "    ) AS matched\n"
        ")\n"
        "SELECT coalesce(semantic.id, keyword.id) AS id,\n"
        f"       {score},\n"
        "       semantic.rank AS vector_rank,\n"
        "       keyword.rank AS text_rank\n"
        "FROM semantic\n"
        "FULL OUTER JOIN keyword ON semantic.id = keyword.id\n"
        "ORDER BY score DESC, id\n"
        "LIMIT $2"
    )


def fusion_name(fusion: Fusion, text: str = "bm25", k1: float = K1, b: float = B) -> str:
    """`hybrid` for the defaults (RRF, k = 60, weights 1 and 1, BM25, 100 candidates a side),
    else the parts that differ, in the form `parse_hybrid` reads: `hybrid:rrf:50`,
    `hybrid:convex:text=fts_or:w=0.7/0.3`, `hybrid:rrf:60:depth=40/40`."""
    parts = ["hybrid"]
    if fusion.method != "rrf" or fusion.k != RRF_K:
        parts.append(fusion.method)
        if fusion.method == "rrf":
            parts.append(f"{fusion.k:g}")
    if text != "bm25":
        parts.append(f"text={text}")
    if text == "bm25" and (k1, b) != (K1, B):
        parts.append(f"bm25={k1:g}/{b:g}")
    if (fusion.vector_weight, fusion.text_weight) != (1.0, 1.0):
        parts.append(f"w={fusion.vector_weight:g}/{fusion.text_weight:g}")
    if (fusion.vector_depth, fusion.text_depth) != (100, 100):
        parts.append(f"depth={fusion.vector_depth}/{fusion.text_depth}")
    return ":".join(parts)


@dataclass(frozen=True)
class HybridSpec:
    """A hybrid system as typed: the fusion, the lexical side's kind and its BM25 knobs."""

    fusion: Fusion
    text: str = "bm25"
    k1: float = K1
    b: float = B
    rerank: int = 0  # re-rank the fused top N by MaxSim (lib/harness/rerank.py); 0: none

    @property
    def name(self) -> str:
        name = fusion_name(self.fusion, self.text, self.k1, self.b)
        return f"{name}:rerank={self.rerank}" if self.rerank else name


def parse_hybrid(text: str) -> HybridSpec:
    """`hybrid[:rrf[:K]|:convex][:text=fts|fts_or|bm25|bm25_sparse][:bm25=K1/B]
    [:w=WV/WT][:depth=DV/DT]`."""
    head, *parts = text.split(":")
    if head != "hybrid":
        raise ValueError(f"not a hybrid system: {text!r}")
    method, k, kv = "rrf", float(RRF_K), {}
    if parts and parts[0] in METHODS:
        method = parts.pop(0)
        if method == "rrf" and parts and "=" not in parts[0]:
            k = _number(text, parts.pop(0))
    for part in parts:
        key, sep, value = part.partition("=")
        if not sep or key not in ("text", "bm25", "w", "depth", "rerank") or key in kv:
            raise ValueError(
                f"system {text!r}: hybrid[:rrf[:K]|:convex][:text=KIND][:bm25=K1/B]"
                "[:w=WV/WT][:depth=DV/DT][:rerank=N]"
            )
        kv[key] = value
    kind = kv.get("text", "bm25")
    if kind not in KINDS:
        raise ValueError(f"system {text!r}: text is one of {', '.join(KINDS)}")
    k1, b = _pair(text, kv.get("bm25", f"{K1}/{B}"))
    wv, wt = _pair(text, kv.get("w", "1/1"))
    dv, dt = _pair(text, kv.get("depth", "100/100"))
    if dv != int(dv) or dt != int(dt):
        raise ValueError(f"system {text!r}: depths are whole numbers")
    rerank = _number(text, kv.get("rerank", "0"))
    if rerank != int(rerank) or rerank < 0:
        raise ValueError(f"system {text!r}: rerank=N, N rows (0: none)")
    fusion = Fusion(method, k, wv, wt, int(dv), int(dt))
    return HybridSpec(fusion, kind, k1, b, int(rerank))


def _number(text: str, value: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"system {text!r}: {value!r} is not a number") from None


def _pair(text: str, value: str) -> tuple[float, float]:
    a, sep, b = value.partition("/")
    if not sep:
        raise ValueError(f"system {text!r}: {value!r} is two numbers, A/B")
    return _number(text, a), _number(text, b)


def fusion_system(
    target: Target,
    index: str,
    ranker: Ranker,
    fusion: Fusion = Fusion(),
    *,
    name: str | None = None,
    ef_search: int | None = None,
    depth: int = DEPTH,
    timeout_ms: int = INDEX_TIMEOUT_MS,
    rerank: MaxSim | None = None,
) -> System:
    """Vectors (the HNSW `index`, at ef_search = max(40, vector candidates) unless given) and
    `ranker` fused by `fusion` in one statement; its plan must read `index`. With `rerank`,
    its top rows are re-ranked after the statement ran (lib/harness/rerank.py)."""
    ef = ef_search or max(40, fusion.vector_depth)
    settings = index_settings({"hnsw.ef_search": ef}, timeout_ms)
    knobs = fusion.knobs() + ranker.knobs()
    spec = HybridSpec(fusion, ranker.kind, ranker.k1, ranker.b, rerank.top if rerank else 0)
    return System(
        name or spec.name,
        fusion.label(ranker) + (f", then {rerank.label}" if rerank else ""), HYBRID,
        fusion_sql(target, ranker, fusion), settings, "score", index,
        tuple(v for _, v in knobs),
        ("the query vector", "depth", "the query's text", *(k for k, _ in knobs)), depth,
        rerank,
    )  # fmt: skip


def rrf(
    vector_ids: Sequence, text_ids: Sequence, fusion: Fusion = Fusion(), depth: int = DEPTH
) -> list[tuple]:
    """Reciprocal Rank Fusion in Python, from each side's ids best first: (id, score), best
    first, ties by id (the reference the SQL is tested against)."""
    score: dict = {}
    vector_rank = {i: r for r, i in enumerate(vector_ids[: fusion.vector_depth], 1)}
    text_rank = {i: r for r, i in enumerate(text_ids[: fusion.text_depth], 1)}
    for i in vector_rank.keys() | text_rank.keys():
        a = fusion.vector_weight / (fusion.k + vector_rank[i]) if i in vector_rank else 0.0
        b = fusion.text_weight / (fusion.k + text_rank[i]) if i in text_rank else 0.0
        score[i] = a + b
    return sorted(score.items(), key=lambda x: (-x[1], x[0]))[:depth]
