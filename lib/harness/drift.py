"""Drift you can watch: months of a table and its queries simulated from the real corpus, and
the signals a team would monitor, each one SQL statement that runs as well on your own table
and query log (read-only).

The simulation. The corpus has five manuals. A table starts with four of them; each month,
labelled queries are asked (their vectors logged with the month); from `shift_from` on, a
growing share asks about the fifth manual, whose passages only arrive in `arrives`. That is
what happens to a search when users' interests move before the content does.

The signals, per month:
- `top1`: each query's best cosine similarity in the table as it was when it was asked; its
  median, and the share of queries under a threshold (the baseline months' 10th percentile);
- `query_distance`: the mean cosine distance of the month's queries to the centroid of the
  baseline table (the average of its vectors: pgvector's `avg(vector)`);
- `row_distance`: the same for the rows added that month;
- `ndcg`: nDCG@10 of the month's labelled queries (the exact top 10, scored in Python).
A signal fires in the first month after the baseline months where it moves past the
baseline's mean by more than three standard deviations, or a floor, in the bad direction.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
from psycopg import sql

from lib.core.database import Database
from lib.core.psql import Script, Statement, ident, run
from lib.harness import scores
from lib.harness.labels import Labels

MONTHS = 12
BASELINE = 3  # months 0..BASELINE-1 set what normal looks like
SHIFT_FROM = 5  # the month the late manual's questions begin
ARRIVES = 8  # the month its passages are added
QUERIES_PER_MONTH = 60
START = datetime(2026, 1, 1, tzinfo=UTC)
READ_ONLY = {"transaction_read_only": "on", "statement_timeout": "120s", "jit": "off"}
ROWS_TABLE, LOG_TABLE = "drift_rows", "drift_queries"

# name: (label, the bad direction (+1 up, −1 down), the smallest move that counts)
SIGNALS = {
    "median_top1": ("median top-1 similarity", -1, 0.02),
    "share_below": ("share of queries under the threshold", +1, 0.05),
    "query_distance": ("queries' distance to the baseline centroid", +1, 0.01),
    "row_distance": ("new rows' distance to the baseline centroid", +1, 0.01),
    "ndcg": ("nDCG@10 of the labelled queries", -1, 0.05),
}


def month_start(m: int) -> datetime:
    year, month = divmod(START.month - 1 + m, 12)
    return START.replace(year=START.year + year, month=month + 1)


# ---- the signals as SQL, on any table with a query log -----------------------------------


@dataclass(frozen=True)
class Source:
    """A table of vectors and a log of query vectors. `added_at`, when the table has one,
    lets each query be compared with the table as it was when it was asked."""

    table: tuple[str, ...]  # (schema, name) or (name,)
    key: str
    column: str
    log: tuple[str, ...]
    log_column: str
    asked_at: str
    added_at: str | None = None
    period: str = "month"  # date_trunc's unit

    def __post_init__(self) -> None:
        if self.period not in ("day", "week", "month"):
            raise ValueError("period is day, week or month")


def lab_source() -> Source:
    return Source((ROWS_TABLE,), "id", "embedding", (LOG_TABLE,), "embedding", "asked_at",
                  "added_at")  # fmt: skip


def _names(s: Source) -> dict[str, sql.Composable]:
    return {
        "t": ident(*s.table), "key": ident(s.key), "col": ident(s.column), "log": ident(*s.log),
        "qcol": ident(s.log_column), "asked": ident(s.asked_at),
        "period": sql.Literal(s.period),
    }  # fmt: skip


def _as_of(s: Source, indent: str) -> sql.Composable:
    """The WHERE that shows each query the table as it was when it was asked (none without
    an `added_at` column)."""
    if not s.added_at:
        return sql.SQL("")
    where = sql.SQL("\n" + indent + "WHERE r.{} <= q.{}")
    return where.format(ident(s.added_at), ident(s.asked_at))


def top1_statement(s: Source, threshold: float) -> Statement:
    """Per period: how many queries, the median and 10th percentile of their top-1 cosine
    similarity, and the share under `threshold` ($1)."""
    as_of = _as_of(s, "        ")
    text = sql.SQL(
        "SELECT date_trunc({period}, q.{asked})::date AS period,\n"
        "       count(*) AS queries,\n"
        "       percentile_cont(0.5) WITHIN GROUP (ORDER BY nn.similarity) AS median_top1,\n"
        "       percentile_cont(0.1) WITHIN GROUP (ORDER BY nn.similarity) AS p10_top1,\n"
        "       avg((nn.similarity < $1)::int) AS share_below\n"
        "FROM {log} AS q\n"
        "CROSS JOIN LATERAL (\n"
        "    SELECT 1 - (r.{col} <=> q.{qcol}) AS similarity\n"
        "    FROM {t} AS r{as_of}\n"
        "    ORDER BY r.{col} <=> q.{qcol}\n"
        "    LIMIT 1\n"
        ") AS nn\n"
        "GROUP BY 1\n"
        "ORDER BY 1"
    ).format(as_of=as_of, **_names(s))
    return Statement(text.as_string(), (float(threshold),), ("the threshold",))


def centroid_statements(s: Source, baseline_until: datetime) -> list[Statement]:
    """Per period: the queries' mean cosine distance to the centroid of the table's rows
    added before `baseline_until` ($1; all rows when it has no `added_at`), and the rows
    added that period's (with `added_at`)."""
    n = _names(s)
    base = sql.SQL("WHERE {} < $1::date").format(ident(s.added_at)) if s.added_at else sql.SQL("")
    cte = sql.SQL(
        "WITH baseline AS (\n    SELECT avg({col}) AS centroid FROM {t} {base}\n)\n"
    ).format(base=base, **n)
    queries = cte + sql.SQL(
        "SELECT date_trunc({period}, q.{asked})::date AS period, count(*) AS queries,\n"
        "       avg(q.{qcol} <=> b.centroid) AS query_distance\n"
        "FROM {log} AS q, baseline AS b\n"
        "GROUP BY 1\n"
        "ORDER BY 1"
    ).format(**n)
    params = (baseline_until.date().isoformat(),) if s.added_at else ()
    names = ("the end of the baseline",) if s.added_at else ()
    out = [Statement(queries.as_string(), params, names)]
    if s.added_at:
        rows = cte + sql.SQL(
            "SELECT date_trunc({period}, r.{added})::date AS period, count(*) AS rows,\n"
            "       avg(r.{col} <=> b.centroid) AS row_distance\n"
            "FROM {t} AS r, baseline AS b\n"
            "GROUP BY 1\n"
            "ORDER BY 1"
        ).format(added=ident(s.added_at), **n)
        out.append(Statement(rows.as_string(), params, names))
    return out


