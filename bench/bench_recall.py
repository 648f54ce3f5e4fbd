"""Recall at scale, benchmarked: load, build, exact scan against numpy, recall, harness time.

    .venv/bin/python bench/bench_recall.py                      # 500, 5k, 50k, 500k rows
    .venv/bin/python bench/bench_recall.py --sizes 500,5000     # some sizes
    .venv/bin/python bench/bench_recall.py --reuse    # keep built tables: no load/build figures

Runs against DATABASE_URL or the project's embedded server. Each size's table is dropped and
built again (binary COPY, then CREATE INDEX with HNSW m=16, ef_construction=64), so the load
and build figures are this run's; the rebuilt tables are the ones the app keeps.
Published anchor for HNSW builds: about 950 vectors/s per core at 1536 dimensions.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lib.core.database import open_database  # noqa: E402
from lib.dataset import (
    builds,
    recall_tables,  # noqa: E402
)
from lib.dataset.index_specs import IndexSpec  # noqa: E402
from lib.dataset.passages import load_dataset  # noqa: E402
from lib.dataset.recall_tables import table_name  # noqa: E402
from lib.harness.recall import generated_target, measure  # noqa: E402


def numpy_scan_ms(x: np.ndarray, queries: np.ndarray, k: int = 10) -> float:
    """Median time of one brute-force top-k query in numpy over the same vectors, on one
    thread (a 2-thread BLAS stalls whenever one of its threads waits for a core)."""
    from threadpoolctl import threadpool_limits

    times = []
    with threadpool_limits(1):
        times += _scan_times(x, queries, k)
    return float(np.median(times))


def _scan_times(x: np.ndarray, queries: np.ndarray, k: int) -> list[float]:
    times = []
    for q in queries:
        t = time.perf_counter()
        s = x @ q
        top = np.argpartition(-s, k)[:k]
        top[np.argsort(-s[top])]
        times.append((time.perf_counter() - t) * 1000)
    return times


def drop(db, table: str) -> None:
    recall_tables.ensure_meta(db)
    with db.transaction() as conn:
        conn.execute("DELETE FROM recall_tables WHERE name = %s", (table,))
        conn.execute("DELETE FROM recall_index_builds WHERE table_name = %s", (table,))
        conn.execute(f'DROP TABLE IF EXISTS "{table}"')


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="500,5000,50000,500000")
    ap.add_argument("--reuse", action="store_true", help="keep tables already built")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    db = open_database()
    ds = load_dataset()
    info = db.info()
    print(
        f"PostgreSQL {info.server_version}, pgvector {info.pgvector_version}, "
        f"{os.cpu_count()} cores; {ds.model_name} vectors, d={ds.dimension}, "
        f"{ds.n_real:,} real rows then generated; {len(ds.queries)} held-out queries"
    )
    header = (
        f"{'rows':>8} {'load s':>7} {'rows/s':>8} {'build s':>8} {'vec/s':>7} "
        f"{'ready s':>8} {'exact ms':>9} {'numpy ms':>9} {'ratio':>6} {'recall@10':>9} "
        f"{'min':>4} {'missed':>6} {'hnsw ms':>8} {'harness s':>9}"
    )
    print(header)
    for n in sizes:
        table = table_name(n, ds.dimension)
        if not args.reuse:
            drop(db, table)
        t0 = time.perf_counter()
        built = builds.prepare(
            db, ds, n, IndexSpec(), on_notice=lambda t: print(f"  NOTICE: {t}", flush=True)
        )
        ready = time.perf_counter() - t0
        t = time.perf_counter()
        report = measure(db, generated_target(table), ds.queries, rows=n)
        harness = time.perf_counter() - t
        x = np.concatenate(list(ds.rows(n)))
        np_ms = numpy_scan_ms(x, ds.queries)
        del x
        exact_ms = report.exact_latency_ms["p50"]
        load = built.load_seconds
        build = built.build_seconds
        print(
            f"{n:>8,} "
            + (f"{load:>7.1f} {n / load:>8,.0f} " if load else f"{'-':>7} {'-':>8} ")
            + (f"{build:>8.1f} {n / build:>7,.0f} " if build else f"{'-':>8} {'-':>7} ")
            + f"{ready:>8.1f} {exact_ms:>9.2f} {np_ms:>9.2f} {exact_ms / np_ms:>6.1f} "
            f"{report.recall['mean']:>9.3f} {report.recall['min']:>4.1f} "
            f"{report.queries_missing:>6} {report.index_latency_ms['p50']:>8.2f} {harness:>9.1f}",
            flush=True,
        )
    print(
        "exact ms / numpy ms: median per query, Postgres (parallel seq scan, index scans off) "
        "over numpy on one thread (a matrix-vector product and a partial sort, same vectors,\n"
        "same run). "
        "recall@10 at pgvector's defaults (m=16, ef_construction=64, ef_search=40); missed = "
        "queries with at least one true neighbour missing; harness s = 100 exact + 100 index "
        "queries with plans, as `python -m lib.recall` runs them."
    )
    db.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
