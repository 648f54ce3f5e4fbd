"""Filtered vector search, measured: a WHERE clause on an HNSW query, pgvector 0.8's iterative
scans, and the fixes, on the filtered tables (lib/lessons/filtered/tables.py).

A `Cell` is one query set: a filter (`category = 3`), a way of asking (`path`) and the knobs
(`LIMIT k`, `hnsw.ef_search`, `hnsw.iterative_scan`, `hnsw.max_scan_tuples`). Measuring it
runs the lab's held-out queries in one transaction under `SET LOCAL` settings and compares
each answer with the exact filtered ground truth (proved exact by its plan, stored with
lib/harness/truths.py): rows returned, recall@k, latency, rows out of distance order, and
tuples visited and buffers from `EXPLAIN (ANALYZE, BUFFERS)`. The paths (`PATHS`):

- `hnsw`: the HNSW index answers; `enable_sort = off` rules out every plan that must sort by
  distance, so the planner cannot swap in an exact plan behind the learner's back;
- `cte_plain`, `cte`: relaxed_order inside a materialized CTE, re-sorted outside it by
  `ORDER BY distance` and by `ORDER BY distance + 0`;
- `planner`: nothing forced; the planner may pick the B-tree and an exact sort;
- `threshold`, `threshold_cte`: the trap, a distance threshold no row meets, inside the WHERE
  clause (an iterative scan reads on until `hnsw.max_scan_tuples`) or outside a CTE.

Runs are stored in `filtered_runs`, keyed by the table as built and the cell. Every statement
runs under `statement_timeout`, so no setting can keep a shared server busy.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import numpy as np
import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from lib.core.database import Database, Setting
from lib.core.psql import Script, Statement, ident, run
from lib.dataset.passages import Dataset
from lib.harness import truths
from lib.harness.recall import (
    Answers,
    HarnessError,
    Target,
    exact_settings,
    ground_truth,
    is_exact_plan,
    plan_nodes,
    recall_at_k,
)
from lib.lessons.filtered.tables import (
    CATEGORIES,
    PARTIAL,
    SELECTIVITIES,
    FilteredTable,
    index_names,
)

MODES = ("off", "strict_order", "relaxed_order")
PATHS = ("hnsw", "cte_plain", "cte", "planner", "threshold", "threshold_cte")
TRUTH_K = 100  # the stored truth's depth; recall@k for any k up to it uses its first k
K_CHOICES = (1, 5, 10, 20, 50, 100)
EF_CHOICES = (10, 20, 40, 64, 100, 200, 400, 1000)
MAX_SCAN_CHOICES = (1_000, 2_000, 5_000, 10_000, 20_000, 50_000)
DEFAULT_K, DEFAULT_EF, DEFAULT_MAX_SCAN = 10, 40, 20_000
EXPLAIN_SAMPLE = 10  # queries whose EXPLAIN (ANALYZE, BUFFERS) gives tuples visited
TRAP_QUERIES = 10
TRAP_THRESHOLD = 0.01  # cosine distance: closer than any row is to any held-out query
TIMEOUT_MS = 10_000  # per statement
TRAP_TIMEOUT_MS = 3_000

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Filter:
    """`WHERE column = value`, the value sent as a parameter."""

    column: str
    value: int | str

    def label(self) -> str:
        value = self.value if isinstance(self.value, int) else f"'{self.value}'"
        return f"{self.column} = {value}"

    def truth_key(self, ds: Dataset) -> str:
        """How the stored truth of this filter is keyed (`recall_truths.queries`)."""
        return f"{ds.queries_fingerprint}|{self.column}={self.value}"


def category_filter(value: int) -> Filter:
    return Filter("category", value)


def category_filters() -> list[Filter]:
    return [category_filter(c.value) for c in CATEGORIES]


@dataclass(frozen=True)
class Cell:
    """One query set: the filter, the way it is asked, and the knobs."""

    filter: Filter
    path: str = "hnsw"
    mode: str = "off"
    k: int = DEFAULT_K
    ef_search: int = DEFAULT_EF
    max_scan_tuples: int | None = DEFAULT_MAX_SCAN  # None when the mode is off (no effect)
    threshold: float | None = None  # the trap paths' distance threshold
    queries: int = 100

    def __post_init__(self) -> None:
        if self.path not in PATHS:
            raise ValueError(f"unknown path {self.path!r}")
        if self.mode not in MODES:
            raise ValueError(f"hnsw.iterative_scan must be one of {', '.join(MODES)}")
        if not 1 <= self.k <= TRUTH_K:
            raise ValueError(f"LIMIT must be between 1 and {TRUTH_K}")
        if not 1 <= self.ef_search <= 1000:
            raise ValueError("hnsw.ef_search must be between 1 and 1000")
        if self.max_scan_tuples is not None and self.max_scan_tuples < 1:
            raise ValueError("hnsw.max_scan_tuples must be at least 1")
        if self.path.startswith("threshold") != (self.threshold is not None):
            raise ValueError("a distance threshold goes with the threshold paths only")

    @classmethod
    def of(cls, filter: Filter, path: str = "hnsw", mode: str = "off", **knobs: Any) -> Cell:
        """A cell with `max_scan_tuples` dropped when the mode is off (it changes nothing),
        so that two cells that run the same statements are one."""
        if mode == "off":
            knobs["max_scan_tuples"] = None
        return cls(filter, path, mode, **knobs)

    def key(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_key(cls, key: Mapping[str, Any]) -> Cell:
        return cls(**{**key, "filter": Filter(**key["filter"])})

    def knobs(self) -> dict[str, Setting]:
        """pgvector's settings for this cell, as SET LOCAL."""
        out: dict[str, Setting] = {
            "hnsw.ef_search": self.ef_search,
            "hnsw.iterative_scan": self.mode,
        }
        if self.max_scan_tuples is not None:
            out["hnsw.max_scan_tuples"] = self.max_scan_tuples
        return out

    def settings(self) -> dict[str, Setting]:
        """Everything SET LOCAL before the statements run."""
        forced: dict[str, Setting] = (
            {} if self.path == "planner" else {"enable_seqscan": "off", "enable_sort": "off"}
        )
        timeout = TRAP_TIMEOUT_MS if self.path.startswith("threshold") else TIMEOUT_MS
        return {
            **self.knobs(),
            **forced,
            "jit": "off",
            "statement_timeout": f"{timeout}ms",
            "transaction_read_only": "on",
        }

    def settings_comment(self) -> str:
        if self.path == "planner":
            return "Nothing forces a plan: the planner chooses between the indexes."
        return (
            "enable_sort = off rules out the plans that sort rows by distance (the B-tree's,\n"
            "the sequential scan's): the HNSW index answers, as a learner expects it to."
        )