def top10_statement(s: Source) -> Statement:
    """Each logged query's exact top 10 in the table as it was (for nDCG against labels)."""
    as_of = _as_of(s, "    ")
    text = sql.SQL(
        "SELECT q.id AS asked, q.query_id,\n"
        "       date_trunc({period}, q.{asked})::date AS period, nn.{key}\n"
        "FROM {log} AS q\n"
        "CROSS JOIN LATERAL (\n"
        "    SELECT r.{key}, r.{col} <=> q.{qcol} AS distance\n"
        "    FROM {t} AS r{as_of}\n"
        "    ORDER BY r.{col} <=> q.{qcol}\n"
        "    LIMIT 10\n"
        ") AS nn\n"
        "ORDER BY q.id, nn.distance, nn.{key}"
    ).format(as_of=as_of, **_names(s))
    return Statement(text.as_string())


# ---- the simulation -------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """Which rows the table holds and when each arrives; which query is asked when."""

    rows: tuple[tuple[int, int], ...]  # (row id of the lab's real rows, month added)
    asked: tuple[tuple[int, str], ...]  # (month, query id)
    late: str
    shift_from: int
    arrives: int
    months: int


def plan(
    labels: Labels,
    source_of: Callable[[int], str],
    doc_row: Mapping[str, int],
    *,
    late: str = "git",
    rows: int = 20_000,
    available: int,
    months: int = MONTHS,
    shift_from: int = SHIFT_FROM,
    arrives: int = ARRIVES,
    per_month: int = QUERIES_PER_MONTH,
    seed: int = 0,
) -> Plan:
    """A table of about `rows` of the first `available` real rows (every judged passage of the
    usable queries, then others), the `late` manual's arriving in month `arrives`; `per_month`
    queries a month, the late manual's share growing by 15 points a month from `shift_from`
    (up to 60%). Only queries whose answer (relevance 2) is among the rows are asked."""
    if not 0 < shift_from <= arrives < months:
        raise ValueError("0 < shift_from <= arrives < months")
    rng = random.Random(seed)
    usable = [
        q for q in labels.queries
        if any(g == 2 and d in doc_row for d, g in labels.qrels.get(q.id, {}).items())
    ]  # fmt: skip
    early = [q for q in usable if q.source != late]
    later = [q for q in usable if q.source == late]
    if len(early) < 10 or len(later) < 5:
        raise ValueError(
            f"too few answerable queries in the first {available:,} rows: {len(early)} about "
            f"the first manuals, {len(later)} about {late}"
        )
    judged = {doc_row[d] for q in usable for d in labels.qrels[q.id] if d in doc_row}
    others = [r for r in range(1, available + 1) if r not in judged]
    rng.shuffle(others)
    chosen = sorted(judged | set(others[: max(0, rows - len(judged))]))
    table = tuple((r, arrives if source_of(r) == late else 0) for r in chosen)
    asked = []
    for m in range(months):
        share = 0.0 if m < shift_from else min(0.6, 0.15 * (m - shift_from + 1))
        n_late = round(per_month * share)
        picks = rng.sample(early, min(len(early), per_month - n_late))
        picks += [rng.choice(later) for _ in range(n_late)]
        asked += [(m, q.id) for q in picks]
    return Plan(table, tuple(asked), late, shift_from, arrives, months)


