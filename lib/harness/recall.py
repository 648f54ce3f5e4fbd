"""The recall harness: exact scan = ground truth, the index's answers diffed against it.

    python -m lib.recall --size 50000 --ef-search 100    # the command line: lib/recall.py

The exact path runs with index scans off (`SET LOCAL`), and its plan is checked to contain no
index scan at all: the ground truth is proved exact, not assumed. The index path runs with
sequential scans off, so even a tiny table is answered by its index, and its plan names the
index that answered.

Every query runs unprepared with `plan_cache_mode = force_custom_plan`: a plan cached on a
pooled connection under one session's settings can never answer another's query.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import numpy as np
import psycopg
from psycopg import sql

from lib.core.database import Database, Setting
from lib.core.operators import BY_OPERATOR
from lib.core.psql import Script, Statement, ident, run

K = 10
EXACT_TIMEOUT_MS = 60_000
INDEX_TIMEOUT_MS = 10_000

Progress = Callable[[int, int], None]


class HarnessError(Exception):
    """The measurement could not be trusted or run; the message says why."""

    shown_as_is = True  # a failed job shows the message alone (lib/core/jobs.py)


@dataclass(frozen=True)
class Target:
    """Which column to search, how rows are identified, and with which operator."""

    schema: str | None  # None: a table of the lab's, in the schema the lab creates its tables in
    table: str
    column: str = "embedding"
    key: str = "id"  # a unique column, or "ctid" when the table has none
    operator: str = "<=>"
    read_only: bool = True
    where: tuple[tuple[str, Any], ...] = ()  # (column, value): WHERE column = $3 AND …

    def filtered(self, column: str, value: Any) -> Target:
        """The same search with `WHERE column = value` (the value sent as a parameter)."""
        return replace(self, where=(*self.where, (column, value)))

    @property
    def qualified(self) -> str:
        return self.name().as_string()

    def name(self) -> sql.Composable:
        """The table's name as a learner types it. A table of the learner's own is always
        schema-qualified, so that no search_path sends the query to another table of that
        name; the lab's own tables are named as the lab created them (the first schema of the
        search_path)."""
        return ident(self.table) if self.schema is None else ident(self.schema, self.table)

    def query(self, *, with_distance: bool = False) -> sql.Composed:
        """The k-nearest query: $1 is the query vector, $2 is k (sent and shown as is)."""
        if self.operator not in BY_OPERATOR:
            raise HarnessError(f"unknown operator {self.operator}")
        key = sql.SQL("ctid::text") if self.key == "ctid" else ident(self.key)
        col, op = ident(self.column), sql.SQL(self.operator)
        distance = (
            sql.SQL(", {} {} $1 AS distance").format(col, op) if with_distance else sql.SQL("")
        )
        return sql.SQL(
            "SELECT {key}{distance}\nFROM {table}{where}\nORDER BY {col} {op} $1\nLIMIT $2"
        ).format(
            key=key, distance=distance, table=self.name(), where=self.where_clause(), col=col, op=op
        )

    def where_clause(self, first: int = 3) -> sql.Composable:
        """`\nWHERE column = $3 AND …` for the filters, numbered from `first` ($1 and $2 are
        the query vector and k); empty without filters."""
        if not self.where:
            return sql.SQL("")
        terms = sql.SQL(" AND ").join(
            sql.SQL("{} = ${}").format(ident(column), sql.SQL(str(first + i)))
            for i, (column, _) in enumerate(self.where)
        )
        return sql.SQL("\nWHERE {}").format(terms)

    def bind(self, query: np.ndarray, k: int) -> tuple[Any, ...]:
        """The values of $1, $2, … for one query vector (what `query()` is run with)."""
        return (query, k, *(value for _, value in self.where))

    def statement(self, query: np.ndarray, k: int = K, *, with_distance: bool = False) -> Statement:
        """The k-nearest query with one query vector bound."""
        q = np.asarray(query, dtype=np.float32)
        return Statement.of(
            self.query(with_distance=with_distance),
            *self.bind(q, int(k)),
            names=("the query vector", "k", *(column for column, _ in self.where)),
        )


def exact_settings(timeout_ms: int = EXACT_TIMEOUT_MS) -> dict[str, Setting]:
    """Settings that force the true answer: no index may take part in the scan."""
    return {
        "enable_indexscan": "off",
        "enable_indexonlyscan": "off",
        "enable_bitmapscan": "off",
        "plan_cache_mode": "force_custom_plan",
        "jit": "off",
        "statement_timeout": f"{timeout_ms}ms",
        "transaction_read_only": "on",
    }


def index_settings(
    knobs: Mapping[str, Setting] | None = None, timeout_ms: int = INDEX_TIMEOUT_MS
) -> dict[str, Setting]:
    """Settings for the approximate path: the index's knobs, and no sequential scan to hide
    behind (the planner would pick one for a small table)."""
    return {
        **(knobs or {}),
        "enable_seqscan": "off",
        "plan_cache_mode": "force_custom_plan",
        "jit": "off",
        "statement_timeout": f"{timeout_ms}ms",
        "transaction_read_only": "on",
    }


@dataclass
class Answers:
    """One path's answers to the query set: ids per query, latencies, and the plan."""

    ids: list[list[Any]]
    latencies_ms: list[float]
    plan: dict
    settings: dict[str, Setting]
    ran_at: str
    seconds: float

    @property
    def plan_nodes(self) -> list[str]:
        return plan_nodes(self.plan)

    @property
    def index_used(self) -> str | None:
        return index_used(self.plan)


