"""The evals harness: systems that rank rows for labelled queries, each one SQL statement that
runs as shown, and the runner that scores them (lib/harness/scores.py) with intervals and
paired tests.

A `System` is a statement with $1 the query (a vector, or the query's text for full-text
search) and $2 the depth (how many rows it keeps, 100), the `SET LOCAL` settings it runs
under, and what its plan must show: an exact scan proved exact (no index anywhere in the
plan, as lib/harness/recall.py proves its ground truth), or the index it reads. Every
setting list holds `transaction_read_only = on`: a system never writes. Systems:

- `exact_system`: cosine (or the table's operator) over every row, index scans off;
- `index_system`: an HNSW index at one `hnsw.ef_search` (the size's own, or a quantized
  query shape such as lib/dataset/index_configs.py's halfvec and binary + re-rank,
  passed in by the caller, since the harness imports no lesson);
- `fts_system`: PostgreSQL full-text search, `websearch_to_tsquery('english', $1)` ranked by
  `ts_rank_cd`, over a generated tsvector and its GIN index (lib/dataset/text_tables.py) or a
  text column of your own.

`evaluate` runs each system over the queries (one transaction per system, the first query's
plan checked), maps the rows to doc ids, and returns an `Evaluation`: per query, per kind
and overall metrics, bootstrap intervals, and paired randomisation tests between every two
systems. `Evaluation.report` is the JSON report `python -m lib.evals` writes; `gate` reads
two of them and says whether nDCG@10 dropped by more than chance allows.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import combinations
from typing import Any, Protocol

import numpy as np
import psycopg

from lib.core.database import Database, Setting
from lib.core.embeddings.base import EmbeddingModel, checked_vectors
from lib.core.embeddings.cache import EmbeddingCache
from lib.core.psql import Script, Statement, run, setting_line
from lib.dataset import text_tables
from lib.dataset.passages import N_QUERIES, Dataset
from lib.harness import labels as labels_mod
from lib.harness import lexical, scores
from lib.harness.labels import Labels
from lib.harness.lexical import TextSource, lab_text_source  # noqa: F401 (re-exported)
from lib.harness.recall import (
    EXACT_TIMEOUT_MS,
    INDEX_TIMEOUT_MS,
    HarnessError,
    Target,
    exact_settings,
    index_settings,
    index_used,
    is_exact_plan,
    plan_nodes,
    summary,
)

DEPTH = 100  # rows each system keeps per query: recall@100 needs them
VECTOR, TEXT, HYBRID = "vector", "text", "hybrid"  # what $1 is (HYBRID: $1 vector, $3 text)
EXACT = "exact"  # what an exact system's plan must prove
GATE_METRIC = "ndcg@10"
ALPHA = 0.05
REPORT_FORMAT = 1
TOP_SHOWN = 10  # doc ids kept per query in the report
TS_CONFIG = text_tables.TS_CONFIG

Progress = Callable[[str, int, int], None]  # (system name, done, total)


# ---- systems ------------------------------------------------------------------------------


class KnnQuery(Protocol):
    """A k-nearest query shape: lib/harness/recall.py's `Target`, or a quantized one such as
    lib/dataset/index_configs.py's `ConfigQuery`."""

    def statement(self, query: np.ndarray, k: int = ..., *, with_distance: bool = ...) -> Any: ...


