"""The recall tables' data: real passage vectors of the documentation corpus
(lib/core/chunks.py), a held-out query set, and the seeded generator that extends the rows
past the real ones (lib/dataset/synthetic.py).

In table order (by chunk id, a fixed shuffle of every source) the first 100 passages are the
query set, never in a table, the same at every size; the next ones are rows 1..n_real of
every table. Their vectors are the corpus model's, read from the on-disk embedding cache in
blocks when a table is loaded (`embed` fills in what is missing). Rows past n_real come from
the generator, fitted to the first GENERATOR_FIT_ROWS real rows.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from functools import cached_property, lru_cache
from pathlib import Path

import numpy as np

from lib.core.chunks import Chunk, Chunks, load_chunks
from lib.core.embeddings.cache import EmbeddingCache
from lib.core.embeddings.local import MINILM
from lib.core.vectors import (
    EmbedProgress,
    EmbedReport,
    cached_vectors,
    duration,
    embed_missing,
    embedding_rate,
)
from lib.dataset import synthetic
from lib.dataset.synthetic import Generator, cached_generator

PROJECT_DIR = Path(__file__).resolve().parents[2]
# A size whose embedding would take longer than this asks before it starts.
ASK_ABOVE_SECONDS = 60
CACHE_DIR = PROJECT_DIR / ".cache"
SEED = 0
N_QUERIES = 100
# The generator is fitted to this many real rows (k-means with one centroid per 8 of them:
# about 2 minutes here, once per corpus and model, kept in .cache/).
GENERATOR_FIT_ROWS = 20_000
BLOCK = synthetic.CHUNK


@dataclass(frozen=True)
class EmbeddingEstimate:
    passages: int  # to embed before the table can load
    seconds: float
    rate: float  # passages per second
    source: str  # where the rate comes from

    def short(self) -> str:
        return f"{self.passages:,} passages to embed first (about {duration(self.seconds)})"

    def sentence(self) -> str:
        return (
            f"{self.passages:,} passages to embed first: about {duration(self.seconds)} at "
            f"{self.rate:,.0f} passages/s ({self.source})"
        )


class RealRows(Sequence):
    """Rows 1..n of the real part of the tables, read from the embedding cache on demand:
    `rows[a:b]` is a float32 (b - a, d) array, as if the vectors were in memory."""

    def __init__(
        self, model_name: str, dimension: int, hashes: Sequence[str], cache: EmbeddingCache
    ):
        self.model_name = model_name
        self.dimension = dimension
        self.hashes = hashes
        self.cache = cache

    def __len__(self) -> int:
        return len(self.hashes)

    def __getitem__(self, key):  # type: ignore[override]
        if isinstance(key, slice):
            start, stop, step = key.indices(len(self))
            if step != 1:
                raise ValueError("real rows are read in contiguous blocks")
            picked = list(self.hashes[start:stop])
            return cached_vectors(self.model_name, self.dimension, picked, self.cache)
        return self[key : key + 1][0]

    def __array__(self, dtype=None, copy=None):
        parts = [self[i : i + BLOCK] for i in range(0, len(self), BLOCK)]
        out = np.concatenate(parts) if parts else np.zeros((0, self.dimension), np.float32)
        return out if dtype is None else out.astype(dtype)


@dataclass(frozen=True)
class Dataset:
    """The corpus model's passages split into held-out queries and table rows (their vectors
    in the embedding cache), plus the generator that extends the rows past the real ones."""

    model_name: str
    dimension: int
    corpus_digest: str  # lib.core.chunks.digest() of the files the rows come from
    order: np.ndarray  # corpus positions in table order: N_QUERIES queries, then the rows
    hashes: tuple[str, ...]  # their content hashes (the embedding cache's keys), same order
    queries: np.ndarray  # (N_QUERIES, d) real passages, never in a table
    seed: int
    cache_path: Path

    @cached_property
    def corpus(self) -> Chunks:
        """The passages' texts and origins (read when first needed: a few seconds)."""
        return load_chunks()

    @property
    def n_real(self) -> int:
        """Real rows available: every passage of the corpus but the queries."""
        return len(self.hashes) - N_QUERIES

    @cached_property
    def cache(self) -> EmbeddingCache:
        return EmbeddingCache(self.cache_path)

    @cached_property
    def real(self) -> RealRows:
        """Rows 1..n_real (vectors read from the cache when sliced)."""
        return RealRows(self.model_name, self.dimension, self.hashes[N_QUERIES:], self.cache)

    @cached_property
    def _fingerprint(self) -> str:
        h = hashlib.sha256(
            f"{self.corpus_digest}\0{len(self.hashes)}\0{self.model_name}\0{self.seed}"
            f"\0synthetic v{synthetic.VERSION}\0fit {GENERATOR_FIT_ROWS}".encode()
        )
        return h.hexdigest()[:16]

    @cached_property
    def queries_fingerprint(self) -> str:
        """A short hash of the held-out query vectors (keys stored ground truths)."""
        return hashlib.sha256(self.queries.tobytes()).hexdigest()[:16]

    def fingerprint(self) -> str:
        """A hash of what the rows are made of: the corpus files (whose passages, in chunk-id
        order, are the rows), how many rows it has, the model, the seed and the generator's
        recipe (its fit is a function of these)."""
        return self._fingerprint

    def real_rows(self, n: int) -> int:
        return min(n, self.n_real)

    @cached_property
    def query_passages(self) -> tuple[Chunk, ...]:
        return tuple(self.corpus.chunk(int(i)) for i in self.order[:N_QUERIES])

    def passage_of(self, row_id: int) -> Chunk | None:
        """The passage behind row `row_id` (ids start at 1), or None if generated."""
        if 1 <= row_id <= self.n_real:
            return self.corpus.chunk(int(self.order[N_QUERIES + row_id - 1]))
        return None

    def chapters(self, n: int) -> list[str]:
        """The manual and chapter of rows 1..n (real rows only;
        lib.core.chunks.Chunks.chapters)."""
        return self.corpus.chapters(int(i) for i in self.order[N_QUERIES : N_QUERIES + n])

    def sliced(self, n_real: int) -> Dataset:
        """The same dataset with only its first `n_real` real rows (a small slice: its
        generated rows start early and its generator is fitted to those rows)."""
        keep = N_QUERIES + n_real
        return replace(self, order=self.order[:keep], hashes=self.hashes[:keep])

    # -- what a size needs embedded --------------------------------------------------------

    def needed(self, n: int) -> int:
        """Passages whose vectors a table of `n` rows needs (with the queries; with the
        generator's fit rows when it has generated rows)."""
        rows = self.real_rows(n)
        if n > self.n_real:
            rows = max(rows, min(GENERATOR_FIT_ROWS, self.n_real))
        return N_QUERIES + rows

    def embedded(self) -> int:
        """How many passages, from the first in table order, have a cached vector: embedding
        goes in table order, so they are a prefix (found by binary search, a few lookups)."""

        def has(i: int) -> bool:
            return bool(self.cache.known(self.model_name, self.dimension, [self.hashes[i]]))

        lo, hi = 0, len(self.hashes)
        while lo < hi:
            mid = (lo + hi) // 2
            if has(mid):
                lo = mid + 1
            else:
                hi = mid
        return lo

    def missing(self, n: int) -> int:
        """Exactly how many passages a table of `n` rows needs that the cache lacks."""
        hashes = self.hashes[: self.needed(n)]
        return len(hashes) - len(self.cache.known(self.model_name, self.dimension, hashes))

    def to_embed(self, n: int) -> int:
        """About how many passages must be embedded before a table of `n` rows can load."""
        return max(0, self.needed(n) - self.embedded())

    def embedding_estimate(self, n: int) -> EmbeddingEstimate | None:
        """What embedding a table of `n` rows still needs, and how long it should take here
        (None when nothing is missing). Cheap: a binary search and one lookup of the rate."""
        missing = self.to_embed(n)
        if not missing:
            return None
        rate, source = embedding_rate(self.model_name, self.cache)
        return EmbeddingEstimate(missing, missing / rate, rate, source)

    def embed(
        self,
        n: int,
        *,
        progress: Callable[[EmbedProgress], None] | None = None,
        guard: Callable[[], AbstractContextManager] | None = None,
    ) -> EmbedReport:
        """Embed what a table of `n` rows needs and the cache lacks, in table order
        (lib.core.vectors.embed_missing: batches, resumable, each batch under `guard`)."""
        from lib.core.embeddings.registry import load_model

        hashes = self.hashes[: self.needed(n)]
        return embed_missing(
            load_model(self.model_name),
            hashes,
            lambda idx: self.corpus.texts(int(self.order[i]) for i in idx),
            cache=self.cache,
            progress=progress,
            guard=guard,
        )

    # -- rows ------------------------------------------------------------------------------

    @cached_property
    def generator(self) -> Generator:
        """The generator fitted to the first GENERATOR_FIT_ROWS real rows (fitted once, kept
        in .cache/; their vectors must be cached: `embed` sees to it for sizes past n_real)."""
        fit = np.asarray(self.real[: min(GENERATOR_FIT_ROWS, self.n_real)])
        return cached_generator(fit, CACHE_DIR, seed=self.seed)

    def rows(self, n: int, *, start: int = 0) -> Iterator[np.ndarray]:
        """Rows `start`..`n - 1` in blocks: real ones from the cache, then generated ones (the
        generator is fitted only when they are needed)."""
        real_stop = self.real_rows(n)
        for pos in range(start, real_stop, BLOCK):
            yield self.real[pos : min(real_stop, pos + BLOCK)]
        if n > self.n_real:  # the real rows are not read again: `start` is past them
            yield from synthetic.rows(
                self.real, self.generator, n, seed=self.seed, start=max(start, real_stop)
            )


