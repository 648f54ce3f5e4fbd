"""Real vectors at scale, benchmarked: the corpus, its embedding, real against generated rows.

    .venv/bin/python bench/bench_real.py                     # 5k, 50k, 200k and 500k rows
    .venv/bin/python bench/bench_real.py --sizes 5000,50000

Prints (1) the corpus: passages and compressed size per source; (2) the embedding: the rate
of a fresh run of 2,048 passages now, and the runs this machine's cache recorded (how long
the whole corpus took); (3) real against generated rows at the same sizes
(lib/lessons/recall/generator_check.py): LID and relative contrast of the held-out real
queries, and recall@10 of HNSW (m = 16, ef_construction = 64) at ef_search 10, 20 and the
default 40;
(4) each size's preparation as recorded (its load, its index build, the embedding its job
did). Builds what is missing (the generated tables take minutes at 500k rows); results are
stored for the Recall page.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lib.core import chunks
from lib.core.database import open_database  # noqa: E402
from lib.core.embeddings.cache import EmbeddingCache  # noqa: E402
from lib.core.embeddings.registry import load_model  # noqa: E402
from lib.core.vectors import cache_path, duration, embed_missing  # noqa: E402
from lib.dataset import recall_tables  # noqa: E402
from lib.dataset.passages import load_dataset  # noqa: E402
from lib.harness import size_jobs as jobs
from lib.lessons.recall import generator_check

SIZES = (5_000, 50_000, 200_000, 500_000)
SAMPLE = 2048


def corpus_figures() -> None:
    print("== corpus (data/chunks/, scripts/extract_chunks.py)")
    total_bytes = total = 0
    for s in chunks.read_sources():
        size = (chunks.CHUNKS_DIR / s.file).stat().st_size
        total_bytes += size
        total += s.passages
        print(f"  {s.name:<11} {s.passages:>8,} passages  {size / 1e6:5.1f} MB  {s.origin()}")
    print(f"  {'all':<11} {total:>8,} passages  {total_bytes / 1e6:5.1f} MB of xz committed")
    distinct = len(chunks.load_chunks())
    print(f"  {distinct:,} distinct texts (a passage met again in another manual counts once)")


def embedding_figures(ds) -> None:
    print("\n== embedding (all-MiniLM-L6-v2, lib.vectors.embed_missing)")
    model = load_model(ds.model_name)
    sample = [ds.corpus.text(int(i)) for i in ds.order[-SAMPLE:]]
    hashes = [chunks.content_hash(t) for t in sample]
    with tempfile.TemporaryDirectory() as tmp:
        cache = EmbeddingCache(Path(tmp) / "c.sqlite")
        model.embed(sample[:64])  # load the weights
        report = embed_missing(model, hashes, lambda idx: [sample[i] for i in idx], cache=cache)
    print(f"  now: {SAMPLE:,} passages in {report.seconds:.1f} s = {report.rate:,.0f}/s")
    conn = EmbeddingCache(cache_path())._conn()
    runs = conn.execute(
        "SELECT texts, seconds, finished_at FROM embedding_run WHERE model = ?"
        " ORDER BY finished_at",
        (ds.model_name,),
    ).fetchall()
    for texts, seconds, at in runs:
        if texts >= 1000:
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(at))
            print(
                f"  run finished {when}: {texts:,} passages in {duration(seconds)} "
                f"= {texts / seconds:,.0f}/s"
            )
    print(f"  cached now: {ds.embedded():,} of {len(ds.hashes):,} passages in {cache_path()}")


def preparation_figures(db, ds, sizes) -> None:
    print("\n== preparation of each size (as recorded: load and index build; its job, if one ran)")
    for n in sizes:
        status = recall_tables.table_status(db, ds, n)
        if not status.loaded:
            print(f"  {n:>9,}  not loaded")
            continue
        parts = [f"load {duration(status.load_seconds or 0)}"]
        if status.index and status.index.build_seconds:
            parts.append(f"{status.index.label()} built in {duration(status.index.build_seconds)}")
        job = jobs.last(db, n)
        if job is not None and job.state == "done" and job.loaded:
            if job.embed_seconds:
                parts.insert(0, f"embedding {job.embed_total:,} in {duration(job.embed_seconds)}")
            parts.append(f"job {duration(job.elapsed())} in all")
        print(f"  {n:>9,}  " + ", ".join(parts) + f"; loaded {status.loaded_at:%Y-%m-%d %H:%M}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default=",".join(str(n) for n in SIZES))
    args = ap.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    db = open_database()
    ds = load_dataset()
    corpus_figures()
    embedding_figures(ds)
    checks = []
    print(f"\n== real against generated rows ({ds.n_real:,} real rows, then generated)")
    for n in sizes:
        t0 = time.perf_counter()
        checks.append(generator_check.run_check(db, ds, n))
        print(f"  {n:,} rows checked in {duration(time.perf_counter() - t0)}", flush=True)
    print("\n".join("  " + line for line in generator_check.lines(checks)))
    print(
        "  LID: local intrinsic dimensionality (k = 100); RC: relative contrast (k = 10); NN "
        "sim: median cosine similarity of a query's nearest row; ef N: recall@10 at "
        "hnsw.ef_search = N (40 is the default)."
    )
    preparation_figures(db, ds, sizes)
    db.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
