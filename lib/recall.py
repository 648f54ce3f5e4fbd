"""The recall harness from the command line: one JSON object on stdout, progress on stderr.

    python -m lib.recall --size 50000                       # HNSW at pgvector's defaults
    python -m lib.recall --size 50000 --ef-search 100
    python -m lib.recall --size 50000 --index ivfflat --lists 50 --probes 5
    python -m lib.recall --table public.items --column embedding   # your own table
    python -m lib.recall --size 50000 --ids                  # include every query's ids
    python -m lib.recall --size 100000 --sweep ef_search=10,20,40,100,200,1000   # the frontier
    python -m lib.recall --size 100000 --index ivfflat --sweep probes=1,2,4,8,16   # on a copy
    python -m lib.recall --size 100000 --quantize binary --oversample 4 --sweep ef_search=40,100
    python -m lib.recall --size 20000 --where category=3 --iterative-scan strict_order
    python -m lib.recall --table public.items --where tenant_id=7 --iterative-scan relaxed_order

The lab's sizes are built if missing (lib/dataset/builds.py), with their stored ground truth
(lib/harness/truths.py); your own table is only read (lib/lessons/recall/vector_columns.py).
`--sweep` measures each value of the knob (checking that the plan reads the measured index),
prints the frontier and the cheapest value reaching `--target`, and on the lab's tables stores
it for the Index tuning page (lib/lessons/tuning/frontier.py); the index options then name the
configuration swept, on a copy of the rows unless it is the table's own index
(lib/dataset/index_configs.py). `--where column=value` filters both paths (the value is
a parameter, never SQL text), the index path with `enable_sort = off` unless `--planner`; with
`--size` it runs on the lab's filtered table of that size (lib/lessons/filtered/tables.py).
"""

from __future__ import annotations

import argparse
import json
import re
import sys

import psycopg

