"""Vectors of the shipped corpus: committed for the default model, cached on disk for others.

python -m lib.vectors build     # re-embed the corpus with the default model (make vectors)
python -m lib.vectors check     # confirm the committed vectors match the corpus and model
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from lib.corpus import DATA_DIR, CorpusItem, Passage, content_hash, load_items, load_passages
from lib.embeddings.base import EmbeddingModel, checked_vectors
from lib.embeddings.cache import EmbeddingCache
from lib.embeddings.local import MINILM

PROJECT_DIR = Path(__file__).resolve().parent.parent
VECTORS_DIR = DATA_DIR / "vectors"
# EMBEDDING_CACHE_PATH moves the cache (tests whose models are fakes keep theirs apart).
CACHE_ENV = "EMBEDDING_CACHE_PATH"
CACHE_PATH = PROJECT_DIR / ".cache" / "embeddings.sqlite"
BATCH = 64

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


def _default_cache() -> EmbeddingCache:
    return EmbeddingCache(Path(os.environ.get(CACHE_ENV) or CACHE_PATH))


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
    cache = cache or _default_cache()
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
    from lib.embeddings.registry import load_model

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
    from lib.embeddings.registry import load_model

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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lib.vectors", description=__doc__.split("\n")[0])
    ap.add_argument("command", choices=["build", "check"])
    ap.add_argument("--model", default=MINILM.name)
    args = ap.parse_args(argv)
    if args.command == "build":
        build(args.model)
        return 0
    return check(args.model)


if __name__ == "__main__":
    sys.exit(main())