def plan_nodes(plan: Mapping) -> list[str]:
    """Node types of an EXPLAIN (FORMAT JSON) plan, depth first ("Limit", "Seq Scan", …)."""
    out = [plan.get("Node Type", "?")]
    for child in plan.get("Plans", ()):
        out += plan_nodes(child)
    return out


def index_used(plan: Mapping) -> str | None:
    if "Index Name" in plan:
        return plan["Index Name"]
    for child in plan.get("Plans", ()):
        found = index_used(child)
        if found:
            return found
    return None


def is_exact_plan(plan: Mapping) -> bool:
    """True when no node of the plan reads an index (so every row was compared)."""
    return _exact(plan_nodes(plan))


_PLAN_PROPERTY = re.compile(r"\s*[A-Z][\w ]*: ")  # "Sort Key: …", "Disabled: true"


def text_plan_nodes(lines: Sequence[str]) -> list[str]:
    """Node types of a plan in EXPLAIN's text format ("Limit", "Sort", "Seq Scan", …)."""
    nodes = []
    for line in lines:
        if line.strip() and not _PLAN_PROPERTY.match(line):
            node = line.strip().removeprefix("->").strip()
            nodes.append(re.split(r"\s+(?:on|using)\s|\s{2}", node)[0])
    return nodes


def is_exact_text_plan(lines: Sequence[str]) -> bool:
    """`is_exact_plan` for a plan in EXPLAIN's text format."""
    return _exact(text_plan_nodes(lines))


def _exact(nodes: Sequence[str]) -> bool:
    return not any("Index" in node for node in nodes) and "Seq Scan" in nodes


def explain(
    db: Database,
    target: Target,
    query: np.ndarray,
    k: int,
    settings: Mapping[str, Setting],
    *,
    analyze: bool = False,
) -> Any:
    """EXPLAIN of the query under `settings` (JSON plan, or text lines with `analyze`)."""
    opts = "ANALYZE, BUFFERS, FORMAT TEXT" if analyze else "FORMAT JSON"
    stmt = sql.SQL("EXPLAIN ({}) ").format(sql.SQL(opts)) + target.query()
    with db.transaction(settings) as conn:
        cur = psycopg.RawCursor(conn)
        rows = cur.execute(stmt, target.bind(query, k), prepare=False).fetchall()
    if analyze:
        return [r[0] for r in rows]
    return rows[0][0][0]["Plan"]


