"""Throughput of each offline model in passages per second, on the passages `make prepare` embeds.

    .venv/bin/python bench/bench_model.py [--passages 512] [--threads 1,2] [--models a,b]

Embeds the first passages of the recall tables' real corpus (data/chunks/, in table order, the
order `make prepare` embeds them) on the CPU in batches of `make prepare`'s size, after one
warm-up batch, with 1 thread (what the app gives a query) and with every core (what
`make prepare` uses), and prints passages/s for each model. Then each model's cosine to
all-MiniLM-L6-v2 (fp32, torch) on the same passages: the int8 export is nearly the same space,
paraphrase-MiniLM-L3-v2 another one. Run it with nothing else busy; on a shared machine the
one-thread figure per CPU-second is the steadier one.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

from lib.core.chunks import load_chunks  # noqa: E402
from lib.core.embeddings import onnx_local  # noqa: E402
from lib.core.embeddings.local import MINILM  # noqa: E402
from lib.core.embeddings.registry import load_model, model_choices  # noqa: E402

LOCAL = [MINILM.name, *onnx_local.SPECS]


def set_threads(n: int) -> None:
    import torch

    torch.set_num_threads(n)
    onnx_local.set_threads(n)


def timed(name: str, texts: list[str], batch: int) -> tuple[float, float, np.ndarray]:
    """(passages per second, passages per CPU-second, vectors) of a fresh `name` model (its
    sessions take the threads set now). On one thread the second is what an idle core gives,
    whatever else the machine runs meanwhile."""
    model = load_model(name)
    model.embed(texts[:batch])  # load and warm up
    t0, c0 = time.perf_counter(), time.process_time()
    out = [model.embed(texts[i : i + batch]) for i in range(0, len(texts), batch)]
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return len(texts) / wall, len(texts) / cpu, np.concatenate(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--passages", type=int, default=512)
    ap.add_argument("--batch", type=int, default=512, help="texts per call (make prepare's)")
    ap.add_argument("--threads", default=f"1,{os.cpu_count()}")
    ap.add_argument("--models", default=",".join(LOCAL))
    args = ap.parse_args()
    available = {c.info.name for c in model_choices() if c.available}
    names = [n for n in args.models.split(",") if n in available]
    corpus = load_chunks()
    texts = corpus.texts(corpus.dataset_order()[: args.passages])
    chars = [len(t) for t in texts]
    print(
        f"{len(texts)} passages of the recall corpus (median {statistics.median(chars):.0f}, "
        f"mean {statistics.mean(chars):.0f} characters), batches of {args.batch}, "
        f"{os.cpu_count()} cores"
    )
    vectors: dict[str, np.ndarray] = {}
    rates: dict[tuple[str, int], float] = {}
    for threads in [int(t) for t in args.threads.split(",")]:
        set_threads(threads)
        for name in names:
            rate, per_cpu, vecs = timed(name, texts, args.batch)
            rates[name, threads] = rate
            vectors.setdefault(name, vecs)
            base = rates.get((MINILM.name, threads))
            versus = f"  ({rate / base:.1f}× {MINILM.name})" if base and name != MINILM.name else ""
            print(
                f"{name:>26}, {threads} thread(s): {rate:7.1f} passages/s, "
                f"{per_cpu:7.1f} per CPU-second{versus}"
            )
    if MINILM.name in vectors:
        ref = vectors[MINILM.name]
        for name, vecs in vectors.items():
            if name != MINILM.name:
                cos = (vecs * ref).sum(axis=1)
                print(
                    f"cosine {name} to {MINILM.name} on the same passages: "
                    f"mean {cos.mean():.4f}, min {cos.min():.4f}"
                )


if __name__ == "__main__":
    main()