def default_cells() -> list[Cell]:
    """What the page opens on, measured by the job that builds a table: every selectivity
    under every mode, then the fixes at each selectivity, then the trap."""
    cells = [
        Cell.of(category_filter(c.value), "hnsw", mode) for c in SELECTIVITIES for mode in MODES
    ]
    for c in SELECTIVITIES:
        cells += fixes(c.value, DEFAULT_K, DEFAULT_EF, DEFAULT_MAX_SCAN, mode="off")[3:]
    cells += trap_cells(DEFAULT_K, DEFAULT_EF, DEFAULT_MAX_SCAN)
    return list(dict.fromkeys(cells))


def fixes(category: int, k: int, ef_search: int, max_scan_tuples: int, mode: str) -> list[Cell]:
    """The fixes at one selectivity, side by side: the three modes on the HNSW index, the
    relaxed scan re-sorted in a CTE (both ways), the partial index's category, the planner."""
    f = category_filter(category)
    knobs = {"k": k, "ef_search": ef_search, "max_scan_tuples": max_scan_tuples}
    return [
        *(Cell.of(f, "hnsw", m, **knobs) for m in MODES),
        Cell.of(f, "cte_plain", "relaxed_order", **knobs),
        Cell.of(f, "cte", "relaxed_order", **knobs),
        Cell.of(category_filter(PARTIAL.value), "hnsw", "off", **knobs),
        Cell.of(f, "planner", mode, **knobs),
    ]


