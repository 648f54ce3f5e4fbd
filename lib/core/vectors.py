"""Vectors of the shipped corpus: committed for the default model, cached on disk for others.

python -m lib.core.vectors build     # re-embed the corpus with the default model (make vectors)
python -m lib.core.vectors check     # confirm the committed vectors match the corpus and model
python -m lib.core.vectors chunks    # embed the recall tables' real corpus (data/chunks/) into the
                                # cache, in table order, with a progress bar; resumable

The real corpus of the recall tables (lib/core/chunks.py, about 300,000 passages) is never
committed as vectors: `embed_missing` embeds what the on-disk cache lacks, in batches, each
batch stored before the next starts, so an interrupted run loses at most one batch and the
next run starts where it stopped.
"""

from __future__ import annotations

import argparse
import atexit
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lib.core.corpus import DATA_DIR, CorpusItem, Passage, content_hash, load_items, load_passages
from lib.core.embeddings.base import EmbeddingModel, checked_vectors
from lib.core.embeddings.cache import EmbeddingCache
from lib.core.embeddings.local import MINILM
from lib.core.embeddings.onnx_local import MINILM_INT8, MINILM_L3

PROJECT_DIR = Path(__file__).resolve().parents[2]
VECTORS_DIR = DATA_DIR / "vectors"
# EMBEDDING_CACHE_PATH moves the cache (tests whose models are fakes keep theirs apart).
CACHE_ENV = "EMBEDDING_CACHE_PATH"
CACHE_PATH = PROJECT_DIR / ".cache" / "embeddings.sqlite"
BATCH = 64
# Texts per model call and per cache write for long runs: an interruption loses at most this.
EMBED_BATCH = 512
# Documentation passages (median 96 characters) per second, measured embedding the recall
# corpus with all-MiniLM-L6-v2 on one thread of the shared 2-core development machine (very
# short texts such as the lesson's go about ten times faster); estimates use it until this
# machine has timed a run of its own. The ONNX models' figures are passages per CPU-second on
# one thread of that machine, recall-corpus passages (bench/bench_model.py).
DEFAULT_RATES = {MINILM.name: 80.0, MINILM_L3.name: 200.0, MINILM_INT8.name: 80.0}

Progress = Callable[[int, int], None]


def passage_hash(passage: Passage) -> str:
    import hashlib

    return hashlib.sha256(f"passage\0{passage.text}".encode()).hexdigest()


def committed_path(model_name: str, name: str) -> Path:
    return VECTORS_DIR / model_name / f"{name}.npz"


def _committed(model_name: str, name: str) -> dict[str, np.ndarray]:
    path = committed_path(model_name, name)
    if not path.exists():
        return {}
    with np.load(path) as z:
        return dict(zip(z["hashes"].tolist(), z["vectors"], strict=True))


def cache_path() -> Path:
    return Path(os.environ.get(CACHE_ENV) or CACHE_PATH)


def default_cache() -> EmbeddingCache:
    return EmbeddingCache(cache_path())


def embed_with_cache(
    model: EmbeddingModel,
    hashes: Sequence[str],
    load_input: Callable[[int], object],
    *,
    committed: str | None = None,
    cache: EmbeddingCache | None = None,
    progress: Progress | None = None,
) -> np.ndarray:
    """Vectors for every hash, from the committed file, then the cache, then the model."""
    name, dim = model.info.name, model.info.dimension
    known = _committed(name, committed) if committed else {}
    cache = cache or default_cache()
    missing_hashes = [h for h in hashes if h not in known]
    known.update(cache.get_many(name, dim, missing_hashes))
    todo = [i for i, h in enumerate(hashes) if h not in known]
    for start in range(0, len(todo), BATCH):
        idx = todo[start : start + BATCH]
        vecs = model.embed([load_input(i) for i in idx], input_type="document")
        batch_hashes = [hashes[i] for i in idx]
        cache.put_many(name, batch_hashes, vecs)
        known.update(zip(batch_hashes, vecs, strict=True))
        if progress:
            progress(start + len(idx), len(todo))
    out = np.stack([known[h] for h in hashes]) if hashes else np.zeros((0, dim), np.float32)
    return checked_vectors(out, dim, len(hashes))