def build(
    db: Database,
    plan: Plan,
    row_vectors: Callable[[Sequence[int]], np.ndarray],
    query_vectors: Mapping[str, np.ndarray],
    doc_id: Callable[[int], str],
    source_of: Callable[[int], str],
) -> None:
    """(Re)create the simulation's two tables: the rows with when each was added, the query
    log with when each was asked."""
    ids = [r for r, _ in plan.rows]
    vectors = row_vectors(ids)
    dim = vectors.shape[1]
    with db.transaction() as conn:
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('drift tables'))")
        for t in (ROWS_TABLE, LOG_TABLE):
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(ident(t)))
        conn.execute(
            sql.SQL(
                "CREATE TABLE {} (id integer PRIMARY KEY, chunk_id text NOT NULL, "
                "source text NOT NULL, added_at timestamptz NOT NULL, embedding vector({}))"
            ).format(ident(ROWS_TABLE), sql.Literal(dim))
        )
        conn.execute(
            sql.SQL(
                "CREATE TABLE {} (id integer PRIMARY KEY, query_id text NOT NULL, "
                "asked_at timestamptz NOT NULL, embedding vector({}))"
            ).format(ident(LOG_TABLE), sql.Literal(dim))
        )
        with conn.cursor().copy(
            sql.SQL("COPY {} (id, chunk_id, source, added_at, embedding) FROM STDIN").format(
                ident(ROWS_TABLE)
            )
        ) as copy:
            for (r, m), v in zip(plan.rows, vectors, strict=True):
                copy.write_row((r, doc_id(r), source_of(r), month_start(m), _vec(v)))
        with conn.cursor().copy(
            sql.SQL("COPY {} (id, query_id, asked_at, embedding) FROM STDIN").format(
                ident(LOG_TABLE)
            )
        ) as copy:
            for i, (m, qid) in enumerate(plan.asked, 1):
                # asked mid-month, so a month's new rows are there for its queries
                at = month_start(m).replace(day=15)
                copy.write_row((i, qid, at, _vec(query_vectors[qid])))
        conn.execute(sql.SQL("ANALYZE {}").format(ident(ROWS_TABLE)))
        conn.execute(sql.SQL("ANALYZE {}").format(ident(LOG_TABLE)))


def _vec(v: np.ndarray) -> str:
    return "[" + ",".join(f"{x:.7g}" for x in v) + "]"


# ---- measuring --------------------------------------------------------------------------


@dataclass
class DriftReport:
    """Each signal per month, when each fired, and the statements that measured them."""

    months: list[str]  # 'YYYY-MM'
    series: dict[str, list[float | None]]
    queries: list[int]
    rows_added: list[int]
    threshold: float
    fired: dict[str, int | None]  # signal -> index of the month it fired, or None
    late_share: list[float]
    scripts: dict[str, Script] = field(default_factory=dict)
    plan: Plan | None = None

    def first(self) -> list[str]:
        """The signals that fired first (ties), in SIGNALS' order."""
        months = [m for m in self.fired.values() if m is not None]
        if not months:
            return []
        return [s for s in SIGNALS if self.fired.get(s) == min(months)]