@dataclass(frozen=True)
class System:
    """One way of ranking rows: a statement ($1 the query, $2 the depth, then `extra`), the
    settings it runs under, and what its plan must read."""

    name: str  # short, stable: the key of the report (exact, hnsw:40, fts, binary:40:4)
    label: str  # for people: "HNSW ef_search=40"
    input: str  # VECTOR, TEXT or HYBRID: what $1 is (HYBRID: the vector, and $3 the text)
    sql: str
    settings: Mapping[str, Setting]
    score: str  # the score column: "distance" (lower is better) or "rank" (higher is better)
    expect: str | None = None  # EXACT, the index the plan must read, or None (planner's)
    extra: tuple[Any, ...] = ()
    names: tuple[str, ...] = ()
    depth: int = DEPTH
    # Re-ranks a query's rows after the SQL ran (its time counted in the latency): called
    # with the query's text, the keys and the scores; returns them re-ordered
    # (lib/harness/rerank.py). Only for TEXT and HYBRID systems.
    rerank: Callable[[str, list, list], tuple[list, list]] | None = None

    def statement(self, query: Any) -> Statement:
        """The statement for one query (a vector for VECTOR systems, a text for TEXT ones, a
        (vector, text) pair for HYBRID ones)."""
        if self.input == HYBRID:
            vector, text = query
            params = (np.asarray(vector, dtype=np.float32), self.depth, str(text), *self.extra)
            return Statement(self.sql, params, self.names)
        value = np.asarray(query, dtype=np.float32) if self.input == VECTOR else str(query)
        return Statement(self.sql, (value, self.depth, *self.extra), self.names)

    def script(self, db: Database, query: Any) -> Script:
        """One query run now under the system's settings, with the SQL that ran."""
        return run(db, [self.statement(query)], self.settings)

    def sql_text(self) -> str:
        """The statement with its settings, as a psql script without its parameters."""
        lines = [setting_line(k, v) for k, v in self.settings.items()]
        return "BEGIN;\n" + "".join(f"{x}\n" for x in lines) + self.sql + ";\nCOMMIT;"

    @property
    def higher_is_better(self) -> bool:
        return self.score != "distance"


def _read_only(settings: Mapping[str, Setting]) -> dict[str, Setting]:
    return {**settings, "transaction_read_only": "on"}


def exact_system(target: Target, *, depth: int = DEPTH, timeout_ms: int = EXACT_TIMEOUT_MS):
    """Every row compared: index scans off, the plan proved to read no index."""
    return knn_system(
        EXACT, "exact scan", target, exact_settings(timeout_ms), expect=EXACT, depth=depth
    )


def index_system(
    name: str,
    label: str,
    knn: KnnQuery,
    index: str,
    ef_search: int,
    *,
    depth: int = DEPTH,
    timeout_ms: int = INDEX_TIMEOUT_MS,
) -> System:
    """An HNSW index at `ef_search`, its plan required to read `index` (sequential scans
    off, so a small table is answered by its index too)."""
    settings = index_settings({"hnsw.ef_search": ef_search}, timeout_ms)
    return knn_system(name, label, knn, settings, expect=index, depth=depth)


def knn_system(
    name: str,
    label: str,
    knn: KnnQuery,
    settings: Mapping[str, Setting],
    *,
    expect: str | None,
    depth: int = DEPTH,
) -> System:
    """A system from a k-nearest query shape (its `statement` with distances, at `depth`)."""
    shape = knn.statement(np.zeros(1, np.float32), depth, with_distance=True)
    return System(
        name, label, VECTOR, shape.text, _read_only(settings), "distance", expect,
        tuple(shape.params[2:]), tuple(shape.names), depth,
    )  # fmt: skip


def fts_system(
    source: TextSource, *, depth: int = DEPTH, timeout_ms: int = INDEX_TIMEOUT_MS
) -> System:
    """Full-text search: the rows matching `websearch_to_tsquery('english', $1)`, best
    `ts_rank_cd` first (ties by key, so a paste gives the same order)."""
    query = lexical.fts_select(source, "$1", "$2")
    settings = {
        "plan_cache_mode": "force_custom_plan",
        "jit": "off",
        "statement_timeout": f"{timeout_ms}ms",
    }
    return System(
        "fts", "full-text search (ts_rank_cd)", TEXT, query,
        _read_only(settings), "rank", None, (), ("the query's text", "depth"), depth,
    )  # fmt: skip


# ---- running one system -------------------------------------------------------------------