def run_queries(
    db: Database,
    target: Target,
    queries: np.ndarray,
    k: int,
    settings: Mapping[str, Setting],
    *,
    progress: Progress | None = None,
) -> Answers:
    """Run every query under `settings` in one transaction; ids in order, and latencies."""
    stmt = target.query().as_string()
    plan = explain(db, target, queries[0], k, settings)
    ids: list[list[Any]] = []
    lat: list[float] = []
    t0 = time.perf_counter()
    started = datetime.now(UTC).isoformat(timespec="seconds")
    try:
        with db.transaction(settings) as conn:
            cur = psycopg.RawCursor(conn)
            for i, q in enumerate(queries):
                t = time.perf_counter()
                rows = cur.execute(stmt, target.bind(q, k), prepare=False).fetchall()
                lat.append((time.perf_counter() - t) * 1000)
                ids.append([r[0] for r in rows])
                if progress:
                    progress(i + 1, len(queries))
    except psycopg.errors.QueryCanceled as e:
        raise HarnessError(
            f"a query ran past statement_timeout ({settings.get('statement_timeout')}) and was "
            "cancelled; try a smaller table or fewer queries"
        ) from e
    return Answers(ids, lat, plan, dict(settings), started, time.perf_counter() - t0)


def ground_truth(
    db: Database,
    target: Target,
    queries: np.ndarray,
    k: int = K,
    *,
    timeout_ms: int = EXACT_TIMEOUT_MS,
    progress: Progress | None = None,
) -> Answers:
    """The true k nearest for every query, from an exact scan whose plan proves it."""
    settings = exact_settings(timeout_ms)
    answers = run_queries(db, target, queries, k, settings, progress=progress)
    if not is_exact_plan(answers.plan):
        raise HarnessError(
            "the exact query's plan uses an index (" + " → ".join(answers.plan_nodes) + "); "
            "its answers cannot serve as ground truth"
        )
    return answers


def recall_at_k(truth: Sequence[Sequence[Any]], got: Sequence[Sequence[Any]], k: int) -> np.ndarray:
    """Per query: the share of the true k nearest that the index returned."""
    return np.array(
        [
            len(set(t[:k]) & set(g[:k])) / max(1, min(k, len(t)))
            for t, g in zip(truth, got, strict=True)
        ]
    )


def summary(values: Sequence[float]) -> dict[str, float]:
    """Mean, min, p5, p50, p95 and max of `values` (empty for none)."""
    a = np.asarray(values, dtype=np.float64)
    if not len(a):
        return {}
    return {
        "mean": float(a.mean()),
        "min": float(a.min()),
        "p5": float(np.percentile(a, 5)),
        "p50": float(np.percentile(a, 50)),
        "p95": float(np.percentile(a, 95)),
        "max": float(a.max()),
    }


@dataclass
class RecallReport:
    """Everything one measurement found, ready for JSON."""

    table: str
    rows: int | None
    k: int
    queries: int
    index: str | None
    index_settings: dict[str, Setting]
    exact_settings: dict[str, Setting]
    recall: dict[str, float]
    per_query_recall: list[float]
    queries_missing: int  # queries with at least one true neighbour missing
    rows_returned: list[int]  # per query
    exact_latency_ms: dict[str, float]
    index_latency_ms: dict[str, float]
    exact_plan: list[str]
    exact_proved: bool
    index_plan: list[str]
    exact_ran_at: str
    index_ran_at: str
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)
    truth_ids: list[list[Any]] | None = None
    index_ids: list[list[Any]] | None = None

    def to_dict(self, *, ids: bool = False) -> dict[str, Any]:
        d = asdict(self)
        if not ids:
            d.pop("truth_ids")
            d.pop("index_ids")
        return d

    def lesson(self) -> str:
        """The lesson's sentence, with the measured numbers."""
        full = sum(1 for r in self.rows_returned if r == self.k)
        rows = (
            f"every query returned {self.k} rows"
            if full == self.queries
            else f"{full} of {self.queries} queries returned {self.k} rows"
        )
        if self.queries_missing == 0:
            return f"{rows.capitalize()}, and in all {self.queries} they were the true nearest."
        return (
            f"{rows.capitalize()}; in {self.queries_missing} of {self.queries}, some were not "
            "the true nearest."
        )


