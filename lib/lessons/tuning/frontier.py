"""The recall–latency frontier: one configuration's query-time knob (`hnsw.ef_search`,
`ivfflat.probes`) swept over about ten values; at each, the query set runs through the index
(lib/harness/recall.py: `SET LOCAL`, sequential scans off, the plan's index checked), and
recall@k against the stored exact truth, latency p50 / p95 and the queries per second of one
client are kept.

Before the first value, the whole query set runs once at the largest value, so that no value
pays for reading the index from disk; at each value a few warm-up queries are not counted;
with `runs` above 1 the fastest run is kept. Sweeps are stored in `tuning_sweeps`, and read
back only for the index as it was built (`index_built_at`) on the rows as they were loaded
(`source_loaded_at`): a rebuilt index or a reloaded table has none.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
from psycopg.types.json import Jsonb

from lib.core.database import Database, Setting
from lib.dataset.index_configs import Config
from lib.harness.recall import (
    Answers,
    HarnessError,
    K,
    index_settings,
    recall_at_k,
    run_queries,
    summary,
)

WARMUP_QUERIES = 10

Progress = Callable[[int, int], None]


@dataclass
class Point:
    """One value of the knob: what the query set found and how fast."""

    value: int
    recall: dict[str, float]  # mean, min, p5, p50, p95, max over the queries
    latency_ms: dict[str, float]  # the same, per query
    qps: float  # queries per second of one client: queries / the run's wall time
    seconds: float
    index: str | None  # the index the plan named
    plan: list[str]
    rows_returned_min: int
    queries_missing: int  # queries with at least one true neighbour missing
    ran_at: str
    ids: list[list[Any]] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)

    def public(self, *, ids: bool = False) -> dict[str, Any]:
        d = asdict(self)
        if not ids:
            d.pop("ids")
            d.pop("latencies_ms")
        return d


@dataclass
class Sweep:
    """A configuration's knob swept: where, with what, when, and the points."""

    config: Config
    table: str
    index: str
    knob: str
    values: list[int]
    k: int
    queries: int
    oversample: int | None
    settings: dict[str, Setting]  # the settings besides the knob, as every point ran them
    points: list[Point]
    ran_at: str
    seconds: float
    truth_ran_at: str
    n: int | None = None
    index_built_at: datetime | None = None
    source_loaded_at: datetime | None = None
    source: str = "app"  # app, command line, bench
    id: int | None = None

    def to_dict(self, *, ids: bool = False) -> dict[str, Any]:
        return {
            "id": self.id,
            "rows": self.n,
            "configuration": self.config.label(),
            "config": self.config.to_json(),
            "table": self.table,
            "index": self.index,
            "knob": self.knob,
            "values": self.values,
            "k": self.k,
            "queries": self.queries,
            "oversample": self.oversample,
            "settings": self.settings,
            "ran_at": self.ran_at,
            "seconds": self.seconds,
            "truth_ran_at": self.truth_ran_at,
            "source": self.source,
            "points": [p.public(ids=ids) for p in self.points],
        }


def settings_for(knob: str, value: int) -> dict[str, Setting]:
    """The SET LOCAL settings one point runs under (the harness's index path)."""
    return index_settings({knob: value})


