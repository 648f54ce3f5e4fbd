"""Instructor preparation: every size's table, index and ground truth, built before the room
arrives, then warmed and listed.

    .venv/bin/python -m lib.prepare                  # every size on offer (500 to 500,000)
    .venv/bin/python -m lib.prepare --sizes 500,50000
    make prepare

It embeds the passages the largest size needs that the cache lacks (resumable), queues a size
job for each size that is not ready and the Filtered search tables of the sizes that page
offers, runs them here with a progress bar (an app on the same database takes its share of
the queue; nothing is built twice), warms each size and prints its recall@10, and compares
real and generated rows once per corpus. Ready sizes are skipped.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from types import SimpleNamespace

from lib.core import jobs as queue
from lib.core.database import open_database
from lib.core.vectors import bar, duration, embedding_rate, printer
from lib.dataset import builds, config_tables, recall_tables, sizing
from lib.dataset.index_configs import DEFAULT_OVERSAMPLE, Config
from lib.dataset.index_specs import IndexSpec
from lib.dataset.passages import load_dataset
from lib.harness import recall, truths
from lib.harness import size_jobs as jobs
from lib.harness.reports import MIN_QUERIES, evaluable
from lib.lessons.evals import reports
from lib.lessons.filtered import jobs as filtered_jobs
from lib.lessons.filtered import tables as filtered_tables
from lib.lessons.hybrid import reports as hybrid_reports
from lib.lessons.recall import generator_check
from lib.lessons.reembed import demo as reembed_demo
from lib.lessons.reembed import jobs as reembed_jobs
from lib.lessons.tuning import frontier
from lib.lessons.tuning import jobs as tuning_jobs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lib.prepare", description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default=",".join(str(n) for n in recall_tables.SIZES))
    ap.add_argument("--timeout", type=float, default=3600, help="seconds to wait for the jobs")
    ap.add_argument(
        "--check-size", type=int, default=generator_check.DEFAULT_SIZES[0],
        help="rows at which real and generated rows are compared, if not yet (0: skip)",
    )  # fmt: skip
    args = ap.parse_args(argv)
    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]

    db = open_database()
    ds = load_dataset()
    info = db.info()
    print(f"PostgreSQL {info.server_version} · pgvector {info.pgvector_version}: {info.location}")
    for n in sizes:
        plan = sizing.plan_size(
            n, ds.dimension, memory=sizing.memory_available(), disk=sizing.disk_available(db)
        )
        if not plan.ok:
            print(f"{n:>9,} rows: refused. {plan.reason}")
    sizes = [
        n for n in sizes
        if sizing.plan_size(n, ds.dimension, memory=sizing.memory_available()).ok
    ]  # fmt: skip

    _embed(db, ds, max(sizes, default=0))

    waiting = []
    for n in sizes:
        status = recall_tables.table_status(db, ds, n)
        stored = truths.of_table(db, ds, status, recall.K)
        if status.ready() and stored is not None:
            continue
        spec = status.index.spec() if status.index else IndexSpec()
        waiting += _queued(jobs.request, db, ds, n, spec)

    t0 = time.monotonic()
    if waiting:
        print(f"Preparing {len(waiting)} size(s): {', '.join(f'{j.n:,}' for j in waiting)}")
        worker = queue.Worker(db, ds)
        try:
            _follow(db, waiting, args.timeout)
        finally:
            worker.stop()
    failed = [j for j in (jobs.get(db, w.id) for w in waiting) if j and j.state == "failed"]
    for j in failed:
        print(f"{j.n:>9,} rows FAILED: {j.error}")

    # The Filtered search page's tables, beside the recall tables of the sizes it offers
    filtered = [
        job for n in sizes if n in filtered_tables.SIZES
        for job in _queued(filtered_jobs.request, db, ds, n)
    ]  # fmt: skip
    failed += _run(db, ds, filtered, args.timeout, filtered_jobs, "the filtered table")

    # Index tuning's first curve: each size's own index swept (in a room attendees start none)
    sweeps = []
    for n in sizes:
        status = recall_tables.table_status(db, ds, n)
        if not status.ready():
            continue
        current = Config.of_spec(status.index.spec())
        (own,) = config_tables.statuses(db, ds, n, status, [current])
        key = frontier.key_of(own, status.loaded_at, len(ds.queries), DEFAULT_OVERSAMPLE)
        if own.built and not frontier.latest_ids(db, [key]):
            sweeps.append(tuning_jobs.request_sweep(db, ds, n, current))
    failed += _run(db, ds, sweeps, args.timeout, tuning_jobs, "the Index tuning sweep")

    # The Evals and Hybrid search pages' reports, for the sizes whose tables hold enough
    # labelled answers
    for suite in (reports.SUITE, hybrid_reports.SUITE):
        todo = [
            n for n in sizes
            if recall_tables.table_status(db, ds, n).ready()
            and suite.stored(db, ds, n) is None
            and evaluable(ds, n) >= MIN_QUERIES
        ]  # fmt: skip
        measured = [suite.request(db, n) for n in todo]
        failed += _run(db, ds, measured, args.timeout, suite, suite.what)

    # The Re-embedding page's default run and its drift, when the cache holds its passages
    n = reembed_demo.DEFAULT_SIZE
    if n in reembed_demo.sizes(ds):
        for kind, reader, what in (
            (reembed_jobs.MIGRATION, reembed_jobs.migration, "the re-embedding run"),
            (reembed_jobs.DRIFT, reembed_jobs.drift, "the drift months"),
        ):
            if reembed_demo.stored(db, "drift" if kind == reembed_jobs.DRIFT else "migration",
                                   n) is None:  # fmt: skip
                job = reembed_jobs.request(db, kind, n)
                follow = SimpleNamespace(
                    get=reader.get,
                    progress=lambda db, j, what=what: reembed_jobs.progress(db, j, what),
                )
                failed += _run(db, ds, [job], args.timeout, follow, what)

    print(f"\nWarming each size (the query set through its index) after {_mins(t0)}:")
    print(
        f"{'rows':>9}  {'real':>7}  {'index':<34} {'recall@10':>9} {'index p50':>9}  truth ran at"
    )
    for n in sizes:
        status = recall_tables.table_status(db, ds, n)
        stored = truths.of_table(db, ds, status, recall.K)
        if not status.ready() or stored is None:
            print(f"{n:>9,}  not ready")
            continue
        knobs = recall.knobs_for(status.index.kind)
        target = recall.generated_target(status.table)
        recall.ground_truth(db, target, ds.queries[:1])  # one exact scan reads the heap
        report = recall.measure(db, target, ds.queries, knobs=knobs, truth=stored, rows=n)
        print(
            f"{n:>9,}  {ds.real_rows(n):>7,}  {status.index.label():<34} "
            f"{report.recall['mean']:>9.3f} {report.index_latency_ms['p50']:>7.2f}ms  "
            f"{stored.ran_at}  ({', '.join(f'{k}={v}' for k, v in knobs.items())})"
        )
    if args.check_size and not generator_check.stored(db, ds):
        print(f"\nComparing real and generated rows at {args.check_size:,} rows (once per corpus):")
        check = generator_check.run_check(db, ds, args.check_size)
        print("\n".join(generator_check.lines([check])))
    db.close()
    return 1 if failed else 0


def _queued(request, db, ds, n, *args) -> list:
    """[the job] `request` queues, or [] with why, when it is refused (size or disk)."""
    try:
        return [request(db, ds, n, *args)]
    except sizing.SizeRefused as e:
        print(f"{n:>9,} rows: refused. {e}")
        return []


def _embed(db, ds, n: int) -> None:
    """Embed what the largest size needs and the cache lacks, with a bar and an estimate."""
    missing = ds.missing(n) if n else 0
    real = ds.real_rows(n)
    where = f"{real:,} of its {n:,} rows are real passages" + (
        f"; the {n - real:,} past row {real:,} come from the generator" if n > real else ""
    )
    if not missing:
        print(f"Every passage the largest size needs is embedded: {where}.")
        return
    rate, source = embedding_rate(ds.model_name, ds.cache)
    print(
        f"Embedding {missing:,} passages first ({ds.model_name}): about "
        f"{duration(missing / rate)} at {rate:,.0f}/s ({source}). Interrupt any time: "
        f"the next run goes on from there. When done, {where}."
    )
    conn, guard = builds.embedding_guard(db)
    with conn:
        report = ds.embed(n, progress=printer(), guard=guard)
    if report.rate:
        print(
            f"Embedded {report.embedded:,} passages in {duration(report.seconds)} "
            f"({report.rate:,.0f}/s)."
        )


def _run(db, ds, queued: list, timeout: float, kind, what: str) -> list:
    """Run `queued` jobs of one kind here with a progress bar; the ones that failed."""
    if not queued:
        return []
    print(f"{what[0].upper()}{what[1:]} for {', '.join(f'{j.n:,}' for j in queued)} rows:")
    worker = queue.Worker(db, ds)
    try:
        _follow(db, queued, timeout, kind.get, kind.progress)
    finally:
        worker.stop()
    failed = [j for j in (kind.get(db, q.id) for q in queued) if j and j.state == "failed"]
    for j in failed:
        print(f"{j.n:>9,} rows: {what} FAILED: {j.error}")
    return failed


def _follow(db, waiting: list, timeout: float, get=jobs.get, progress=jobs.progress) -> None:
    """Print a bar and each running job's own words until every job has ended."""
    deadline = time.monotonic() + timeout
    last_shape, last_print = "", 0.0
    interactive = sys.stdout.isatty()
    while time.monotonic() < deadline:
        current = [get(db, j.id) for j in waiting]
        ended = sum(1 for j in current if j is None or not j.running)
        running = [j for j in current if j is not None and j.running and j.state != "queued"]
        words = "; ".join(progress(db, j).text for j in running) or (
            "done" if ended == len(waiting) else "waiting for a worker"
        )
        line = f"{bar(ended / len(waiting))} {ended}/{len(waiting)} done. {words}"
        if interactive:
            print("\r" + line[:160].ljust(160), end="", flush=True)
        else:  # a log: a line when the words change, else one every 30 s (not every count)
            shape = re.sub(r"[0-9][0-9,.]*", "#", line)
            if shape != last_shape or time.monotonic() - last_print >= 30:
                print(line, flush=True)
                last_shape, last_print = shape, time.monotonic()
        if ended == len(waiting):
            break
        time.sleep(1)
    if interactive:
        print()


def _mins(t0: float) -> str:
    s = time.monotonic() - t0
    return f"{s / 60:.1f} min" if s >= 90 else f"{s:.0f} s"


if __name__ == "__main__":
    from lib.prepare import main as _main

    sys.exit(_main())