@dataclass(frozen=True)
class EmbedProgress:
    """Where a run of `embed_missing` stands."""

    done: int  # texts embedded by this run so far
    todo: int  # texts this run has to embed
    cached: int  # texts found in the cache when it started
    seconds: float  # since it started

    @property
    def rate(self) -> float | None:
        return self.done / self.seconds if self.done and self.seconds > 0 else None

    @property
    def eta(self) -> float | None:
        """Seconds left at the rate so far."""
        return (self.todo - self.done) / self.rate if self.rate else None

    def text(self) -> str:
        """'12,288 of 295,000 passages embedded (850/s), about 5 min left'."""
        words = f"{self.done:,} of {self.todo:,} passages embedded"
        if self.cached:
            words += f" ({self.cached:,} were cached)"
        if self.rate:
            words += f", {self.rate:,.0f}/s"
            if self.done < self.todo:
                words += f", about {duration(self.eta or 0)} left"
        return words


@dataclass(frozen=True)
class EmbedReport:
    """What a run of `embed_missing` did."""

    asked: int
    cached: int
    embedded: int
    seconds: float

    @property
    def rate(self) -> float | None:
        return self.embedded / self.seconds if self.embedded and self.seconds > 0 else None


def duration(seconds: float) -> str:
    """'45 s', '3 min 20 s', '1 h 05 min'."""
    s = int(round(seconds))
    if s < 90:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s" if s < 600 else f"{round(s / 60)} min"
    return f"{s // 3600} h {(s % 3600) // 60:02d} min"


# An embedding run on a daemon thread (a job worker) must not be inside torch when the
# interpreter exits: a thread still in a C++ call then is ended by pthread_exit on its way
# back to Python, through destructors that may not throw, and the process aborts
# ("terminate called without an active exception", pytorch/pytorch#38228). So at exit, a
# run ends the batch it is in and then waits, running no more Python, for the process to end
# (its job stays marked running, and the next worker takes it up again); exit waits for the
# runs to get there.
_exiting = threading.Event()
_runs = 0
_runs_changed = threading.Condition()


@atexit.register
def _end_runs_before_exit(timeout: float = 120) -> None:
    _exiting.set()
    with _runs_changed:
        _runs_changed.wait_for(lambda: _runs == 0, timeout)


def _count_run(delta: int) -> None:
    global _runs
    with _runs_changed:
        _runs += delta
        _runs_changed.notify_all()


def embed_missing(
    model: EmbeddingModel,
    hashes: Sequence[str],
    texts: Callable[[Sequence[int]], list[str]],
    *,
    cache: EmbeddingCache | None = None,
    batch: int = EMBED_BATCH,
    progress: Callable[[EmbedProgress], None] | None = None,
    guard: Callable[[], AbstractContextManager] | None = None,
) -> EmbedReport:
    """Embed, in order and in batches of `batch`, the texts whose hash has no vector of
    `model` in the cache; `texts(positions)` gives the texts at those positions of `hashes`.

    Each batch is written to the cache before the next one is embedded: an interrupted run
    keeps every finished batch, and the next run embeds only the rest. With `guard` (a lock
    shared by every process embedding into this cache), each batch is embedded under it and
    looked up again first, so two runs over the same passages embed each batch once. When
    the process is exiting, the run stops after its batch and never returns."""
    name, dim = model.info.name, model.info.dimension
    cache = cache or default_cache()
    have = cache.known(name, dim, hashes)
    todo: list[int] = []
    queued: set[str] = set()
    for i, h in enumerate(hashes):
        if h not in have and h not in queued:
            queued.add(h)
            todo.append(i)
    cached = len(set(hashes)) - len(todo)
    t0 = time.perf_counter()
    done = 0
    embedded = 0
    _count_run(1)
    try:
        for start in range(0, len(todo), batch):
            if _exiting.is_set():
                break
            idx = todo[start : start + batch]
            with guard() if guard else nullcontext():
                if guard:
                    meanwhile = cache.known(name, dim, [hashes[i] for i in idx])
                    idx = [i for i in idx if hashes[i] not in meanwhile]
                if idx:
                    vectors = model.embed(texts(idx), input_type="document")
                    cache.put_many(name, [hashes[i] for i in idx], vectors)
            embedded += len(idx)
            done = min(len(todo), start + batch)
            if progress:
                progress(EmbedProgress(done, len(todo), cached, time.perf_counter() - t0))
    finally:  # an interrupted run's rate counts too, for the next estimate
        seconds = time.perf_counter() - t0
        if embedded:
            cache.record_run(name, embedded, seconds)
        _count_run(-1)
    if _exiting.is_set():
        threading.Event().wait()  # only a daemon thread gets here: the process is ending
    return EmbedReport(len(hashes), cached, embedded, seconds)