@dataclass
class SystemRun:
    """One system's answers: per query, row keys and scores in rank order, and latency."""

    system: System
    keys: dict[str, list[Any]]
    values: dict[str, list[float]]
    latencies_ms: dict[str, float]
    plan: dict
    ran_at: str
    seconds: float
    docs: dict[str, list[str]] = field(default_factory=dict)  # keys as doc ids

    @property
    def plan_nodes(self) -> list[str]:
        return plan_nodes(self.plan)

    @property
    def index_used(self) -> str | None:
        return index_used(self.plan)


def explain(cur: psycopg.Cursor, statement: Statement) -> dict:
    """The JSON plan of `statement` on `cur`'s transaction."""
    rows = cur.execute(
        "EXPLAIN (FORMAT JSON) " + statement.text, statement.params, prepare=False
    ).fetchall()
    return rows[0][0][0]["Plan"]


def indexes_used(plan: Mapping) -> list[str]:
    """Every index the plan reads, depth first."""
    found = [plan["Index Name"]] if "Index Name" in plan else []
    for child in plan.get("Plans", ()):
        found += indexes_used(child)
    return found


def check_plan(system: System, plan: Mapping) -> None:
    """Raise HarnessError unless the plan is what the system claims (exact, or its index)."""
    if system.expect == EXACT and not is_exact_plan(plan):
        raise HarnessError(
            f"{system.label}: the plan uses an index ({' → '.join(plan_nodes(plan))}); "
            "its answers are not an exact scan's"
        )
    if system.expect not in (None, EXACT) and system.expect not in indexes_used(plan):
        raise HarnessError(
            f"{system.label}: the plan reads {index_used(plan) or 'no index'}, not "
            f"{system.expect} ({' → '.join(plan_nodes(plan))})"
        )


def run_system(
    db: Database,
    system: System,
    queries: Sequence[tuple[str, Any]],
    *,
    progress: Progress | None = None,
) -> SystemRun:
    """Every (query id, query) through `system` in one transaction under its settings (as
    `SET LOCAL` lines, as shown), after its plan for the first query is checked."""
    if not queries:
        raise HarnessError("no queries to run")
    keys: dict[str, list[Any]] = {}
    values: dict[str, list[float]] = {}
    lat: dict[str, float] = {}
    started = datetime.now(UTC).isoformat(timespec="seconds")
    t0 = time.perf_counter()
    try:
        with db.transaction() as conn:
            cur = psycopg.RawCursor(conn)
            for name, value in system.settings.items():
                cur.execute(setting_line(name, value), prepare=False)
            plan = explain(cur, system.statement(queries[0][1]))
            check_plan(system, plan)
            for i, (qid, query) in enumerate(queries):
                s = system.statement(query)
                t = time.perf_counter()
                rows = cur.execute(s.text, s.params, prepare=False).fetchall()
                keys[qid] = [r[0] for r in rows]
                values[qid] = [float(r[1]) for r in rows]
                if system.rerank is not None:
                    text = query[1] if system.input == HYBRID else str(query)
                    keys[qid], values[qid] = system.rerank(text, keys[qid], values[qid])
                lat[qid] = (time.perf_counter() - t) * 1000
                if progress and ((i + 1) % 25 == 0 or i + 1 == len(queries)):
                    progress(system.name, i + 1, len(queries))
    except psycopg.errors.QueryCanceled as e:
        raise HarnessError(
            f"{system.label}: a query ran past statement_timeout "
            f"({system.settings.get('statement_timeout')}) and was cancelled"
        ) from e
    return SystemRun(system, keys, values, lat, plan, started, time.perf_counter() - t0)


# ---- query vectors ------------------------------------------------------------------------


def query_key(text: str) -> str:
    """The embedding cache's key of a query text (apart from passages' keys: a model may
    embed a query unlike a document)."""
    return hashlib.sha256(f"query\0{text}".encode()).hexdigest()