def sweep(
    db: Database,
    shape: Any,
    queries: np.ndarray,
    truth: Answers,
    *,
    config: Config,
    index: str,
    values: Sequence[int] | None = None,
    k: int = K,
    runs: int = 1,
    warmup: int = WARMUP_QUERIES,
    progress: Progress | None = None,
) -> Sweep:
    """Sweep `config`'s knob over `values` on `shape` (a lib.harness.recall Target or a
    lib.dataset.index_configs ConfigQuery), checking at every value that the plan reads
    `index`."""
    queries = np.asarray(queries, dtype=np.float32)
    if queries.ndim != 2 or not len(queries) or not np.isfinite(queries).all():
        raise HarnessError("queries must be a non-empty 2-D array of finite numbers")
    if len(truth.ids) < len(queries):
        raise HarnessError("the ground truth was computed for another query set")
    values = list(values or config.sweep_values())
    started = datetime.now(UTC).isoformat(timespec="seconds")
    t0 = time.perf_counter()
    points = []
    for i, value in enumerate(values):
        settings = settings_for(config.knob, value)
        if warmup:
            if i == 0:  # read the index into memory once, at the value that reads the most
                run_queries(db, shape, queries, k, settings_for(config.knob, max(values)))
            run_queries(db, shape, queries[:warmup], k, settings)
        best: Answers | None = None
        for _ in range(max(1, runs)):
            got = run_queries(db, shape, queries, k, settings)
            if got.index_used != index:
                raise HarnessError(
                    f"at {config.knob} = {value} the plan read "
                    f"{got.index_used or 'no index'} ({' → '.join(got.plan_nodes)}), "
                    f"not {index}: the point would not measure {config.label()}"
                )
            if best is None or got.seconds < best.seconds:
                best = got
        assert best is not None
        per_query = recall_at_k(truth.ids[: len(queries)], best.ids, k)
        points.append(
            Point(
                value=int(value),
                recall=summary(per_query),
                latency_ms=summary(best.latencies_ms),
                qps=len(queries) / best.seconds if best.seconds > 0 else float("inf"),
                seconds=best.seconds,
                index=best.index_used,
                plan=best.plan_nodes,
                rows_returned_min=min(len(g) for g in best.ids),
                queries_missing=int((per_query < 1.0).sum()),
                ran_at=best.ran_at,
                ids=best.ids,
                latencies_ms=[float(x) for x in best.latencies_ms],
            )
        )
        if progress:
            progress(i + 1, len(values))
    other = {k_: v for k_, v in settings_for(config.knob, values[0]).items() if k_ != config.knob}
    return Sweep(
        config=config,
        table=shape.qualified,
        index=index,
        knob=config.knob,
        values=[int(v) for v in values],
        k=k,
        queries=len(queries),
        oversample=getattr(shape, "oversample", None) if config.kind == "binary" else None,
        settings=other,
        points=points,
        ran_at=started,
        seconds=time.perf_counter() - t0,
        truth_ran_at=truth.ran_at,
    )


@dataclass(frozen=True)
class Cheapest:
    """The fastest point (by median latency) reaching a recall target, and whose it is."""

    label: str
    sweep_index: int
    point: Point


def cheapest(sweeps: Sequence[Sweep | None], target: float) -> Cheapest | None:
    """The point with the lowest p50 latency among those with mean recall ≥ `target`."""
    best: Cheapest | None = None
    for i, s in enumerate(sweeps):
        for p in s.points if s else ():
            if p.recall["mean"] + 1e-12 < target:
                continue
            if best is None or p.latency_ms["p50"] < best.point.latency_ms["p50"]:
                best = Cheapest(s.config.label(), i, p)
    return best


# ---------------------------------------------------------------------------------------
# Stored sweeps

DDL = """CREATE TABLE IF NOT EXISTS tuning_sweeps (
    id bigserial PRIMARY KEY,
    n integer,
    config jsonb NOT NULL,
    table_name text NOT NULL,
    index_name text NOT NULL,
    index_built_at timestamptz,
    source_loaded_at timestamptz,
    knob text NOT NULL,
    knob_values integer[] NOT NULL,
    k integer NOT NULL,
    queries integer NOT NULL,
    oversample integer,
    settings jsonb NOT NULL,
    points jsonb NOT NULL,
    ran_at timestamptz NOT NULL,
    seconds double precision NOT NULL,
    truth_ran_at timestamptz,
    source text NOT NULL
);
CREATE INDEX IF NOT EXISTS tuning_sweeps_key ON tuning_sweeps (index_name, index_built_at, id)"""


def ensure_table(db: Database) -> None:
    db.ensure("tuning_sweeps", DDL)


def store(db: Database, s: Sweep) -> int:
    """Keep `s`; its id."""
    ensure_table(db)
    row = db.fetchone(
        "INSERT INTO tuning_sweeps (n, config, table_name, index_name, index_built_at,"
        " source_loaded_at, knob, knob_values, k, queries, oversample, settings, points,"
        " ran_at, seconds, truth_ran_at, source)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
        " RETURNING id",
        (
            s.n, Jsonb(s.config.to_json()), s.table, s.index, s.index_built_at,
            s.source_loaded_at, s.knob, s.values, s.k, s.queries, s.oversample,
            Jsonb(s.settings), Jsonb([p.public(ids=True) for p in s.points]), s.ran_at,
            s.seconds, s.truth_ran_at, s.source,
        ),
    )  # fmt: skip
    assert row is not None
    s.id = int(row[0])
    return s.id


