"""Index tuning, benchmarked: each configuration's build, its frontier, and the sweep's cost.

    .venv/bin/python bench/bench_tuning.py                        # 100k and 500k rows
    .venv/bin/python bench/bench_tuning.py --sizes 100000 --configs hnsw,halfvec,binary
    .venv/bin/python bench/bench_tuning.py --runs 3               # best of 3 runs per value

Runs against DATABASE_URL or the project's embedded server, on the lab's recall tables
(prepared first if missing, as `make prepare` does). For each size it prints:

- each configuration's build: where it lives, build time, index size (`pg_relation_size`)
  and `maintenance_work_mem` (a configuration built earlier is reported as it was built);
- the sweep of 10 `hnsw.ef_search` values over the 100 held-out queries on the table's own
  HNSW index (m = 16, ef_construction = 64), with its wall time (target: under 30 s at 500k),
  and the sweeps of the other configurations;
- recall@10 at ef_search 40, 100 and 200 beside the published anchor: Supabase's pgvector 0.6
  test on dbpedia-openai 1M at 1536 dimensions, m = 16, ef_construction = 64 — 0.915, 0.957
  and 0.974. That is context, not a claim about our data: other vectors, another size,
  another model.

Every sweep is stored (source "bench"), so the Index tuning page shows these points, with
their time, to whoever opens it.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lib.core.database import open_database  # noqa: E402
from lib.dataset import builds, config_tables, recall_tables
from lib.dataset.index_configs import Config  # noqa: E402
from lib.dataset.passages import load_dataset  # noqa: E402
from lib.harness import (
    recall,
    truths,  # noqa: E402
)
from lib.lessons.tuning import frontier
from lib.lessons.tuning.jobs import run_sweep  # noqa: E402
from lib.lessons.tuning.view import size_text  # noqa: E402

SWEEP_TARGET_S = 30.0  # the 500k sweep of 10 ef_search values over 100 queries
ANCHOR = {40: 0.915, 100: 0.957, 200: 0.974}  # Supabase, pgvector 0.6, dbpedia-openai 1M
CONFIGS = {
    "hnsw": Config(),
    "hnsw32": Config("hnsw", 32, 128),
    "ivfflat": Config("ivfflat"),
    "halfvec": Config("halfvec"),
    "binary": Config("binary"),
}


def prepare(db, ds, n: int) -> None:
    """The size's table with pgvector's default HNSW and its stored ground truth."""
    t = time.perf_counter()
    report = builds.prepare(db, ds, n, on_notice=lambda text: print(f"  NOTICE: {text}"))
    status = recall_tables.table_status(db, ds, n)
    if truths.of_table(db, ds, status, recall.K) is None:
        truth = recall.ground_truth(db, recall.generated_target(status.table), ds.queries)
        truths.store(db, status.table, status.loaded_at, ds.queries_fingerprint, recall.K, truth)
    if report.loaded or report.indexed:
        print(f"  prepared {status.table} in {time.perf_counter() - t:.0f} s")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="100000,500000")
    ap.add_argument("--configs", default="hnsw,hnsw32,ivfflat,halfvec,binary",
                    help=f"among {', '.join(CONFIGS)}")  # fmt: skip
    ap.add_argument("--runs", type=int, default=1, help="runs per knob value, fastest kept")
    ap.add_argument("--oversample", type=int, default=4)
    args = ap.parse_args()
    db = open_database()
    ds = load_dataset()
    info = db.info()
    print(f"PostgreSQL {info.server_version} · pgvector {info.pgvector_version}: {info.location}")
    verdicts = []
    for n in (int(s.replace("_", "")) for s in args.sizes.split(",")):
        print(f"\n== {n:,} rows ({ds.real_rows(n):,} real, {ds.dimension} dimensions)")
        prepare(db, ds, n)
        configs = [CONFIGS[c].resolved(n) for c in args.configs.split(",")]
        print(f"{'configuration':<46} {'table':<34} {'build':>8} {'index':>10}  mwm")
        for config in configs:
            t = time.perf_counter()
            built = config_tables.build_config(db, ds, n, config)
            if built.copied:
                print(f"  copied the rows in {built.copy_seconds:.1f} s")
            status = recall_tables.table_status(db, ds, n)
            (s,) = config_tables.statuses(db, ds, n, status, [config])
            when = "now" if built.indexed else "earlier"
            if not s.place.is_copy:
                when = "as the table's own index, by make prepare or the queue"
            print(
                f"{config.label():<46} {s.place.table:<34} {s.build_seconds or 0:>7.1f}s "
                f"{size_text(s.index_bytes):>10}  {s.maintenance_work_mem} (built {when}, "
                f"{time.perf_counter() - t:.0f} s in this run)"
            )
        for config in configs:
            sweep = run_sweep(
                db, ds, n, config, oversample=args.oversample, runs=args.runs, source="bench"
            )
            knob = frontier.knob_label(sweep.knob)
            print(f"\n{config.label()} — sweep of {len(sweep.values)} {knob} values over "
                  f"{sweep.queries} queries: {sweep.seconds:.1f} s")  # fmt: skip
            print(f"  {knob:>9} {'recall@10':>9} {'worst':>6} {'p50 ms':>8} {'p95 ms':>8} "
                  f"{'QPS':>7}")  # fmt: skip
            for p in sweep.points:
                anchor = f"   anchor {ANCHOR[p.value]:.3f}" if (
                    config == Config().resolved(n) and p.value in ANCHOR) else ""  # fmt: skip
                print(
                    f"  {p.value:>9} {p.recall['mean']:>9.3f} {p.recall['min']:>6.2f} "
                    f"{p.latency_ms['p50']:>8.2f} {p.latency_ms['p95']:>8.2f} {p.qps:>7.0f}"
                    f"{anchor}"
                )
            best = frontier.cheapest([sweep], 0.95)
            if best is not None:
                print(f"  cheapest reaching 0.95: {knob} = {best.point.value}")
            if config == Config().resolved(n) and n >= 500_000:
                ok = sweep.seconds < SWEEP_TARGET_S
                verdicts.append(
                    f"{n:,}-row sweep of {len(sweep.values)} ef_search values: "
                    f"{sweep.seconds:.1f} s (target < {SWEEP_TARGET_S:.0f} s): "
                    + ("met" if ok else "MISSED")
                )
    print(
        "\nAnchor (context, not a claim about these data): Supabase's pgvector 0.6 test, "
        "dbpedia-openai 1M × 1536 dimensions, HNSW m=16 ef_construction=64: recall@10 0.915 "
        "at ef_search 40, 0.957 at 100, 0.974 at 200."
    )
    for v in verdicts:
        print(v)
    db.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