def embedding_rate(model_name: str, cache: EmbeddingCache | None = None) -> tuple[float, str]:
    """Texts per second `model_name` embeds here, and where that figure comes from."""
    measured = (cache or default_cache()).rate(model_name)
    if measured:
        rate, at = measured
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(at))
        return rate, f"measured on this machine ({when})"
    if model_name in DEFAULT_RATES:
        return DEFAULT_RATES[model_name], "as on the 2-core development machine; not timed here"
    return 50.0, "a guess for a model never timed here"


def cached_vectors(
    model_name: str, dimension: int, hashes: Sequence[str], cache: EmbeddingCache | None = None
) -> np.ndarray:
    """The cached vectors of `hashes`, in order; KeyError naming how many are missing."""
    found = (cache or default_cache()).get_many(model_name, dimension, hashes)
    if len(found) < len(set(hashes)):
        missing = len(set(hashes)) - len(found)
        raise KeyError(
            f"{missing:,} of {len(hashes):,} vectors of {model_name} are not cached "
            "(make prepare, or python -m lib.core.vectors chunks, embeds them)"
        )
    if not hashes:
        return np.zeros((0, dimension), np.float32)
    return checked_vectors(np.stack([found[h] for h in hashes]), dimension, len(hashes))


def embeddable(model: EmbeddingModel, items: Sequence[CorpusItem]) -> list[CorpusItem]:
    """The items this model can embed (a text-only model skips the photos)."""
    return [it for it in items if it.kind in model.info.modalities]


def item_vectors(
    model: EmbeddingModel,
    items: Sequence[CorpusItem],
    *,
    cache: EmbeddingCache | None = None,
    progress: Progress | None = None,
) -> np.ndarray:
    """Document vectors of `items`, in order; every item must be embeddable by the model."""

    def load(i: int):
        it = items[i]
        return it.text if it.kind == "text" else it.load_image()

    hashes = [content_hash(it) for it in items]
    return embed_with_cache(model, hashes, load, committed="items", cache=cache, progress=progress)


def passage_vectors(
    model: EmbeddingModel,
    passages: Sequence[Passage],
    *,
    cache: EmbeddingCache | None = None,
    progress: Progress | None = None,
) -> np.ndarray:
    """Document vectors of documentation passages, in order."""
    hashes = [passage_hash(p) for p in passages]
    return embed_with_cache(
        model,
        hashes,
        lambda i: passages[i].text,
        committed="passages",
        cache=cache,
        progress=progress,
    )


def _write(model_name: str, name: str, hashes: list[str], vectors: np.ndarray) -> Path:
    path = committed_path(model_name, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, hashes=np.array(hashes), vectors=vectors.astype(np.float32))
    return path


def build(model_name: str = MINILM.name) -> None:
    """Re-embed the corpus items and passages with `model_name` and write data/vectors/."""
    from lib.core.embeddings.registry import load_model

    model = load_model(model_name)
    items = embeddable(model, load_items())
    passages = load_passages()
    jobs = {
        "items": ([content_hash(it) for it in items], items),
        "passages": ([passage_hash(p) for p in passages], passages),
    }
    for name, (hashes, things) in jobs.items():
        t0 = time.perf_counter()
        chunks = [
            model.embed([_input(x) for x in things[i : i + BATCH]], input_type="document")
            for i in range(0, len(things), BATCH)
        ]
        vecs = np.concatenate(chunks) if chunks else np.zeros((0, model.info.dimension))
        path = _write(model_name, name, hashes, vecs)
        dt = time.perf_counter() - t0
        print(f"{name}: {len(things)} vectors in {dt:.1f} s -> {path.relative_to(PROJECT_DIR)}")