from lib.core.database import DatabaseUnavailable, open_database
from lib.core.vectors import printer
from lib.dataset import builds, config_tables, sizing
from lib.dataset.index_configs import DEFAULT_OVERSAMPLE, Config, parse_values
from lib.dataset.index_specs import IndexSpec
from lib.dataset.passages import N_QUERIES, load_dataset
from lib.dataset.recall_tables import table_status
from lib.harness import truths
from lib.harness.recall import (
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
from lib.lessons.recall import vector_columns as vc
from lib.lessons.tuning import frontier
from lib.lessons.tuning import jobs as tuning_jobs


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
    ap.add_argument(
        "--sweep", metavar="KNOB=V1,V2,…",
        help="print the recall–latency frontier over ef_search=… (HNSW) or probes=… (IVFFlat)",
    )  # fmt: skip
    ap.add_argument(
        "--quantize", choices=["halfvec", "binary"],
        help="with --size and --sweep: that quantized HNSW (m, ef-construction) instead, "
        "built on a copy of the rows if missing",
    )  # fmt: skip
    ap.add_argument(
        "--oversample", type=int, default=DEFAULT_OVERSAMPLE,
        help="binary: the index returns k × this candidates, re-ranked by the full vectors",
    )  # fmt: skip
    ap.add_argument("--runs", type=int, default=1, help="sweep runs per value (fastest kept)")
    ap.add_argument("--target", type=float, default=0.95, help="the sweep's recall target")
    ap.add_argument("--where", metavar="COLUMN=VALUE", help="filter: WHERE column = value")
    ap.add_argument("--iterative-scan", choices=["off", "strict_order", "relaxed_order"])
    ap.add_argument("--max-scan-tuples", type=int, help="hnsw.max_scan_tuples (default 20000)")
    ap.add_argument(
        "--planner", action="store_true", help="with --where: let the planner pick the index"
    )
    args = ap.parse_args(argv)
    if (args.size is None) == (args.table is None):
        ap.error("give exactly one of --size and --table")
    try:
        where = parse_where(args.where) if args.where else None
    except ValueError as e:
        ap.error(str(e))
    if where and args.sweep:
        ap.error("--where and --sweep go separately")
    sweep_knob: tuple[str, tuple[int, ...]] | None = None
    if args.sweep:
        try:
            sweep_knob = parse_sweep(args.sweep)
        except ValueError as e:
            ap.error(str(e))
    elif args.quantize:
        ap.error("--quantize goes with --sweep")

    def say(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    try:
        db = open_database(args.database_url)
        db.check()
    except DatabaseUnavailable as e:  # one line of JSON that says what failed and the fix
        print(json.dumps({"error": str(e)}), flush=True)
        return 1

    def with_filter(kind: str) -> dict:
        knobs = knobs_for(kind, ef_search=args.ef_search, probes=args.probes)
        prefix = "ivfflat" if kind == "ivfflat" else "hnsw"
        if args.iterative_scan:
            knobs[f"{prefix}.iterative_scan"] = args.iterative_scan
        if args.max_scan_tuples and kind != "ivfflat":
            knobs["hnsw.max_scan_tuples"] = args.max_scan_tuples
        if where and not args.planner:
            knobs["enable_sort"] = "off"  # no B-tree + sort: the vector index answers
        return knobs

    knobs = with_filter(args.index)
    try:
        if args.table and where:
            report = _own_table_filtered(db, args, where, with_filter)
        elif args.table:
            column = vc.find_column(db, args.table, args.column)
            facts = vc.check_column(db, column, timeout_ms=args.timeout_ms)
            for w in facts.warnings:
                say(w)
            queries = vc.sample_queries(db, column, args.queries, timeout_ms=args.timeout_ms)
            knobs = with_filter(facts.index.kind)
            if sweep_knob:
                return _print(_own_frontier(db, facts, queries, sweep_knob, args, say))
            report = measure(
                db, facts.target, queries, k=args.k, knobs=knobs, rows=facts.rows,
                exact_timeout_ms=args.timeout_ms,
            )  # fmt: skip
            report.extra["queries_from"] = "rows sampled from the table itself"
        elif where:
            report = _lab_filtered(db, args, where, knobs, say)
        else:
            ds = load_dataset()
            plan = sizing.plan_size(
                args.size, ds.dimension, m=args.m,
                memory=sizing.memory_available(), disk=sizing.disk_available(db),
            )  # fmt: skip
            if not plan.ok:
                raise HarnessError(plan.reason)
            spec = IndexSpec(args.index, args.m, args.ef_construction, args.lists)
            if sweep_knob:  # a sweep keeps the table's own index; other configs get a copy
                current = table_status(db, ds, args.size).index
                spec = current.spec() if current else IndexSpec()
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
            if sweep_knob:
                return _print(_lab_frontier(db, ds, status, sweep_knob, args, say))
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
    except (
        HarnessError,
        ValueError,
        LookupError,
        psycopg.errors.DataError,
        DatabaseUnavailable,
    ) as e:
        print(json.dumps({"error": str(e)}), flush=True)
        return 1
    finally:
        db.close()
    return _print(report.to_dict(ids=args.ids))


def _print(result: dict) -> int:
    print(json.dumps(result, default=str, indent=1))
    return 0


KNOBS = {"ef_search": "hnsw.ef_search", "probes": "ivfflat.probes"}


def parse_sweep(text: str) -> tuple[str, tuple[int, ...]]:
    """`ef_search=10,20,40` (or `probes=…`, with or without `hnsw.`/`ivfflat.`): the setting
    and its values."""
    name, sep, values = text.partition("=")
    knob = KNOBS.get(name.strip().split(".")[-1])
    if not sep or knob is None:
        raise ValueError(f"--sweep takes ef_search=10,20,… or probes=1,2,…, not {text!r}")
    return knob, parse_values(values)


def _cheapest(sweep: frontier.Sweep, target: float) -> dict | None:
    best = frontier.cheapest([sweep], target)
    if best is None:
        return None
    p = best.point
    return {
        "target": target, sweep.knob: p.value, "recall": p.recall["mean"],
        "p50_ms": p.latency_ms["p50"], "p95_ms": p.latency_ms["p95"], "qps": p.qps,
    }  # fmt: skip


def _lab_frontier(db, ds, status, sweep_knob, args, say) -> dict:
    """The frontier of the configuration the arguments name (the table's own index, or a
    configuration built on a copy of its rows, as the Index tuning page does), stored."""
    knob, values = sweep_knob
    config = Config(args.quantize or args.index, args.m, args.ef_construction, args.lists)
    config = config.resolved(args.size)
    if config != Config.of_spec(status.index.spec()).resolved(args.size):
        built = config_tables.build_config(
            db, ds, args.size, config,
            on_phase=lambda phase: say(f"{config.label()}: {phase}"),
            on_notice=lambda text: say(f"NOTICE: {text}"),
        )  # fmt: skip
        if built.indexed:
            say(f"built {built.place.index} in {built.build_seconds:.1f} s")
    if knob != config.knob:
        raise HarnessError(f"{config.label()} is tuned with {config.knob}, not {knob}")
    sweep = tuning_jobs.run_sweep(
        db, ds, args.size, config, oversample=args.oversample, values=list(values), k=args.k,
        queries=args.queries, runs=args.runs, source="command line",
        progress=lambda done, total: say(f"{knob}: {done}/{total} values"),
    )  # fmt: skip
    out = sweep.to_dict(ids=args.ids)
    out.update(
        real_rows=ds.real_rows(args.size),
        generated_rows=args.size - ds.real_rows(args.size),
        model=ds.model_name,
        cheapest=_cheapest(sweep, args.target),
    )
    return out


def _own_frontier(db, facts, queries, sweep_knob, args, say) -> dict:
    """The frontier of your own table's index, against an exact scan run now (not stored)."""
    knob, values = sweep_knob
    config = Config(facts.index.kind)
    if knob != config.knob:
        raise HarnessError(f"{facts.index.name} is {facts.index.kind}: sweep {config.knob}")
    say(f"exact scan of {len(queries)} queries on {facts.column.qualified}…")
    truth = ground_truth(db, facts.target, queries, args.k, timeout_ms=args.timeout_ms)
    sweep = frontier.sweep(
        db, facts.target, queries, truth, config=config, index=facts.index.name,
        values=values, k=args.k, runs=args.runs,
        progress=lambda done, total: say(f"{knob}: {done}/{total} values"),
    )  # fmt: skip
    out = sweep.to_dict(ids=args.ids)
    out.update(
        configuration=f"{facts.index.name} ({facts.index.kind}, {facts.index.opclass})",
        rows=facts.rows,
        queries_from="rows sampled from the table itself",
        cheapest=_cheapest(sweep, args.target),
    )
    return out


def _stored_truth(db, ds, status, target: Target, k: int, timeout_ms: int) -> Answers:
    """The lab table's ground truth as stored (lib/harness/truths.py), computed and stored if
    missing."""
    truth = truths.of_table(db, ds, status, k)
    if truth is None:
        truth = ground_truth(db, target, ds.queries, k, timeout_ms=timeout_ms)
        truths.store(db, status.table, status.loaded_at, ds.queries_fingerprint, k, truth)
    return truth


def parse_where(text: str) -> tuple[str, int | str]:
    """`column=value` (spaces allowed around =): the column and the value, a number when it
    is one. Anything else (an expression, SQL) is refused: the value travels as a parameter."""
    m = re.fullmatch(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*", text)
    if not m or not m.group(2):
        raise ValueError(f"--where takes column=value, such as category=3 (got {text!r})")
    value = m.group(2).strip("'\"")
    return m.group(1), int(value) if re.fullmatch(r"-?\d+", value) else value


def _filter_extra(report, truth_ids, column: str, value, matching: int | None) -> None:
    """What a filtered report adds: the filter, how many rows it matches, the short queries."""
    expected = [min(report.k, len(t)) for t in truth_ids]
    got = report.rows_returned
    report.extra.update(
        where=f"{column} = {value!r}",
        matching_rows=matching,
        queries_short=sum(1 for r, e in zip(got, expected, strict=True) if r < e),
        rows_missing=sum(max(0, e - r) for r, e in zip(got, expected, strict=True)),
        expected_rows=expected,
    )


def _lab_filtered(db, args, where, knobs, say):
    """The lab's filtered table of --size rows (built if missing), filtered by --where."""
    from lib.lessons.filtered import search as filtered_search
    from lib.lessons.filtered import tables as filtered_tables

    ds = load_dataset()
    column, value = where
    if column not in filtered_tables.FILTER_COLUMNS:
        raise HarnessError(
            f"the lab's filtered tables filter on {' or '.join(filtered_tables.FILTER_COLUMNS)}"
        )
    table = filtered_tables.status(db, ds, args.size)
    if table is None:
        builds.load_table(db, ds, args.size)
        say(f"building {filtered_tables.table_name(args.size, ds.dimension)}…")
        table = filtered_tables.build(db, ds, args.size)
    f = filtered_search.Filter(column, value)
    target = generated_target(table.name).filtered(column, value)
    if args.k <= filtered_search.TRUTH_K:
        stored = filtered_search.truth(db, ds, table, f)
        truth = Answers(
            stored.ids[: args.queries], stored.latencies_ms[: args.queries], stored.plan,
            stored.settings, stored.ran_at, stored.seconds,
        )  # fmt: skip
    else:
        truth = ground_truth(db, target, ds.queries[: args.queries], args.k)
    report = measure(
        db, target, ds.queries[: args.queries], k=args.k, knobs=knobs, truth=truth,
        rows=table.n, exact_timeout_ms=args.timeout_ms,
    )  # fmt: skip
    matching = table.rows(column, value)
    _filter_extra(report, truth.ids, column, value, matching)
    report.extra.update(model=ds.model_name, table_built_at=table.built_at)
    return report


def _own_table_filtered(db, args, where, with_filter):
    """Your own table, filtered by --where: queries sampled from it, the truth computed now."""
    column = vc.find_column(db, args.table, args.column)
    facts = vc.check_column(db, column, timeout_ms=args.timeout_ms)
    name, value = where
    known = db.fetchone(
        "SELECT 1 FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid"
        " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s"
        " AND c.relname = %s AND a.attname = %s AND a.attnum > 0 AND NOT a.attisdropped",
        (column.schema, column.table, name),
    )
    if known is None:
        raise HarnessError(f"{column.qualified} has no column {name!r} to filter on")
    queries = vc.sample_queries(db, column, args.queries, timeout_ms=args.timeout_ms)
    target = facts.target.filtered(name, value)
    report = measure(
        db, target, queries, k=args.k, knobs=with_filter(facts.index.kind),
        rows=facts.rows, exact_timeout_ms=args.timeout_ms,
    )  # fmt: skip
    _filter_extra(report, report.truth_ids, name, value, None)
    report.extra["queries_from"] = "rows sampled from the table itself"
    return report


if __name__ == "__main__":
    sys.exit(main())