def measure(
    db: Database,
    target: Target,
    queries: np.ndarray,
    *,
    k: int = K,
    knobs: Mapping[str, Setting] | None = None,
    truth: Answers | None = None,
    rows: int | None = None,
    exact_timeout_ms: int = EXACT_TIMEOUT_MS,
    index_timeout_ms: int = INDEX_TIMEOUT_MS,
    progress: Progress | None = None,
) -> RecallReport:
    """Recall@k of the index on `target` for `queries` under `knobs` (e.g. hnsw.ef_search).

    `truth` reuses a ground truth computed earlier for the same table and queries (its time
    and settings stay in the report); otherwise the exact scan runs now."""
    queries = np.asarray(queries, dtype=np.float32)
    if queries.ndim != 2 or not len(queries) or not np.isfinite(queries).all():
        raise HarnessError("queries must be a non-empty 2-D array of finite numbers")
    t0 = time.perf_counter()
    if truth is None:
        truth = ground_truth(db, target, queries, k, timeout_ms=exact_timeout_ms, progress=progress)
    if len(truth.ids) != len(queries):
        raise HarnessError("the ground truth was computed for another query set")
    got = run_queries(db, target, queries, k, index_settings(knobs, index_timeout_ms))
    per_query = recall_at_k(truth.ids, got.ids, k)
    return RecallReport(
        table=target.qualified,
        rows=rows,
        k=k,
        queries=len(queries),
        index=got.index_used,
        index_settings=got.settings,
        exact_settings=truth.settings,
        recall=summary(per_query),
        per_query_recall=[float(x) for x in per_query],
        queries_missing=int((per_query < 1.0).sum()),
        rows_returned=[len(g) for g in got.ids],
        exact_latency_ms=summary(truth.latencies_ms),
        index_latency_ms=summary(got.latencies_ms),
        exact_plan=truth.plan_nodes,
        exact_proved=is_exact_plan(truth.plan),
        index_plan=got.plan_nodes,
        exact_ran_at=truth.ran_at,
        index_ran_at=got.ran_at,
        seconds=time.perf_counter() - t0,
        truth_ids=truth.ids,
        index_ids=got.ids,
    )


def answer_script(
    db: Database,
    target: Target,
    query: np.ndarray,
    settings: Mapping[str, Setting],
    k: int = K,
) -> Script:
    """One query's (id, distance) rows under `settings`, run now, with the SQL that ran."""
    return run(db, [target.statement(query, k, with_distance=True)], settings)


def side_by_side(
    db: Database,
    target: Target,
    query: np.ndarray,
    *,
    k: int = K,
    knobs: Mapping[str, Setting] | None = None,
) -> tuple[Script, Script]:
    """One query answered by the exact scan and by the index, each with the SQL that ran."""
    return (
        answer_script(db, target, query, exact_settings(), k),
        answer_script(db, target, query, index_settings(knobs), k),
    )


def knobs_for(kind: str, *, ef_search: int = 40, probes: int = 1) -> dict[str, Setting]:
    """The query-time knob of an index kind, as SET LOCAL settings."""
    if kind == "ivfflat":
        return {"ivfflat.probes": probes}
    return {"hnsw.ef_search": ef_search}


def generated_target(table: str) -> Target:
    return Target(None, table)
