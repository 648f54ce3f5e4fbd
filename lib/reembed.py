"""Re-embedding a table with another model from the command line, with zero downtime
(lib/harness/reembed.py does the work).

    python -m lib.reembed --table public.docs --key id --text body \\
        --from-column embedding --from-model all-MiniLM-L6-v2 \\
        --to-model paraphrase-MiniLM-L3-v2 [--batch 256] [--dry-run]
    python -m lib.reembed … --cutover      # then switch readers' view to the new model
    python -m lib.reembed … --rollback     # back to the old model (the old column is kept)
    python -m lib.reembed … --finish       # drop the column readers no longer use

Without a flag it adds the shadow column and the readers' view `<table>_search` (if missing),
backfills in batches, builds the HNSW index concurrently and stops at `ready`; rerunning
continues where it stopped (Ctrl-C stops after the current batch). `--cutover` does the same
first, then switches the view in one transaction. `--dry-run` changes nothing: it prints the
statements each step would run and an estimate (rows left × the new model's passages/s,
measured on a sample of the table's rows).

Where: DATABASE_URL, `--database-url`, or the project's embedded server. Output: progress on
stderr, one JSON line on stdout (the run's state and figures). Exit codes: 0 done, 1 failed
(one JSON line saying why), 2 bad arguments, 130 stopped by Ctrl-C (rerun to continue).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from dataclasses import asdict

import psycopg

from lib.core.database import DatabaseUnavailable, open_database
from lib.core.embeddings.base import EmbeddingError
from lib.core.psql import Statement, short_value
from lib.harness import reembed as rm

SAMPLE = 256


def preview(step: str, s: Statement) -> str:
    """A statement as the dry run prints it: the step, the SQL, each parameter briefly."""
    lines = [f"-- {step}", *(f"-- {c}" for c in s.comment.splitlines() if c), s.text + ";"]
    for i, value in enumerate(s.params, 1):
        name = s.names[i - 1] if i <= len(s.names) else ""
        shown = _brief(value)
        lines.append(f"--   ${i} {name}: {shown}")
    return "\n".join(lines)


def _brief(value) -> str:
    if isinstance(value, list):
        head = ", ".join(short_value(v) for v in value[:2])
        return f"{len(value)} values [{head}{', …' if len(value) > 2 else ''}]"
    return short_value(value)


def dry_run(db, args, say) -> dict:
    """What a run would do, read only: the statements and the estimate."""
    m = rm.describe(db, args.table, key=args.key, text=args.text, from_column=args.from_column,
                    from_model=args.from_model, to_model=args.to_model,
                    to_column=args.to_column or "")  # fmt: skip
    active = rm.Reembed.active(db, args.table)
    if active is not None:
        m = active.m
    total, no_text = rm.read(db, rm.sql_count_rows(m))[0]
    columns = dict(rm.read(db, rm.sql_column_type(m.schema, m.table)))
    left = (
        int(rm.read(db, rm.sql_remaining(m))[0][0])
        if m.to_column in columns
        else int(total - no_text)
    )
    sample = rm.read(db, rm.sql_sample(m, args.sample))
    rate = None
    vectors = None
    if sample:
        texts = [t for _, t in sample]
        rm.embed(m.to_model, texts[:8])  # load and warm up
        t0 = time.perf_counter()
        vectors = rm.embed(m.to_model, texts)
        rate = len(texts) / (time.perf_counter() - t0)
        say(f"{m.to_model}: {rate:,.0f} passages/s on {len(texts)} of the table's rows")
    keys = [k for k, _ in sample[: args.batch]]
    texts = [t for _, t in sample[: args.batch]]
    vecs = vectors[: len(keys)] if vectors is not None else []
    steps: list[tuple[str, Statement]] = [
        ("the migrations' table", rm.sql_runs_table()),
        ("plan: the shadow column", rm.sql_add_column(m)),
        ("plan: the readers' view, if missing", rm.sql_view(m, m.from_column, m.from_model)),
        ("plan: the run", rm.sql_insert_run(m, int(total))),
        ("backfill: the next batch (then after its last key)", rm.sql_next_batch(m, None,
                                                                                 args.batch)),
        ("backfill: its vectors, in the batch's transaction", rm.sql_write_batch(m, keys, texts,
                                                                                 vecs)),
        ("backfill: its progress, same transaction", rm.sql_record_batch(0, len(keys),
                                                                         str(keys[-1]) if keys
                                                                         else "", 0.0, 0.0)),
        ("index, outside a transaction", rm.sql_create_index(m)),
        ("ready when none is left", rm.sql_remaining(m)),
        ("--cutover, in one transaction", rm.sql_view(m, m.to_column, m.to_model)),
        ("--rollback, in one transaction", rm.sql_view(m, m.from_column, m.from_model)),
        ("--finish after a cutover", rm.sql_drop_column(m, m.from_column)),
        ("--finish after a cutover", rm.sql_rename_shadow(m)),
        ("readers' k-NN, guarded by the query's model", rm.sql_knn(
            m, m.to_model, vecs[0] if len(vecs) else [0.0] * m.dimension, 10)),
    ]  # fmt: skip
    for step, s in steps:
        print(preview(step, s) + "\n", flush=True)
    return {
        "dry_run": True, "table": m.label, "to_column": m.to_column, "view": m.view,
        "index": m.index_name, "metric": m.metric, "rows": int(total), "rows_left": left,
        "rows_without_text": int(no_text), "in_progress": active is not None,
        "passages_per_second": rate, "sample": len(sample),
        "estimate_seconds": left / rate if rate else None,
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m lib.reembed",
        description="Re-embed a table's rows with another model, with zero downtime.",
    )
    ap.add_argument("--table", required=True, help="schema.table")
    ap.add_argument("--key", required=True, help="its key column (unique, ordered)")
    ap.add_argument("--text", required=True, help="the column the vectors are made from")
    ap.add_argument("--from-column", required=True, help="the current vector column")
    ap.add_argument("--from-model", required=True, help="the model that made it")
    ap.add_argument("--to-model", required=True, help="the model to re-embed with")
    ap.add_argument("--to-column", help="the shadow column (default <from-column>_<model>)")
    ap.add_argument("--batch", type=int, default=rm.BATCH, help="rows per transaction")
    ap.add_argument("--sample", type=int, default=SAMPLE, help="rows the dry run embeds")
    group = ap.add_mutually_exclusive_group()
    group.add_argument("--dry-run", action="store_true", help="print, estimate, change nothing")
    group.add_argument("--cutover", action="store_true", help="then switch readers' view")
    group.add_argument("--rollback", action="store_true", help="switch the view back")
    group.add_argument("--finish", action="store_true", help="drop the unused column")
    ap.add_argument("--database-url", help="default: DATABASE_URL, else the embedded server")
    args = ap.parse_args(argv)
    if args.batch < 1 or args.sample < 1:
        ap.error("--batch and --sample are 1 or more")

    def say(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    def out(obj: dict) -> None:
        print(json.dumps(obj, default=str), flush=True)

    try:
        db = open_database(args.database_url)
        db.check()
    except DatabaseUnavailable as e:
        out({"error": str(e)})
        return 1
    stop = threading.Event()
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(
            signal.SIGINT, lambda *_: (say("stopping after this batch…"), stop.set())
        )
    try:
        if args.dry_run:
            out(dry_run(db, args, say))
            return 0
        if args.rollback or args.finish:
            r = rm.Reembed.active(db, args.table)
            if r is None:
                raise rm.ReembedError(f"{args.table} has no migration in progress")
            if args.rollback:
                r.rollback()
                say(f"{r.m.view} serves {r.m.from_model} again ({r.m.from_column})")
                out({"state": "rolled_back", **_run(r)})
            else:
                state = r.finish()
                dropped = r.m.from_column if state == "finished" else r.m.to_column
                say(f"dropped {dropped}")
                out({"state": state, "dropped": dropped, **_run(r, done=True)})
            return 0
        r = rm.Reembed.plan(db, args.table, key=args.key, text=args.text,
                            from_column=args.from_column, from_model=args.from_model,
                            to_model=args.to_model, to_column=args.to_column or "")  # fmt: skip
        p = r.progress()
        say(f"{r.m.label}: {p.state}, {p.rows_done:,} of {p.rows_total:,} rows embedded by "
            f"{r.m.to_model} into {r.m.to_column}")  # fmt: skip

        def on_batch(b: rm.Backfill) -> None:
            say(f"  {b.rows:,} rows in {b.seconds:.1f} s ({b.rows_per_second:,.0f} rows/s; "
                f"embedding {b.embed_rate:,.0f} passages/s)")  # fmt: skip

        state = p.state
        done = None
        if state in ("planned", "backfilling", "indexing", "ready"):
            done = r.backfill(batch=args.batch, stop=stop.is_set, on_batch=on_batch)
            if done.stopped:
                out({"state": r.progress().state, "stopped": True, **_run(r), **_bf(done)})
                return 130
            if r.progress().state != "ready":
                say(f"building {r.m.index_name} concurrently…")
                seconds = r.build_index(batch=args.batch)
                say(f"  built in {seconds:.1f} s")
        if args.cutover:
            r.cutover()
            say(f"{r.m.view} now serves {r.m.to_model}'s vectors ({r.m.to_column})")
        out({"state": r.progress().state, **_run(r), **(_bf(done) if done else {})})
        return 0
    except (
        rm.ReembedError, EmbeddingError, ValueError, LookupError, OSError, DatabaseUnavailable,
        psycopg.Error,
    ) as e:  # fmt: skip
        out({"error": str(e).strip()})
        return 1
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
        db.close()


def _run(r: rm.Reembed, done: bool = False) -> dict:
    m = r.m
    about = {"table": m.label, "from_model": m.from_model, "to_model": m.to_model,
             "from_column": m.from_column, "to_column": m.to_column, "view": m.view}  # fmt: skip
    if done:
        return about
    return {**about, **asdict(r.progress())}


def _bf(b: rm.Backfill) -> dict:
    return {"backfill": {**asdict(b), "rows_per_second": b.rows_per_second,
                         "embed_rate": b.embed_rate}}  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
