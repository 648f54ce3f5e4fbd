"""The recall tables' data: the corpus model's real passage vectors split into a held-out
query set and table rows, and the seeded generator that extends the rows past the real ones.

100 real passages are held out as the query set (never in a table), the same at every size;
rows 1..n_real of every table are the other real passages, in a seeded order, and rows past
those come from lib/synthetic.py's generator fitted to them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path

import numpy as np

from lib.corpus import Passage, load_passages
from lib.embeddings.local import MINILM
from lib.synthetic import Generator, cached_generator

PROJECT_DIR = Path(__file__).resolve().parent.parent
CACHE_DIR = PROJECT_DIR / ".cache"
SEED = 0
N_QUERIES = 100


@dataclass(frozen=True)
class Dataset:
    """The corpus model's vectors split into held-out queries and table rows, plus the
    generator that extends the rows past the real ones."""

    model_name: str
    queries: np.ndarray  # (N_QUERIES, d) real passages, never in a table
    query_passages: tuple[Passage, ...]
    real: np.ndarray  # (n_real, d) real passages, rows 1..n_real of every table
    real_passages: tuple[Passage, ...]
    generator: Generator
    seed: int

    @property
    def dimension(self) -> int:
        return self.real.shape[1]

    @property
    def n_real(self) -> int:
        return len(self.real)

    @cached_property
    def _fingerprint(self) -> str:
        h = hashlib.sha256(self.real.tobytes())
        h.update(f"{self.model_name}\0{self.seed}\0{self.generator.fingerprint()}".encode())
        return h.hexdigest()[:16]

    @cached_property
    def queries_fingerprint(self) -> str:
        """A short hash of the held-out query vectors (keys stored ground truths)."""
        return hashlib.sha256(self.queries.tobytes()).hexdigest()[:16]

    def fingerprint(self) -> str:
        """A hash of the rows' source (real vectors, model, seed, generator); computed once."""
        return self._fingerprint

    def real_rows(self, n: int) -> int:
        return min(n, self.n_real)

    def passage_of(self, row_id: int) -> Passage | None:
        """The manual passage behind row `row_id` (ids start at 1), or None if generated."""
        return self.real_passages[row_id - 1] if 1 <= row_id <= self.n_real else None


@lru_cache(maxsize=2)
def load_dataset(model_name: str = MINILM.name, seed: int = SEED) -> Dataset:
    """The dataset of `model_name`'s passage vectors (shared, read-only arrays)."""
    from lib.embeddings.registry import load_model
    from lib.vectors import passage_vectors

    passages = load_passages()
    vectors = passage_vectors(load_model(model_name), passages).astype(np.float32)
    order = np.random.default_rng(seed).permutation(len(passages))
    q, r = order[:N_QUERIES], order[N_QUERIES:]
    real = np.ascontiguousarray(vectors[r])
    queries = np.ascontiguousarray(vectors[q])
    gen = cached_generator(real, CACHE_DIR, seed=seed)
    for a in (real, queries):
        a.setflags(write=False)
    return Dataset(
        model_name=model_name,
        queries=queries,
        query_passages=tuple(passages[i] for i in q),
        real=real,
        real_passages=tuple(passages[i] for i in r),
        generator=gen,
        seed=seed,
    )