def fires(values: Sequence[float | None], direction: int, floor: float,
          baseline: int = BASELINE) -> int | None:  # fmt: skip
    """The first index after the baseline where the value moves past the baseline's mean by
    more than max(3 standard deviations, `floor`) in `direction`."""
    base = [v for v in values[:baseline] if v is not None]
    if not base:
        return None
    mean, sd = float(np.mean(base)), float(np.std(base))
    margin = max(3 * sd, floor)
    for i, v in enumerate(values[baseline:], baseline):
        if v is not None and (v - mean) * direction > margin:
            return i
    return None


def measure(
    db: Database, source: Source, labels: Labels, plan: Plan, doc_id: Callable[[int], str]
) -> DriftReport:
    """Every signal of the simulation's tables, month by month."""
    months = [month_start(m) for m in range(plan.months)]
    keys = [m.strftime("%Y-%m") for m in months]
    baseline_until = month_start(BASELINE)

    # the threshold: the baseline months' 10th percentile of top-1 similarity
    first = run(db, [top1_statement(source, 0.0)], READ_ONLY)
    p10 = [r[3] for r in first.rows if r[0] < baseline_until.date()]
    threshold = float(np.mean(p10)) if p10 else 0.5
    top1 = run(db, [top1_statement(source, threshold)], READ_ONLY)
    by_month = {r[0].strftime("%Y-%m"): r for r in top1.rows}
    cent = run(db, centroid_statements(source, baseline_until), READ_ONLY)
    q_dist = {r[0].strftime("%Y-%m"): float(r[2]) for r in cent.results[0].rows}
    r_rows = cent.results[1].rows if len(cent.results) > 1 and cent.results[1] else []
    r_dist = {r[0].strftime("%Y-%m"): (int(r[1]), float(r[2])) for r in r_rows}
    top10 = run(db, [top10_statement(source)], READ_ONLY)
    ranked: dict[int, tuple[str, str, list[str]]] = {}
    for asked, qid, period, key in top10.rows:
        entry = ranked.setdefault(asked, (period.strftime("%Y-%m"), qid, []))
        entry[2].append(doc_id(int(key)))
    ndcg: dict[str, list[float]] = {}
    for month, qid, docs in ranked.values():
        ndcg.setdefault(month, []).append(scores.ndcg(docs, labels.qrels.get(qid, {})))

    series: dict[str, list[float | None]] = {
        "median_top1": [float(by_month[k][2]) if k in by_month else None for k in keys],
        "share_below": [float(by_month[k][4]) if k in by_month else None for k in keys],
        "query_distance": [q_dist.get(k) for k in keys],
        "row_distance": [
            r_dist[k][1] if k in r_dist and i > 0 else None for i, k in enumerate(keys)
        ],  # fmt: skip
        "ndcg": [float(np.mean(ndcg[k])) if k in ndcg else None for k in keys],
    }
    fired = {
        name: fires(values, SIGNALS[name][1], SIGNALS[name][2])
        for name, values in series.items()
        if name != "row_distance"
    }
    # new rows: the months after the first that added rows, against the first month's spread
    row_values = [r_dist[k][1] if k in r_dist else None for k in keys]
    fired["row_distance"] = next(
        (i for i, v in enumerate(row_values) if i > 0 and v is not None
         and v - (row_values[0] or 0) > SIGNALS["row_distance"][2]), None,
    )  # fmt: skip
    late_ids = {q.id for q in labels.queries if q.source == plan.late}
    late_by_month = [0] * plan.months
    for m, qid in plan.asked:
        late_by_month[m] += qid in late_ids
    counts = [int(by_month[k][1]) if k in by_month else 0 for k in keys]
    return DriftReport(
        keys, series, counts, [r_dist[k][0] if k in r_dist else 0 for k in keys], threshold,
        fired, [late_by_month[i] / max(1, counts[i]) for i in range(plan.months)],
        {"top1": top1, "centroid": cent, "top10": top10}, plan,
    )  # fmt: skip