def trap_cells(k: int, ef_search: int, max_scan_tuples: int) -> tuple[Cell, Cell]:
    """The trap on the 10% category: a threshold no row meets, inside the WHERE clause and
    outside a materialized CTE, under relaxed_order."""
    f = category_filter(SELECTIVITIES[1].value)
    knobs = {"k": k, "ef_search": ef_search, "max_scan_tuples": max_scan_tuples}
    common = {"threshold": TRAP_THRESHOLD, "queries": TRAP_QUERIES, **knobs}
    return (
        Cell.of(f, "threshold", "relaxed_order", **common),
        Cell.of(f, "threshold_cte", "relaxed_order", **common),
    )


# ---- the statements ---------------------------------------------------------------------


def query_sql(table: str, cell: Cell) -> str:
    """The statement of `cell` on `table`: $1 the query vector, $2 k, $3 the filter's value,
    $4 the distance threshold (trap paths)."""
    target = Target(None, table).filtered(cell.filter.column, cell.filter.value)
    if cell.path in ("hnsw", "planner"):
        return target.query(with_distance=True).as_string()
    t, column = ident(table), ident(cell.filter.column)
    inner = sql.SQL(
        "SELECT id, embedding <=> $1 AS distance\n    FROM {t}\n    WHERE {column} = $3"
        "{threshold}\n    ORDER BY embedding <=> $1\n    LIMIT $2"
    )
    if cell.path == "threshold":
        return (
            inner.format(t=t, column=column, threshold=sql.SQL(" AND embedding <=> $1 < $4"))
            .as_string()
            .replace("\n    ", "\n")
        )
    name = "nearest" if cell.path == "threshold_cte" else "relaxed"
    outer = {
        "cte_plain": "SELECT id, distance FROM {name} ORDER BY distance",
        "cte": "SELECT id, distance FROM {name} ORDER BY distance + 0",
        "threshold_cte": "SELECT id, distance FROM {name} WHERE distance < $4 ORDER BY distance",
    }[cell.path]
    return (
        sql.SQL("WITH {name} AS MATERIALIZED (\n    {inner}\n)\n" + outer)
        .format(
            name=sql.SQL(name),
            inner=inner.format(t=t, column=column, threshold=sql.SQL("")),
        )
        .as_string()
    )


def statement(table: str, cell: Cell, query: np.ndarray) -> Statement:
    """The statement of `cell` with one query vector bound (as shown, as run)."""
    params: list[Any] = [np.asarray(query, dtype=np.float32), cell.k, cell.filter.value]
    names = ["the query vector", "k", cell.filter.column]
    if cell.threshold is not None:
        params.append(cell.threshold)
        names.append("the distance threshold")
    return Statement.of(query_sql(table, cell), *params, names=names)


def script(db: Database, table: str, cell: Cell, query: np.ndarray, *, explain: bool = False):
    """One query of `cell` run now (or its EXPLAIN (ANALYZE, BUFFERS)), as a Script: what a
    learner pastes into psql to get the same rows."""
    s = statement(table, cell, query)
    if explain:
        s = replace(s, text="EXPLAIN (ANALYZE, BUFFERS, COSTS OFF)\n" + s.text)
    return run(db, [s], cell.settings(), settings_comment=cell.settings_comment(), keep_error=True)


def exact_count_script(db: Database, table: str, cell: Cell, query: np.ndarray) -> Script:
    """How many rows of the filter are closer than the trap's threshold, by an exact scan
    (no index may answer): the proof that no row meets it."""
    s = Statement.of(
        sql.SQL(
            "SELECT count(*) AS closer\nFROM {t}\nWHERE {column} = $2 AND embedding <=> $1 < $3"
        )
        .format(t=ident(table), column=ident(cell.filter.column))
        .as_string(),
        np.asarray(query, dtype=np.float32),
        cell.filter.value,
        cell.threshold,
        names=("the query vector", cell.filter.column, "the distance threshold"),
    )
    return run(db, [s], exact_settings())