def query_vectors(
    model: EmbeddingModel, texts: Sequence[str], cache: EmbeddingCache, *, batch: int = 256
) -> np.ndarray:
    """The model's query vectors of `texts`, (n, d): from the cache, the rest embedded now
    (as queries) and cached."""
    name, dim = model.info.name, model.info.dimension
    keys = [query_key(t) for t in texts]
    found = cache.get_many(name, dim, keys)
    first = {k: i for i, k in reversed(list(enumerate(keys)))}  # each text embedded once
    todo = sorted(i for k, i in first.items() if k not in found)
    for start in range(0, len(todo), batch):
        idx = todo[start : start + batch]
        vectors = checked_vectors(
            model.embed([texts[i] for i in idx], input_type="query"), dim, len(idx)
        )
        cache.put_many(name, [keys[i] for i in idx], vectors)
        found.update(zip((keys[i] for i in idx), vectors, strict=True))
    if not texts:
        return np.zeros((0, dim), np.float32)
    return checked_vectors(np.stack([found[k] for k in keys]), dim, len(texts))


# ---- the lab's tables ---------------------------------------------------------------------


def lab_doc_ids(ds: Dataset) -> Callable[[Any], str]:
    """Row id → doc id on the recall tables: the chunk id of its passage (a generated row,
    which has none, gets `generated-<id>`, never judged)."""
    hashes = ds.hashes

    def doc_id(row_id: Any) -> str:
        r = int(row_id)
        if 1 <= r <= ds.n_real:
            return hashes[N_QUERIES + r - 1][:16]
        return f"generated-{r}"

    return doc_id


def lab_labels(
    ds: Dataset,
    n: int,
    labels: Labels | None = None,
    *,
    split: str | None = "test",
    kinds: Sequence[str] | None = None,
) -> Labels:
    """The labelled queries a size can evaluate (every relevance-2 passage in its table),
    their judgements cut to its passages (lib/harness/labels.py: evaluable, restricted)."""
    labels = labels if labels is not None else labels_mod.read()
    picked = labels.select(kinds=kinds, split=split)
    table_ids = labels_mod.table_doc_ids(n, [h[:16] for h in ds.hashes])
    keep = labels_mod.evaluable(picked, table_ids)
    chosen = picked.select(ids=set(keep))
    return Labels(chosen.queries, labels_mod.restricted(chosen.qrels, table_ids))


# ---- the runner ---------------------------------------------------------------------------


def _interval(values: np.ndarray, confidence: float, resamples: int, seed: int) -> dict:
    if values.size == 0:
        return {"mean": None, "low": None, "high": None}
    iv = scores.bootstrap_interval(values, confidence=confidence, resamples=resamples, seed=seed)
    return {"mean": iv.mean, "low": iv.low, "high": iv.high}


def _comparison(c: scores.Comparison) -> dict:
    return {
        "difference": c.difference, "low": c.interval.low, "high": c.interval.high,
        "p_value": c.p_value, "queries": c.queries,
    }  # fmt: skip


