"""The recall harness from the command line: one JSON object on stdout, progress on stderr.

    python -m lib.recall --size 50000                       # HNSW at pgvector's defaults
    python -m lib.recall --size 50000 --ef-search 100
    python -m lib.recall --size 50000 --index ivfflat --lists 50 --probes 5
    python -m lib.recall --table public.items --column embedding   # your own table
    python -m lib.recall --size 50000 --ids                  # include every query's ids

The lab's sizes are built if missing (lib/builds.py) and their ground truth is the stored one
(lib/truths.py); your own table is only read (lib/vector_columns.py).
"""

from __future__ import annotations

import argparse
import json
import sys

from lib import builds, sizing, truths
from lib import vector_columns as vc
from lib.database import open_database
from lib.dataset import N_QUERIES, load_dataset
from lib.index_specs import IndexSpec
from lib.recall import (
    EXACT_TIMEOUT_MS,
    Answers,
    HarnessError,
    K,
    Target,
    generated_target,
    ground_truth,
    knobs_for,
    measure,
)
from lib.recall_tables import table_status
from lib.vectors import printer


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m lib.recall", description="Measure recall@k of a pgvector index."
    )
    ap.add_argument("--size", type=int, help="rows of the lab's dataset (built if missing)")
    ap.add_argument("--table", help="your own table, schema.table (instead of --size)")
    ap.add_argument("--column", help="its vector column (default: the only one)")
    ap.add_argument("--index", choices=["hnsw", "ivfflat"], default="hnsw")
    ap.add_argument("--m", type=int, default=16)
    ap.add_argument("--ef-construction", type=int, default=64)
    ap.add_argument("--lists", type=int, default=0, help="ivfflat lists (0: rows / 1000)")
    ap.add_argument("--ef-search", type=int, default=40)
    ap.add_argument("--probes", type=int, default=1)
    ap.add_argument("--k", type=int, default=K)
    ap.add_argument("--queries", type=int, default=N_QUERIES)
    ap.add_argument("--timeout-ms", type=int, default=EXACT_TIMEOUT_MS)
    ap.add_argument("--database-url", help="default: DATABASE_URL, else the embedded server")
    ap.add_argument("--ids", action="store_true", help="include every query's returned ids")
    args = ap.parse_args(argv)
    if (args.size is None) == (args.table is None):
        ap.error("give exactly one of --size and --table")

    def say(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    db = open_database(args.database_url)
    knobs = knobs_for(args.index, ef_search=args.ef_search, probes=args.probes)
    try:
        if args.table:
            column = vc.find_column(db, args.table, args.column)
            facts = vc.check_column(db, column, timeout_ms=args.timeout_ms)
            for w in facts.warnings:
                say(w)
            queries = vc.sample_queries(db, column, args.queries, timeout_ms=args.timeout_ms)
            knobs = knobs_for(facts.index.kind, ef_search=args.ef_search, probes=args.probes)
            report = measure(
                db, facts.target, queries, k=args.k, knobs=knobs, rows=facts.rows,
                exact_timeout_ms=args.timeout_ms,
            )  # fmt: skip
            report.extra["queries_from"] = "rows sampled from the table itself"
        else:
            ds = load_dataset()
            plan = sizing.plan_size(
                args.size, ds.dimension, m=args.m,
                memory=sizing.memory_available(), disk=sizing.disk_available(db),
            )  # fmt: skip
            if not plan.ok:
                raise HarnessError(plan.reason)
            spec = IndexSpec(args.index, args.m, args.ef_construction, args.lists)
            built = builds.prepare(
                db, ds, args.size, spec,
                progress=lambda done, n: say(f"loaded {done:,}/{n:,} rows") if done == n else None,
                on_notice=lambda text: say(f"NOTICE: {text}"),
                on_embed=printer(sys.stderr),
            )  # fmt: skip
            if built.indexed:
                say(f"built {built.index} in {built.build_seconds:.1f} s")
            status = table_status(db, ds, args.size)
            target = generated_target(status.table)
            truth = _stored_truth(db, ds, status, target, args.k, args.timeout_ms)
            if truth is not None and args.queries < len(truth.ids):
                truth = Answers(
                    truth.ids[: args.queries], truth.latencies_ms[: args.queries],
                    truth.plan, truth.settings, truth.ran_at, truth.seconds,
                )  # fmt: skip
            report = measure(
                db, target, ds.queries[: args.queries], k=args.k, knobs=knobs,
                truth=truth, rows=status.rows, exact_timeout_ms=args.timeout_ms,
            )  # fmt: skip
            report.extra.update(
                real_rows=ds.real_rows(args.size),
                generated_rows=args.size - ds.real_rows(args.size),
                model=ds.model_name,
                index_build_seconds=status.index.build_seconds if status.index else None,
                load_seconds=status.load_seconds,
            )
    except (HarnessError, ValueError, LookupError) as e:
        print(json.dumps({"error": str(e)}), flush=True)
        return 1
    finally:
        db.close()
    print(json.dumps(report.to_dict(ids=args.ids), default=str, indent=1))
    return 0


def _stored_truth(db, ds, status, target: Target, k: int, timeout_ms: int) -> Answers:
    """The lab table's ground truth as stored (lib/truths.py), computed and stored if missing."""
    truth = truths.of_table(db, ds, status, k)
    if truth is None:
        truth = ground_truth(db, target, ds.queries, k, timeout_ms=timeout_ms)
        truths.store(db, status.table, status.loaded_at, ds.queries_fingerprint, k, truth)
    return truth