def _input(thing: CorpusItem | Passage):
    if isinstance(thing, Passage) or thing.kind == "text":
        return thing.text
    return thing.load_image()


def check(model_name: str = MINILM.name) -> int:
    """Exit status 0 when the committed vectors cover exactly the current corpus."""
    from lib.core.embeddings.registry import load_model

    model = load_model(model_name)
    ok = True
    for name, hashes in (
        ("items", [content_hash(it) for it in embeddable(model, load_items())]),
        ("passages", [passage_hash(p) for p in load_passages()]),
    ):
        have = _committed(model_name, name)
        missing = [h for h in hashes if h not in have]
        print(f"{name}: {len(hashes) - len(missing)}/{len(hashes)} committed")
        ok &= not missing
    return 0 if ok else 1


def bar(fraction: float, width: int = 30) -> str:
    filled = int(round(fraction * width))
    return "[" + "#" * filled + "." * (width - filled) + f"] {100 * fraction:3.0f}%"


def printer(stream=None) -> Callable[[EmbedProgress], None]:
    """A progress callback that draws a bar (on a terminal) or prints a line every 5%."""
    stream = stream or sys.stdout
    interactive = stream.isatty()
    last = [-1, 0.0]  # the 5% step and the time of the last line printed

    def show(p: EmbedProgress) -> None:
        fraction = p.done / p.todo if p.todo else 1.0
        line = f"{bar(fraction)} {p.text()}"
        if interactive:
            print("\r" + line.ljust(120), end="" if p.done < p.todo else "\n", file=stream)
            stream.flush()
        elif int(fraction * 20) != last[0] or p.seconds - last[1] >= 60 or p.done == p.todo:
            last[:] = [int(fraction * 20), p.seconds]
            print(line, file=stream, flush=True)

    return show


def embed_chunks(
    model_name: str = MINILM.name,
    limit: int | None = None,
    *,
    batch: int = EMBED_BATCH,
    progress: Callable[[EmbedProgress], None] | None = None,
) -> EmbedReport:
    """Embed the recall tables' real corpus (the first `limit` rows in table order) into the
    cache: rows first, so that an interrupted run leaves the smaller sizes ready."""
    from lib.core.chunks import load_chunks
    from lib.core.embeddings.registry import load_model

    corpus = load_chunks()
    order = corpus.dataset_order()[:limit]
    hashes = corpus.hashes()
    return embed_missing(
        load_model(model_name),
        [hashes[i] for i in order],
        lambda idx: corpus.texts(order[i] for i in idx),
        batch=batch,
        progress=progress,
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m lib.core.vectors", description=__doc__.split("\n")[0]
    )
    ap.add_argument("command", choices=["build", "check", "chunks"])
    ap.add_argument("--model", default=MINILM.name)
    ap.add_argument("--limit", type=int, help="chunks: only the first LIMIT rows in table order")
    ap.add_argument("--batch", type=int, default=EMBED_BATCH, help="chunks: texts per batch")
    ap.add_argument("--threads", type=int, help="chunks: model threads (default: one per core)")
    args = ap.parse_args(argv)
    if args.threads:
        import torch

        from lib.core.embeddings import onnx_local

        torch.set_num_threads(args.threads)
        onnx_local.set_threads(args.threads)
    if args.command == "build":
        build(args.model)
        return 0
    if args.command == "chunks":
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop between batches
        rate, source = embedding_rate(args.model)
        print(f"{args.model}: about {rate:,.0f} passages/s ({source}); cache {cache_path()}")
        report = embed_chunks(args.model, args.limit, batch=args.batch, progress=printer())
        took = f" in {duration(report.seconds)} ({report.rate:,.0f}/s)" if report.rate else ""
        print(
            f"{report.asked:,} passages: {report.cached:,} were cached, "
            f"{report.embedded:,} embedded now{took}"
        )
        return 0
    return check(args.model)


if __name__ == "__main__":
    sys.exit(main())