@dataclass
class Evaluation:
    """Systems run over the same labelled queries, scored."""

    labels: Labels  # the queries evaluated, judgements as used
    runs: list[SystemRun]
    scores: dict[str, scores.Scores]  # system name -> per-query metrics
    confidence: float = 1 - ALPHA
    resamples: int = 10_000
    seed: int = 0

    def kinds(self) -> dict[str, str]:
        return {q.id: q.kind for q in self.labels.queries}

    def run_of(self, name: str) -> SystemRun:
        return next(r for r in self.runs if r.system.name == name)

    def intervals(self, name: str) -> dict[str, dict]:
        """Each metric's mean and bootstrap interval for one system, over every query."""
        s = self.scores[name]
        return {
            m: _interval(s.values[m], self.confidence, self.resamples, self.seed)
            for m in scores.METRICS
        }

    def by_kind(self, name: str) -> dict[str, dict]:
        """Per kind of query: how many, and each metric's mean and interval."""
        out = {}
        for kind, s in scores.by_kind(self.scores[name], self.kinds()).items():
            out[kind] = {"queries": len(s.query_ids)} | {
                m: _interval(s.values[m], self.confidence, self.resamples, self.seed)
                for m in scores.METRICS
            }
        return out

    def comparisons(self, metric: str = GATE_METRIC) -> list[dict]:
        """Every two systems (b against a), overall and per kind: the difference of means of
        `metric`, its bootstrap interval and the paired randomisation test's p-value."""
        out = []
        kinds = self.kinds()
        groups: dict[str, list[str]] = {"all": [q.id for q in self.labels.queries]}
        for q in self.labels.queries:
            groups.setdefault(q.kind, []).append(q.id)
        for a, b in combinations([r.system.name for r in self.runs], 2):
            known = set(self.scores[a].query_ids)
            for group, ids in groups.items():
                scored = [q for q in ids if q in known]
                if not scored or (group != "all" and len(set(kinds.values())) == 1):
                    continue
                c = scores.compare(
                    self.scores[a].of(scored), self.scores[b].of(scored), metric,
                    seed=self.seed, resamples=self.resamples,
                )  # fmt: skip
                out.append({"a": a, "b": b, "metric": metric, "kind": group} | _comparison(c))
        return out

    def system_report(self, r: SystemRun) -> dict:
        name = r.system.name
        per = self.scores[name].per_query()
        rows = [len(r.keys[q]) for q in r.keys]
        return {
            "name": name,
            "label": r.system.label,
            "input": r.system.input,
            "sql": r.system.sql_text(),
            "rerank": getattr(r.system.rerank, "label", None),
            "settings": dict(r.system.settings),
            "parameters": list(r.system.names),
            "plan": r.plan_nodes,
            "index": r.index_used,
            "exact_proved": is_exact_plan(r.plan) if r.system.expect == EXACT else None,
            "ran_at": r.ran_at,
            "seconds": r.seconds,
            "latency_ms": summary(list(r.latencies_ms.values())),
            "rows_returned": summary(rows),
            "metrics": self.intervals(name),
            "kinds": self.by_kind(name),
            "per_query": {
                q: per.get(q, {})
                | {
                    "latency_ms": r.latencies_ms[q],
                    "rows": len(r.keys[q]),
                    "top": r.docs[q][:TOP_SHOWN],
                }  # fmt: skip
                for q in r.keys
            },
        }

    def report(self, **meta: Any) -> dict:
        """The JSON report: `meta` (where, which queries, versions), then per system its SQL,
        plan, latency, metrics with intervals, per kind and per query; then the comparisons."""
        counts: dict[str, int] = {}
        for q in self.labels.queries:
            counts[q.kind] = counts.get(q.kind, 0) + 1
        return {
            "format": REPORT_FORMAT,
            **meta,
            "queries": len(self.labels.queries),
            "queries_per_kind": counts,
            "metrics": list(scores.METRICS),
            "confidence": self.confidence,
            "resamples": self.resamples,
            "systems": [self.system_report(r) for r in self.runs],
            "comparisons": self.comparisons(),
        }


def evaluate(
    db: Database,
    systems: Sequence[System],
    labels: Labels,
    *,
    vectors: Mapping[str, np.ndarray] | None = None,
    doc_id: Callable[[Any], str] = str,
    progress: Progress | None = None,
    confidence: float = 1 - ALPHA,
    resamples: int = 10_000,
    seed: int = 0,
) -> Evaluation:
    """Run every system over every query of `labels` and score it (`vectors`: query id →
    query vector, for the vector systems; `doc_id`: a returned key → the qrels' doc id)."""
    if not labels.queries:
        raise HarnessError("no labelled query to evaluate here")
    names = [s.name for s in systems]
    if len(set(names)) != len(names):
        raise HarnessError(f"two systems share a name: {names}")
    runs, scored = [], {}
    for system in systems:
        if system.input in (VECTOR, HYBRID):
            if vectors is None:
                raise HarnessError(f"{system.label} needs query vectors")
            queries = [
                (q.id, vectors[q.id] if system.input == VECTOR else (vectors[q.id], q.text))
                for q in labels.queries
            ]
        else:
            queries = [(q.id, q.text) for q in labels.queries]
        r = run_system(db, system, queries, progress=progress)
        r.docs = {q: [doc_id(k) for k in keys] for q, keys in r.keys.items()}
        runs.append(r)
        scored[system.name] = scores.score(r.docs, labels.qrels)
    return Evaluation(labels, runs, scored, confidence, resamples, seed)