# ---- the exact filtered truth -----------------------------------------------------------


def truth(db: Database, ds: Dataset, table: FilteredTable, f: Filter) -> Answers:
    """The exact top TRUTH_K of every held-out query among the rows `f` matches: stored, or
    computed now by exact scans whose plan reads no index (lib/harness/recall.py), and stored."""
    key = f.truth_key(ds)
    stored = truths.load(db, table.name, table.built_at, key, TRUTH_K)
    if stored is not None:
        return stored
    with db.transaction() as conn:
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"{table.name}|{key}",))
        stored = truths.load(db, table.name, table.built_at, key, TRUTH_K)
        if stored is not None:
            return stored
        target = Target(None, table.name).filtered(f.column, f.value)
        answers = ground_truth(db, target, ds.queries, TRUTH_K)
        truths.store(db, table.name, table.built_at, key, TRUTH_K, answers)
    return answers


# ---- one query set ----------------------------------------------------------------------


@dataclass
class Run:
    """What one query set found, ready for JSON (and stored as such)."""

    cell: dict[str, Any]
    table: str
    rows: int  # in the table
    matching: int  # rows the filter matches
    settings: dict[str, Setting]
    sql: str
    ids: list[list[Any]]  # per query: the ids returned, in the order returned
    rows_returned: list[int]  # per query (-1: cancelled by statement_timeout)
    expected: list[int]  # per query: min(k, rows the filter matches), from the truth
    recall: list[float]  # per query, against the exact filtered truth
    latencies_ms: list[float]
    out_of_order: list[bool]  # per query: some row came back after a farther one
    visited: list[int]  # per explained query: rows the scan read (returned + filtered out)
    buffers: list[int]  # per explained query: shared blocks hit or read
    plan: list[str]  # node types of the first explained query's plan
    indexes: list[str]  # the indexes its plan read
    truth_plan: list[str]
    truth_proved: bool
    truth_ran_at: str
    ran_at: str
    seconds: float
    exact_closer: list[int] = field(default_factory=list)  # trap: rows closer, exactly

    @property
    def key(self) -> Cell:
        return Cell.from_key(self.cell)

    @property
    def cancelled(self) -> int:
        return sum(1 for r in self.rows_returned if r < 0)

    @property
    def queries(self) -> int:
        return len(self.rows_returned)

    @property
    def short(self) -> int:
        """Queries that returned fewer rows than the truth holds (LIMIT k, or all matches)."""
        return sum(1 for r, e in zip(self.rows_returned, self.expected, strict=True) if r < e)

    @property
    def missing_rows(self) -> int:
        return sum(
            max(0, e - max(r, 0)) for r, e in zip(self.rows_returned, self.expected, strict=True)
        )

    @property
    def empty(self) -> int:
        return sum(1 for r in self.rows_returned if r == 0)

    @property
    def mean_rows(self) -> float:
        return float(np.mean([max(r, 0) for r in self.rows_returned]))

    @property
    def mean_recall(self) -> float:
        return float(np.mean(self.recall))

    @property
    def disordered(self) -> int:
        return sum(self.out_of_order)

    def latency(self, q: float = 50) -> float:
        return float(np.percentile(self.latencies_ms, q))

    @property
    def median_visited(self) -> float | None:
        return float(np.median(self.visited)) if self.visited else None

    @property
    def max_visited(self) -> int | None:
        return max(self.visited) if self.visited else None

    @property
    def median_buffers(self) -> float | None:
        return float(np.median(self.buffers)) if self.buffers else None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Run | None:
        """The run stored as `data`, or None when it was stored in another shape (an older
        version of the lab): it is then measured again."""
        try:
            return cls(**data)
        except TypeError:
            return None


def scan_node(plan: Mapping) -> Mapping:
    """The node that reads the table: the deepest scan under Limit, Sort and CTEs."""
    nodes = [plan]
    found = plan
    while nodes:
        node = nodes.pop()
        if "Scan" in node.get("Node Type", "") and node.get("Node Type") != "CTE Scan":
            found = node
            if node.get("Node Type") != "Bitmap Index Scan":
                return node
        nodes.extend(node.get("Plans", ()))
    return found