@dataclass(frozen=True)
class SweepKey:
    """What makes two sweeps the same measurement (their time aside)."""

    index: str
    index_built_at: datetime | None
    source_loaded_at: datetime | None
    knob: str
    values: tuple[int, ...]
    k: int
    queries: int
    oversample: int | None


def key_of(s, source_loaded_at: datetime | None, queries: int, oversample: int) -> SweepKey:
    """The key of the sweep the Index tuning page shows for configuration status `s` (a
    config_tables.ConfigStatus) on a table loaded at `source_loaded_at`: its knob's values,
    k = 10, the query set's size, and `oversample` for a binary configuration."""
    return SweepKey(
        s.place.index,
        s.built_at,
        source_loaded_at,
        s.config.knob,
        tuple(s.config.sweep_values()),
        10,
        queries,
        oversample if s.config.kind == "binary" else None,
    )


def latest_ids(db: Database, keys: Sequence[SweepKey]) -> dict[SweepKey, int]:
    """The newest stored sweep of each key that has one (one query for all)."""
    ensure_table(db)
    if not keys:
        return {}
    rows = db.fetchall(
        "SELECT DISTINCT ON (index_name, index_built_at, source_loaded_at, knob, knob_values,"
        " k, queries, oversample) id, index_name, index_built_at, source_loaded_at, knob,"
        " knob_values, k, queries, oversample FROM tuning_sweeps"
        " WHERE index_name = ANY(%s)"
        " ORDER BY index_name, index_built_at, source_loaded_at, knob, knob_values, k,"
        " queries, oversample, id DESC",
        ([key.index for key in keys],),
    )
    found = {
        SweepKey(r[1], r[2], r[3], r[4], tuple(r[5]), r[6], r[7], r[8]): int(r[0]) for r in rows
    }
    return {key: found[key] for key in keys if key in found}


POINTS_WITHOUT_IDS = """(SELECT jsonb_agg(p - 'ids' - 'latencies_ms' ORDER BY i)
    FROM jsonb_array_elements(points) WITH ORDINALITY AS e (p, i))"""


def load(db: Database, sweep_id: int, *, ids: bool = True) -> Sweep | None:
    """A stored sweep by id (without each query's ids and latency unless `ids`)."""
    ensure_table(db)
    points = "points" if ids else POINTS_WITHOUT_IDS
    row = db.fetchone(
        "SELECT n, config, table_name, index_name, index_built_at, source_loaded_at, knob,"
        f" knob_values, k, queries, oversample, settings, {points}, ran_at, seconds,"
        " truth_ran_at, source FROM tuning_sweeps WHERE id = %s",
        (sweep_id,),
    )
    if row is None:
        return None
    (n, config, table, index, built_at, loaded_at, knob, values, k, queries, oversample,
     settings, points, ran_at, seconds, truth_ran_at, source) = row  # fmt: skip
    return Sweep(
        config=Config.from_json(config),
        table=table,
        index=index,
        knob=knob,
        values=list(values),
        k=k,
        queries=queries,
        oversample=oversample,
        settings=settings,
        points=[Point(**p) for p in points],
        ran_at=_iso(ran_at),
        seconds=seconds,
        truth_ran_at=_iso(truth_ran_at),
        n=n,
        index_built_at=built_at,
        source_loaded_at=loaded_at,
        source=source,
        id=sweep_id,
    )


def _iso(value: Any) -> str:
    return value.isoformat(timespec="seconds") if isinstance(value, datetime) else str(value)


def knob_label(knob: str) -> str:
    return knob.split(".")[-1]


def describe(point: Point, knob: str) -> Mapping[str, Any]:
    """A point as the page's table shows it."""
    return {
        knob_label(knob): point.value,
        "recall@10": round(point.recall["mean"], 3),
        "worst query": round(point.recall["min"], 2),
        "p50 ms": round(point.latency_ms["p50"], 2),
        "p95 ms": round(point.latency_ms["p95"], 2),
        "QPS (one client)": round(point.qps),
        "index in the plan": point.index,
    }