# ---- the gate -----------------------------------------------------------------------------


def report_scores(system: Mapping[str, Any], metric: str = GATE_METRIC) -> scores.Scores:
    """One system's per-query values of `metric` from a report, as Scores."""
    per = system["per_query"]
    ids = tuple(sorted(q for q in per if metric in per[q]))
    return scores.Scores(ids, {metric: np.array([per[q][metric] for q in ids], np.float64)})


@dataclass(frozen=True)
class Verdict:
    """One system of a run against its baseline on the queries both scored."""

    system: str
    baseline_system: str
    metric: str
    queries: int
    baseline_mean: float
    mean: float
    difference: float
    low: float
    high: float
    p_value: float
    alpha: float
    regressed: bool
    losses: list[dict]  # the queries that lost most: id, baseline, now, difference

    def sentence(self) -> str:
        """What the gate says, with the numbers."""
        verdict = "REGRESSION" if self.regressed else "ok"
        return (
            f"{verdict}: {self.system} {self.metric} {self.mean:.4f} vs baseline "
            f"{self.baseline_system} {self.baseline_mean:.4f} on {self.queries} queries: "
            f"{self.difference:+.4f} [{self.low:+.4f}, {self.high:+.4f}], p = {self.p_value:.4f}"
        )


def gate(
    baseline: Mapping[str, Any],
    current: Mapping[str, Any],
    *,
    metric: str = GATE_METRIC,
    alpha: float = ALPHA,
    pairs: Sequence[tuple[str, str]] | None = None,
    resamples: int = 10_000,
    seed: int = 0,
    losses: int = 10,
) -> list[Verdict]:
    """Each (current system, baseline system) pair — by default every system of `current`
    against the baseline's system of the same name, or the baseline's only system — judged
    on the queries both scored. A pair regressed when `metric` dropped, the paired
    randomisation test's p-value is below `alpha`, and the drop's bootstrap interval (at
    confidence 1 - alpha) lies below zero."""
    base = {s["name"]: s for s in baseline["systems"]}
    now = {s["name"]: s for s in current["systems"]}
    if pairs is None:
        pairs = [(n, n) for n in now if n in base]
        if not pairs and len(base) == 1:
            pairs = [(n, next(iter(base))) for n in now]
    if not pairs:
        raise HarnessError(
            f"no system of this run ({', '.join(now)}) is in the baseline "
            f"({', '.join(base)}); name the baseline's with --baseline-system"
        )
    out = []
    for mine, theirs in pairs:
        if mine not in now or theirs not in base:
            raise HarnessError(f"no system {mine if mine not in now else theirs} to compare")
        a, b = report_scores(base[theirs], metric), report_scores(now[mine], metric)
        common = [q for q in a.query_ids if q in set(b.query_ids)]
        if not common:
            raise HarnessError(f"{mine} and the baseline's {theirs} share no scored query")
        a, b = a.of(common), b.of(common)
        d = b.values[metric] - a.values[metric]
        iv = scores.bootstrap_interval(d, confidence=1 - alpha, resamples=resamples, seed=seed)
        p = scores.randomisation_test(
            a.values[metric], b.values[metric], permutations=resamples, seed=seed
        )
        order = np.argsort(d, kind="stable")[:losses]
        lost = [
            {
                "query_id": common[i],
                "baseline": float(a.values[metric][i]),
                "now": float(b.values[metric][i]),
                "difference": float(d[i]),
            }  # fmt: skip
            for i in order
            if d[i] < 0
        ]
        diff = float(d.mean())
        out.append(
            Verdict(
                mine,
                theirs,
                metric,
                len(common),
                float(a.values[metric].mean()),
                float(b.values[metric].mean()),
                diff,
                iv.low,
                iv.high,
                p,
                alpha,
                bool(diff < 0 and p < alpha and iv.high < 0),
                lost,
            )  # fmt: skip
        )
    return out