def plan_indexes(plan: Mapping) -> list[str]:
    """Every index the plan reads, in plan order."""
    out = [plan["Index Name"]] if "Index Name" in plan else []
    for child in plan.get("Plans", ()):
        out += [i for i in plan_indexes(child) if i not in out]
    return out


def visited(plan: Mapping) -> int:
    """Rows the scan node read: those it returned and those its filter threw away."""
    node = scan_node(plan)
    loops = max(1, int(node.get("Actual Loops", 1)))
    rows = float(node.get("Actual Rows", 0)) + float(node.get("Rows Removed by Filter", 0))
    return int(round(rows * loops))


def buffers(plan: Mapping) -> int:
    return int(plan.get("Shared Hit Blocks", 0)) + int(plan.get("Shared Read Blocks", 0))


def measure(
    db: Database,
    ds: Dataset,
    table: FilteredTable,
    cell: Cell,
    *,
    progress: Progress | None = None,
) -> Run:
    """Run `cell`'s query set now and compare it with the exact filtered truth."""
    exact = truth(db, ds, table, cell.filter)
    queries = ds.queries[: cell.queries]
    text = query_sql(table.name, cell)
    settings = cell.settings()
    params = [statement(table.name, cell, q).params for q in queries]
    answers: list[list[tuple] | None] = []  # None: cancelled by statement_timeout
    lat: list[float] = []
    plans: list[Mapping] = []
    explained = min(EXPLAIN_SAMPLE, len(params))
    started = datetime.now(UTC).isoformat(timespec="seconds")
    t0 = time.perf_counter()
    with db.transaction(settings) as conn:
        cur = psycopg.RawCursor(conn)
        for i, p in enumerate(params):
            t = time.perf_counter()
            answers.append(
                _savepoint(conn, lambda p=p: cur.execute(text, p, prepare=False).fetchall())
            )
            lat.append((time.perf_counter() - t) * 1000)
            if progress:
                progress(i + 1, len(params) + explained)
        explain = "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + text
        for i, p in enumerate(params[:explained]):
            got = _savepoint(conn, lambda p=p: cur.execute(explain, p, prepare=False).fetchone())
            if got is not None:
                plans.append(got[0][0]["Plan"])
            if progress:
                progress(len(params) + i + 1, len(params) + explained)
    seconds = time.perf_counter() - t0
    names = index_names(table.name)
    if cell.path != "planner" and plans:
        if not {names["hnsw"], names["partial"]} & set(plan_indexes(plans[0])):
            raise HarnessError(
                "the HNSW index did not answer (" + " → ".join(plan_nodes(plans[0])) + ")"
            )
    ids = [[r[0] for r in a] if a is not None else [] for a in answers]
    distances = [[float(r[1]) for r in a] if a is not None else [] for a in answers]
    k = cell.k
    truth_ids = exact.ids[: len(queries)]
    if cell.threshold is None:
        expected = [min(k, len(t)) for t in truth_ids]
        per_query = recall_at_k([t[:k] for t in truth_ids], ids, k).tolist()
    else:  # no row meets the threshold: nothing to recall, every row returned is wrong
        expected, per_query = [0] * len(ids), [1.0 if not g else 0.0 for g in ids]
    closer = []
    if cell.threshold is not None:
        closer = [int(exact_count_script(db, table.name, cell, q).rows[0][0]) for q in queries]
    return Run(
        cell=cell.key(),
        table=table.name,
        rows=table.n,
        matching=table.rows(cell.filter.column, cell.filter.value),
        settings=settings,
        sql=text,
        ids=ids,
        rows_returned=[len(a) if a is not None else -1 for a in answers],
        expected=expected,
        recall=[float(x) for x in per_query],
        latencies_ms=lat,
        out_of_order=[bool(np.any(np.diff(d) < -1e-9)) for d in distances],
        visited=[visited(p) for p in plans],
        buffers=[buffers(p) for p in plans],
        plan=plan_nodes(plans[0]) if plans else [],
        indexes=plan_indexes(plans[0]) if plans else [],
        truth_plan=exact.plan_nodes,
        truth_proved=is_exact_plan(exact.plan),
        truth_ran_at=exact.ran_at,
        ran_at=started,
        seconds=seconds,
        exact_closer=closer,
    )