def table_order(cache_dir: Path = CACHE_DIR) -> tuple[str, np.ndarray, tuple[str, ...]]:
    """The corpus digest, passage positions in table order and their content hashes; kept in
    .cache/ per corpus digest (reading and hashing 310,000 passages takes seconds, the kept
    file a fraction of one: the home page needs only this)."""
    from lib.core.chunks import digest as corpus_digest

    key = corpus_digest()
    path = cache_dir / f"chunk-order-{key}.npz"
    try:
        with np.load(path) as z:
            return key, z["order"], tuple(x.decode() for x in z["hashes"].tolist())
    except (OSError, KeyError, ValueError):
        pass
    corpus = load_chunks()
    order = corpus.dataset_order().astype(np.int32)
    all_hashes = corpus.hashes()
    hashes = tuple(all_hashes[i] for i in order)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    with tmp.open("wb") as f:
        np.savez(f, order=order, hashes=np.array(hashes, dtype="S64"))
    tmp.replace(path)
    return key, order, hashes


@lru_cache(maxsize=2)
def load_dataset(
    model_name: str = MINILM.name, seed: int = SEED, cache_path: Path | None = None
) -> Dataset:
    """The dataset of `model_name` over the shipped corpus (shared, read-only). Reads the
    passages and embeds the 100 queries if they are not cached (a second or two); the rows'
    vectors stay in the cache until a table is loaded."""
    from lib.core.embeddings.registry import load_model
    from lib.core.vectors import cache_path as default_cache_path

    digest, order, hashes = table_order()
    path = cache_path or default_cache_path()
    cache = EmbeddingCache(path)
    model = load_model(model_name)
    q = hashes[:N_QUERIES]
    if len(cache.known(model_name, model.info.dimension, q)) < len(q):
        corpus = load_chunks()
        embed_missing(model, q, lambda i: corpus.texts(int(order[j]) for j in i), cache=cache)
    queries = cached_vectors(model_name, model.info.dimension, q, cache)
    queries.setflags(write=False)
    return Dataset(
        model_name=model_name,
        dimension=model.info.dimension,
        corpus_digest=digest,
        order=order,
        hashes=hashes,
        queries=queries,
        seed=seed,
        cache_path=path,
    )
