"""Filtered search, benchmarked: rows returned, recall and latency per iterative-scan mode at
1% and 0.1% selectivity, with the fixes and the trap, on 100,000 and 500,000 rows.

    .venv/bin/python bench/bench_filtered.py                     # 100k and 500k rows
    .venv/bin/python bench/bench_filtered.py --sizes 20000       # other sizes on offer

Runs against DATABASE_URL or the project's embedded server. Each size's filtered table is
prepared through the shared job queue (lib/lessons/filtered/jobs.py: the recall table's rows,
the filtered table, its exact filtered truths), built once and kept; the first run at 500,000
rows takes several minutes. Every query set is then measured again now (the lab's 100
held-out queries, each statement under statement_timeout), after one warm-up pass over the
table, and printed: queries short of LIMIT 10, mean rows returned, recall@10 against the exact
filtered truth, p50/p95 latency, rows the scan read (EXPLAIN ANALYZE, median of 10 queries).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lib.core.database import open_database  # noqa: E402
from lib.dataset.passages import load_dataset  # noqa: E402
from lib.lessons.filtered import jobs as filtered_jobs
from lib.lessons.filtered import search as fs  # noqa: E402
from lib.lessons.filtered import tables as filtered_tables  # noqa: E402
from lib.lessons.filtered import view as fv  # noqa: E402

CATEGORIES = (3, 4)  # 1% and 0.1%


def prepare(db, ds, n: int) -> filtered_tables.FilteredTable:
    table = filtered_tables.status(db, ds, n)
    if table is not None:
        return table
    t0 = time.perf_counter()
    job = filtered_jobs.request(db, ds, n)
    worker = filtered_jobs.Worker(db, ds)
    last = ""
    try:
        while True:
            current = filtered_jobs.get(db, job.id)
            text = filtered_jobs.progress(db, current).text
            if text.split("(")[0] != last:
                print(f"  {time.perf_counter() - t0:6.0f} s  {text}", flush=True)
                last = text.split("(")[0]
            if not current.running:
                break
            time.sleep(2)
    finally:
        worker.stop()
    if current.state == "failed":
        raise SystemExit(f"preparing {n:,} rows failed: {current.error}")
    table = filtered_tables.status(db, ds, n)
    print(
        f"  {n:,} rows ready in {time.perf_counter() - t0:.0f} s (copy {table.copy_seconds:.1f} s,"
        f" HNSW {table.index_seconds:.1f} s, partial {table.partial_seconds:.1f} s)"
    )
    return table


def line(n: int, run: fs.Run, table) -> str:
    c = run.key
    visited = f"{run.median_visited:,.0f}" if run.median_visited is not None else "-"
    recall = "-" if c.threshold is not None else f"{run.mean_recall:.3f}"
    return (
        f"{n:>8,} {fv.share(run.matching / run.rows):>6} {fv.short_label(c):<36}"
        f" {fv.plan_label(run, table):<19} {run.short:>5} {run.mean_rows:>6.1f} {recall:>7}"
        f" {run.latency():>8.2f} {run.latency(95):>8.2f} {visited:>9} {run.disordered:>5}"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="100000,500000")
    args = ap.parse_args()
    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",")]

    db = open_database()
    ds = load_dataset()
    info = db.info()
    print(
        f"PostgreSQL {info.server_version}, pgvector {info.pgvector_version}, "
        f"{os.cpu_count()} cores; {ds.model_name} vectors, d={ds.dimension}; "
        f"{len(ds.queries)} held-out queries; LIMIT 10, hnsw.ef_search 40, "
        f"hnsw.max_scan_tuples 20,000 (pgvector's defaults)"
    )
    tables = {n: prepare(db, ds, n) for n in sizes}
    header = (
        f"{'rows':>8} {'filter':>6} {'how':<36} {'answered by':<19} {'short':>5} {'rows':>6}"
        f" {'recall':>7} {'p50 ms':>8} {'p95 ms':>8} {'rows read':>9} {'disord':>5}"
    )
    print("\n" + header)
    for n, table in tables.items():
        # one warm-up pass: the heap and the graph in shared buffers, as in class
        fs.measure(db, ds, table, fs.Cell.of(fs.category_filter(1), "planner", "off"))
        for category in CATEGORIES:
            cells = fs.fixes(category, fs.DEFAULT_K, fs.DEFAULT_EF, fs.DEFAULT_MAX_SCAN, "off")
            for cell in cells:
                run = fs.stored_or_measured(db, ds, table, cell, again=True)
                print(line(n, run, table), flush=True)
        for cell in fs.trap_cells(fs.DEFAULT_K, fs.DEFAULT_EF, fs.DEFAULT_MAX_SCAN):
            run = fs.stored_or_measured(db, ds, table, cell, again=True)
            print(line(n, run, table), flush=True)
        print()
    print(
        "short: queries that returned fewer rows than LIMIT 10 (of 100; 10 for the trap); rows:"
        " mean rows returned; recall: recall@10 against the exact filtered truth (exact scans,"
        " no index in their plan); rows read: median over 10 queries' EXPLAIN ANALYZE of the"
        " rows the scan returned plus those its filter removed; disord: queries whose rows"
        " came back out of distance order."
    )
    db.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