def _savepoint(conn: psycopg.Connection, statement: Callable[[], Any]) -> Any:
    """Run `statement` in a savepoint; None when statement_timeout cancelled it (the
    transaction goes on)."""
    try:
        with conn.transaction():
            return statement()
    except psycopg.errors.QueryCanceled:
        return None


# ---- stored runs ------------------------------------------------------------------------

DDL = """CREATE TABLE IF NOT EXISTS filtered_runs (
    table_name text NOT NULL,
    built_at timestamptz NOT NULL,
    cell jsonb NOT NULL,
    run jsonb NOT NULL,
    ran_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (table_name, built_at, cell)
)"""


def ensure_table(db: Database) -> None:
    db.ensure("filtered_runs", DDL)


def forget(db: Database, table: str) -> None:
    """Drop every stored run of `table` (after it is rebuilt)."""
    ensure_table(db)
    db.fetchall("DELETE FROM filtered_runs WHERE table_name = %s RETURNING 1", (table,))


def stored_versions(db: Database, table: FilteredTable, cells: Sequence[Cell]) -> dict[Cell, str]:
    """When each of `cells` measured so far on `table` as built was stored: a run stored
    again (measured again) has a new time, so (cell, time) names one stored run."""
    ensure_table(db)
    rows = db.fetchall(
        "SELECT cell, ran_at::text FROM filtered_runs WHERE table_name = %s AND built_at = %s"
        " AND cell = ANY(%s::jsonb[])",
        (table.name, table.built_at, [json.dumps(c.key()) for c in cells]),
    )
    return {Cell.from_key(cell): ran_at for cell, ran_at in rows}


def stored(db: Database, table: FilteredTable, cells: Sequence[Cell]) -> dict[Cell, Run]:
    """The stored runs of `cells` on `table` as built (those measured so far)."""
    ensure_table(db)
    rows = db.fetchall(
        "SELECT run FROM filtered_runs WHERE table_name = %s AND built_at = %s"
        " AND cell = ANY(%s::jsonb[])",
        (table.name, table.built_at, [json.dumps(c.key()) for c in cells]),
    )
    runs = [Run.from_json(r[0]) for r in rows]
    return {r.key: r for r in runs if r is not None}


def stored_or_measured(
    db: Database,
    ds: Dataset,
    table: FilteredTable,
    cell: Cell,
    *,
    again: bool = False,
    progress: Progress | None = None,
) -> Run:
    """`cell`'s stored run on `table`, or a new one measured now and stored (`again`: measure
    and replace it). Two processes asking at once measure it once."""
    ensure_table(db)
    key = Jsonb(cell.key())
    with db.transaction() as conn:
        conn.execute(
            "SELECT pg_advisory_xact_lock(hashtext(%s))",
            (f"{table.name}|{json.dumps(cell.key(), sort_keys=True)}",),
        )
        if not again:
            row = conn.execute(
                "SELECT run FROM filtered_runs WHERE table_name = %s AND built_at = %s"
                " AND cell = %s",
                (table.name, table.built_at, key),
            ).fetchone()
            found = Run.from_json(row[0]) if row is not None else None
            if found is not None:
                return found
        result = measure(db, ds, table, cell, progress=progress)
        conn.execute(
            "INSERT INTO filtered_runs (table_name, built_at, cell, run) VALUES (%s, %s, %s, %s)"
            " ON CONFLICT (table_name, built_at, cell) DO UPDATE SET run = EXCLUDED.run,"
            " ran_at = now()",
            (table.name, table.built_at, key, Jsonb(result.to_json())),
        )
    return result
