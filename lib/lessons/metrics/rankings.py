"""One set of vectors ranked under cosine, L2 and inner product: in numpy and in Postgres.

pgvector's three distance operators, and what each returns (smaller is always closer):

    <=>  cosine distance          1 - a.b / (|a| |b|)      similarity = 1 - distance
    <->  Euclidean (L2) distance  |a - b|
    <#>  negative inner product   -(a.b)                   so ascending order ranks best first

numpy computes them the way pgvector does (float32 sums, the cosine division in double), so
that exact ties in one are exact ties in the other. Ties are broken by name in both.

    >>> import numpy as np
    >>> docs = np.array([[1, 0.6], [4, -0.6], [2.6, 1.9]], np.float32)
    >>> r = numpy_rankings(["A", "B", "C"], docs, np.array([3, 1], np.float32))
    >>> [r[m.key][0].name for m in METRICS]
    ['A', 'C', 'B']
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from psycopg import sql

from lib.core.database import Database
from lib.core.embeddings.base import checked_vectors
from lib.core.operators import BY_KEY as BY_KEY  # the table of operators lives there
from lib.core.operators import METRICS, Metric
from lib.core.psql import Script, Statement, ident, run, shorten_vectors, vector_literal

# Two values closer than this (relative) are the same number as far as float32 can tell.
TIE_TOLERANCE = 1e-5


@dataclass(frozen=True)
class Ranked:
    """One document's place in a ranking: the operator's value and the score a person reads."""

    name: str
    value: float  # what the operator returns (NaN when undefined)
    score: float

    @property
    def undefined(self) -> bool:
        return math.isnan(self.value)


def normalised(vectors: np.ndarray) -> np.ndarray:
    """Each row scaled to length 1 (float32); a zero row stays zero, as in l2_normalize()."""
    v = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(v, axis=-1, keepdims=True)
    out = np.divide(v, norms, out=np.zeros_like(v), where=norms > 0)
    return out.astype(np.float32)


def operator_values(docs: np.ndarray, query: np.ndarray, metric: Metric) -> np.ndarray:
    """What Postgres's operator returns for each document row against `query`.

    Mirrors pgvector: products summed in float32, the cosine's division in double; the
    cosine of a zero vector is 0/0 = NaN.
    """
    d = np.asarray(docs, dtype=np.float32)
    q = np.asarray(query, dtype=np.float32).reshape(-1)
    if metric.key == "l2":
        diff = d - q
        return np.sqrt((diff * diff).sum(axis=1, dtype=np.float32).astype(np.float64))
    dot = (d * q).sum(axis=1, dtype=np.float32).astype(np.float64)
    if metric.key == "ip":
        return -dot
    norm_d = (d * d).sum(axis=1, dtype=np.float32).astype(np.float64)
    norm_q = np.float64((q * q).sum(dtype=np.float32))
    with np.errstate(invalid="ignore", divide="ignore"):
        similarity = dot / np.sqrt(norm_d * norm_q)
    similarity = np.where(np.isnan(similarity), np.nan, np.clip(similarity, -1.0, 1.0))
    return 1.0 - similarity


def ranking(names: Sequence[str], values: np.ndarray, metric: Metric) -> list[Ranked]:
    """Names ordered as ORDER BY value, name orders them: ascending, NaN last, ties by name."""

    def key(i: int) -> tuple[bool, float, str]:
        undefined = math.isnan(values[i])
        return undefined, 0.0 if undefined else float(values[i]), names[i]

    order = sorted(range(len(names)), key=key)
    return [Ranked(names[i], float(values[i]), metric.score(float(values[i]))) for i in order]


def numpy_rankings(
    names: Sequence[str], docs: np.ndarray, query: np.ndarray
) -> dict[str, list[Ranked]]:
    """The documents ranked under each metric, computed in numpy."""
    return {m.key: ranking(names, operator_values(docs, query, m), m) for m in METRICS}


@dataclass(frozen=True)
class Agreement:
    """Whether the three orders are the same, and the ranks (1-based) where they differ."""

    agree: bool
    differing_ranks: tuple[int, ...]


def agreement(rankings: Mapping[str, Sequence[Ranked]]) -> Agreement:
    orders = [[r.name for r in rankings[m.key]] for m in METRICS]
    differing = tuple(
        i + 1 for i, names in enumerate(zip(*orders, strict=True)) if len(set(names)) > 1
    )
    return Agreement(not differing, differing)


def same_order(
    a: Sequence[Ranked], b: Sequence[Ranked], tol: float = TIE_TOLERANCE, scale: float = 1.0
) -> bool:
    """True when `b` orders the same names as `a`, allowing swaps among values that tie.

    Two values tie when they differ by less than `tol` times the larger of `scale` and the
    values themselves: float32 sums taken in another order (pgvector's are vectorised) can
    differ by a few units in the last place of the largest term, which is `scale`.
    """
    if sorted(r.name for r in a) != sorted(r.name for r in b):
        return False
    value = {r.name: r.value for r in a}
    seq = [value[r.name] for r in b]
    for prev, cur in zip(seq, seq[1:], strict=False):
        if math.isnan(prev):
            if not math.isnan(cur):
                return False
            continue
        if math.isnan(cur):
            continue
        if cur < prev - tol * max(scale, abs(prev), abs(cur)):
            return False
    return True


def rounding_scale(docs: np.ndarray, query: np.ndarray, metric: Metric) -> float:
    """How large the float32 rounding of `metric`'s sums can be, up to a factor of 1e-7.

    Inner products of long vectors can cancel to a small number while each term is large;
    the rounding error follows the terms, bounded by |d| |q|. Cosine divides that away;
    L2 sums squares, which never cancel.
    """
    if metric.key != "ip" or len(docs) == 0:
        return 1.0
    d = np.linalg.norm(np.asarray(docs, dtype=np.float64), axis=1).max()
    q = np.linalg.norm(np.asarray(query, dtype=np.float64))
    return max(1.0, float(d * q))


def orders_match(
    docs: np.ndarray,
    query: np.ndarray,
    ours: Mapping[str, Sequence[Ranked]],
    theirs: Mapping[str, Sequence[Ranked]],
) -> dict[str, bool]:
    """Per metric: does `theirs` order the documents as `ours` does (ties may swap)?"""
    return {
        m.key: same_order(ours[m.key], theirs[m.key], scale=rounding_scale(docs, query, m))
        for m in METRICS
    }


# ---------------------------------------------------------------------------------------
# Postgres: the same documents, ranked by the three operators. Each statement carries the
# documents in a `docs` CTE: it runs on its own in psql, and the page writes nothing to the
# catalog (a temporary table per drag would, for every attendee).

DOCS_CTE = """WITH docs (name, embedding) AS (
    VALUES {rows}
)
"""

RANK_SQL = {
    "cosine": DOCS_CTE
    + """SELECT name,
       embedding <=> q AS cosine_distance,
       1 - (embedding <=> q) AS cosine_similarity
FROM docs, (SELECT {query} AS q) AS query
ORDER BY embedding <=> q, name""",
    "l2": DOCS_CTE
    + """SELECT name,
       embedding <-> q AS l2_distance
FROM docs, (SELECT {query} AS q) AS query
ORDER BY embedding <-> q, name""",
    "ip": DOCS_CTE
    + """SELECT name,
       embedding <#> q AS negative_inner_product,
       (embedding <#> q) * -1 AS inner_product
FROM docs, (SELECT {query} AS q) AS query
ORDER BY embedding <#> q, name""",
}


@dataclass(frozen=True)
class PostgresRankings:
    """The rankings Postgres returned and the script that produced them, as it ran."""

    rankings: dict[str, list[Ranked]]
    script: Script


def postgres_rankings(
    db: Database,
    names: Sequence[str],
    docs: np.ndarray,
    query: np.ndarray,
    *,
    normalise: bool = False,
) -> PostgresRankings:
    """Rank `docs` against `query` with <=>, <-> and <#>, the documents in each statement.

    The vectors are short, so they are written into the statements as literals; with
    `normalise`, each is wrapped in l2_normalize() there, as a learner would write it.
    """
    if len(names) != len(set(names)) or not names:
        raise ValueError("documents need distinct names")
    dim = int(np.asarray(query).reshape(-1).shape[0])
    docs = checked_vectors(docs, dim, len(names))
    query = checked_vectors(query, dim, 1)[0]

    def literal(v: np.ndarray) -> sql.Composable:
        vec = sql.SQL("{}::vector").format(sql.Literal(vector_literal(v)))
        return sql.SQL("l2_normalize({})").format(vec) if normalise else vec

    rows = sql.SQL(",\n           ").join(
        sql.SQL("({}, {})").format(sql.Literal(n), literal(v))
        for n, v in zip(names, docs, strict=True)
    )
    statements = [
        Statement.of(sql.SQL(RANK_SQL[m.key]).format(rows=rows, query=literal(query)))
        for m in METRICS
    ]
    script = run(db, statements)
    rankings = {
        m.key: [
            Ranked(row[0], float(row[1]), m.score(float(row[1]))) for row in script.results[i].rows
        ]
        for i, m in enumerate(METRICS)
    }
    return PostgresRankings(rankings, script)


def largest_difference(
    ours: Mapping[str, Sequence[Ranked]], theirs: Mapping[str, Sequence[Ranked]]
) -> float:
    """The largest |numpy value - Postgres value| over every document and metric (NaN = NaN)."""
    worst = 0.0
    for m in METRICS:
        mine = {r.name: r.value for r in ours[m.key]}
        for r in theirs[m.key]:
            a, b = mine[r.name], r.value
            if math.isnan(a) and math.isnan(b):
                continue
            worst = max(worst, abs(a - b))
    return worst


# ---------------------------------------------------------------------------------------
# An index serves one operator: EXPLAIN on a real table proves it.

PLAN_SQL = """EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF, BUFFERS OFF)
SELECT id FROM {table} ORDER BY embedding {op} $1 LIMIT 10"""
# With sequential scans disabled the planner takes any index that can serve the ORDER BY;
# a Seq Scan still in the plan (marked "Disabled") means no index could.
PLAN_SETTINGS = {"enable_seqscan": "off"}


@dataclass(frozen=True)
class Plan:
    metric: Metric
    text: str  # the plan, the query vector's literal shortened
    index: str | None  # the index the plan scanned, if any


@dataclass(frozen=True)
class OperatorPlans:
    """One plan per operator, and the script (one EXPLAIN per operator) that produced them."""

    plans: list[Plan]
    script: Script


def index_opclasses(db: Database, table: str) -> list[tuple[str, str]]:
    """(index name, operator class) of every index on `table`'s embedding column."""
    rows = db.fetchall(
        """SELECT i.relname, o.opcname
FROM pg_index x
JOIN pg_class i ON i.oid = x.indexrelid
JOIN pg_opclass o ON o.oid = x.indclass[0]
JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = x.indkey[0]
WHERE x.indrelid = to_regclass(%s) AND a.attname = 'embedding'
ORDER BY i.relname""",
        (table,),
    )
    return [(r[0], r[1]) for r in rows]


def operator_plans(db: Database, table: str, query: np.ndarray) -> OperatorPlans:
    """EXPLAIN ANALYZE of ORDER BY embedding <op> query LIMIT 10, for each operator."""
    q = checked_vectors(query, np.asarray(query).reshape(-1).shape[0], 1)[0]
    statements = [
        Statement.of(
            sql.SQL(PLAN_SQL).format(table=ident(table), op=sql.SQL(m.operator)),
            q,
            names=("the query's embedding",),
        )
        for m in METRICS
    ]
    script = run(db, statements, PLAN_SETTINGS)
    plans = []
    for m, result in zip(METRICS, script.results, strict=True):
        assert result is not None
        text = shorten_vectors("\n".join(r[0] for r in result.rows))
        found = re.search(r"Index (?:Only )?Scan using (\S+)", text)
        plans.append(Plan(m, text, found.group(1) if found else None))
    return OperatorPlans(plans, script)


# ---------------------------------------------------------------------------------------
# Real data: the corpus, some documents scaled on the way (the shared table is only read).

SCALED_CTE = """WITH scaled AS (
    SELECT id, content,
           CASE WHEN id = ANY($3)
                THEN embedding * array_fill($2::real, ARRAY[vector_dims(embedding)])::vector
                ELSE embedding END AS embedding
    FROM {table}
)
"""
CORPUS_RANK_SQL = {
    "cosine": SCALED_CTE
    + """SELECT id, content, embedding <=> $1 AS cosine_distance
FROM scaled ORDER BY embedding <=> $1, id LIMIT $4""",
    "l2": SCALED_CTE
    + """SELECT id, content, embedding <-> $1 AS l2_distance
FROM scaled ORDER BY embedding <-> $1, id LIMIT $4""",
    "ip": SCALED_CTE
    + """SELECT id, content, embedding <#> $1 AS negative_inner_product
FROM scaled ORDER BY embedding <#> $1, id LIMIT $4""",
}


@dataclass(frozen=True)
class Hit:
    id: str
    content: str
    value: float
    score: float


@dataclass(frozen=True)
class CorpusRankings:
    rankings: dict[str, list[Hit]]
    script: Script


def corpus_rankings(
    db: Database,
    table: str,
    query: np.ndarray,
    *,
    k: int = 10,
    scaled_ids: Sequence[str] = (),
    factor: float = 1.0,
) -> CorpusRankings:
    """Top k of the corpus under each operator; `scaled_ids` multiplied by `factor` first.

    The scaling happens in each statement's `scaled` CTE: the shared corpus table is only
    read, and nothing is written. Every ranking is an exact scan of the CTE.
    """
    if not (math.isfinite(factor) and factor > 0):
        raise ValueError("the scale factor must be a positive number")
    q = checked_vectors(query, np.asarray(query).reshape(-1).shape[0], 1)[0]
    names = (
        "the query's embedding",
        "the scale factor",
        "the ids of the documents to scale",
        "k",
    )
    statements = [
        Statement.of(
            sql.SQL(CORPUS_RANK_SQL[m.key]).format(table=ident(table)),
            q,
            float(factor),
            list(scaled_ids),
            int(k),
            names=names,
        )  # fmt: skip
        for m in METRICS
    ]
    script = run(db, statements)
    rankings = {
        m.key: [Hit(r[0], r[1], float(r[2]), m.score(float(r[2]))) for r in result.rows]
        for m, result in zip(METRICS, script.results, strict=True)
        if result is not None
    }
    return CorpusRankings(rankings, script)


def norm_range(db: Database, table: str) -> tuple[float, float]:
    """The shortest and longest vector in `table` (vector_norm), as Postgres measures them."""
    row = db.fetchone(
        sql.SQL("SELECT min(vector_norm(embedding)), max(vector_norm(embedding)) FROM {}").format(
            sql.Identifier(table)
        )
    )
    assert row is not None
    return float(row[0]), float(row[1])


def lists_agree(rankings: Mapping[str, Sequence[Hit]]) -> tuple[bool, tuple[int, ...]]:
    """Whether the three top-k id lists are identical, and the ranks (1-based) where not."""
    orders = [[h.id for h in rankings[m.key]] for m in METRICS]
    differing = tuple(i + 1 for i, ids in enumerate(zip(*orders, strict=True)) if len(set(ids)) > 1)
    return not differing, differing


# ---------------------------------------------------------------------------------------
# The 2D example: where the arrows start, and the bad inputs the page can load.

QUERY_NAME = "q"
DOC_NAMES = tuple("ABCDEFGH")
MAX_DOCS = len(DOC_NAMES)

# Chosen so that each metric puts a different document first: A points almost where the
# query points but is short, C sits nearest the query's tip, B is long and a little off.
LESSON_EXAMPLE: dict[str, tuple[float, float]] = {
    "A": (1.0, 0.6),
    "B": (4.0, -0.6),
    "C": (2.6, 1.9),
    "D": (-1.0, 2.0),
    QUERY_NAME: (3.0, 1.0),
}
# Where documents E-H appear when the learner asks for more than four.
EXTRA_DOCS: dict[str, tuple[float, float]] = {
    "E": (0.5, -1.0),
    "F": (-1.5, -1.0),
    "G": (4.5, 2.5),
    "H": (-0.5, 2.8),
}
# The picture's window: wider than tall, most of it where the example lives.
X_RANGE = (-2.0, 5.0)
Y_RANGE = (-1.5, 3.0)


def example(preset: str = "lesson", n: int = 4) -> dict[str, tuple[float, float]]:
    """The picture's starting points, documents A.. up to the n-th letter, for a preset:

    "lesson" as drawn in the lesson; "zero": D (or the last document, when fewer than four
    are shown) is the zero vector; "identical": that document equals the one before it.
    """
    if preset not in ("lesson", "zero", "identical"):
        raise ValueError(f"unknown example {preset!r}")
    points = with_doc_count(LESSON_EXAMPLE, n)
    names = [name for name in points if name != QUERY_NAME]
    target = names[min(len(names), 4) - 1]
    if preset == "zero":
        points[target] = (0.0, 0.0)
    elif preset == "identical":
        points[target] = points[names[names.index(target) - 1]]
    return points


def with_doc_count(points: Mapping[str, tuple[float, float]], n: int) -> dict:
    """`points` with exactly documents A.. up to the n-th letter (the query kept)."""
    n = max(1, min(MAX_DOCS, n))
    defaults = {**LESSON_EXAMPLE, **EXTRA_DOCS}
    out = {name: tuple(points.get(name, defaults[name])) for name in DOC_NAMES[:n]}
    out[QUERY_NAME] = tuple(points.get(QUERY_NAME, LESSON_EXAMPLE[QUERY_NAME]))
    return out


def split(points: Mapping[str, Sequence[float]]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(document names, document vectors, query vector) from a name -> (x, y) mapping."""
    names = [n for n in points if n != QUERY_NAME]
    docs = np.array([points[n] for n in names], dtype=np.float32).reshape(len(names), 2)
    return names, docs, np.array(points[QUERY_NAME], dtype=np.float32)


def zero_vectors(names: Sequence[str], docs: np.ndarray) -> list[str]:
    """Names of the documents whose vector is all zeros."""
    return [n for n, v in zip(names, docs, strict=True) if not np.any(v)]


def identical_groups(names: Sequence[str], docs: np.ndarray) -> list[list[str]]:
    """Groups (two or more) of documents with exactly the same vector, in name order."""
    groups: dict[bytes, list[str]] = {}
    for n, v in zip(names, np.asarray(docs, dtype=np.float32), strict=True):
        groups.setdefault(v.tobytes(), []).append(n)
    return [sorted(g) for g in groups.values() if len(g) > 1]
