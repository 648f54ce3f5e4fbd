"""Throughput of the local default model (all-MiniLM-L6-v2) in passages per second.

    .venv/bin/python bench/bench_model.py [--passages 512] [--batch 64]

Embeds real PostgreSQL-manual passages from data/pg_docs on the CPU, after one warm-up
batch, and prints passages/s and the mean passage length.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from lib.core.corpus import load_passages  # noqa: E402
from lib.core.embeddings.registry import load_model  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--passages", type=int, default=512)
    ap.add_argument("--batch", type=int, default=64)
    args = ap.parse_args()
    texts = [p.text for p in load_passages(limit=args.passages)]
    model = load_model("all-MiniLM-L6-v2")
    t0 = time.perf_counter()
    model.embed(texts[: args.batch])
    print(f"model load + first batch: {time.perf_counter() - t0:.1f} s")
    t0 = time.perf_counter()
    for i in range(0, len(texts), args.batch):
        model.embed(texts[i : i + args.batch])
    dt = time.perf_counter() - t0
    mean_chars = sum(map(len, texts)) / len(texts)
    print(
        f"{len(texts)} passages (mean {mean_chars:.0f} characters) in {dt:.1f} s: "
        f"{len(texts) / dt:.1f} passages/s with {os.cpu_count()} cores"
    )
    short = ["a small cat"] * 256
    t0 = time.perf_counter()
    model.embed(short)
    dt = time.perf_counter() - t0
    print(f"256 short texts in {dt:.2f} s: {256 / dt:.0f} texts/s")


if __name__ == "__main__":
    main()
