"""Vectors with the structure of real embeddings, at any size, from a seeded generator.

The recall tables hold real passage vectors as far as the corpus goes
(lib/dataset/passages.py); past them, rows come from here. `fit_generator` learns the shape of
real vectors (k-means clusters, each with its own principal directions and variances, plus a
residual shared by every cluster) and `Generator.sample` draws as many more as needed,
normalised to unit length. Every number comes from the fit; how generated rows compare with
real ones is measured by lib/lessons/recall/generator_check.py.

Row `i` of a dataset is always the same vector whatever the dataset's size (chunks are
seeded by their index), so the 5,000-row table is the first 5,000 rows of the 50,000-row one.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

VERSION = 1
CHUNK = 8192
POINTS_PER_CLUSTER = 8
RANK = 2
RESIDUAL_RANK = 128


@dataclass(frozen=True)
class Generator:
    """A fitted mixture: per-cluster mean, low-rank directions and scales; shared residual."""

    weights: np.ndarray  # (K,) cluster probabilities
    means: np.ndarray  # (K, d)
    directions: np.ndarray  # (K, rank, d) orthonormal rows
    scales: np.ndarray  # (K, rank) standard deviations along them
    residual_size: np.ndarray  # (K,) root of the cluster's mean squared residual norm
    residual_directions: np.ndarray  # (R, d) shared residual directions
    residual_scales: np.ndarray  # (R,)
    residual_tail: float  # isotropic standard deviation beyond the R directions

    @property
    def dimension(self) -> int:
        return self.means.shape[1]

    def fingerprint(self) -> str:
        """A hash of every fitted number: the same fingerprint draws the same vectors."""
        h = hashlib.sha256(f"synthetic v{VERSION}".encode())
        for name in self.__dataclass_fields__:
            h.update(np.ascontiguousarray(getattr(self, name), dtype=np.float64).tobytes())
        return h.hexdigest()[:16]

    def sample(self, n: int, seed: int | tuple[int, ...]) -> np.ndarray:
        """`n` unit vectors (float32), the same ones for the same seed."""
        rng = np.random.default_rng(seed)
        labels = rng.choice(len(self.weights), size=n, p=self.weights)
        d = self.dimension
        shared = rng.standard_normal((n, len(self.residual_scales)), dtype=np.float32)
        e = (shared * self.residual_scales.astype(np.float32)) @ self.residual_directions.astype(
            np.float32
        )
        e += rng.standard_normal((n, d), dtype=np.float32) * np.float32(self.residual_tail)
        e *= (
            self.residual_size[labels] / _expected_norm(self.residual_scales, self.residual_tail, d)
        )[:, None].astype(np.float32)
        u = self.directions[labels].astype(np.float32)  # (n, rank, d)
        e -= np.einsum(
            "nr,nrd->nd", np.einsum("nd,nrd->nr", e, u), u
        )  # keep off the cluster's own directions
        within = rng.standard_normal((n, self.scales.shape[1]), dtype=np.float32)
        within *= self.scales[labels].astype(np.float32)
        out = self.means[labels].astype(np.float32) + np.einsum("nr,nrd->nd", within, u) + e
        out /= np.linalg.norm(out, axis=1, keepdims=True)
        return out

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        np.savez(buf, **{k: getattr(self, k) for k in self.__dataclass_fields__})
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(buf.getvalue())
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> Generator:
        with np.load(path) as z:
            fields = {k: z[k] for k in cls.__dataclass_fields__}
        fields["residual_tail"] = float(fields["residual_tail"])
        return cls(**fields)


def _expected_norm(scales: np.ndarray, tail: float, d: int) -> float:
    return float(np.sqrt((scales**2).sum() + tail**2 * (d - len(scales))))


def fit_generator(real: np.ndarray, *, seed: int = 0) -> Generator:
    """Fit the mixture to `real` unit vectors (n, d); deterministic for a given input."""
    from sklearn.cluster import KMeans

    x = np.asarray(real, dtype=np.float64)
    n, d = x.shape
    k = max(1, min(n // POINTS_PER_CLUSTER, n))
    labels = KMeans(k, n_init=1, random_state=seed).fit(x).labels_
    weights, means, directions, scales, sizes, residuals = [], [], [], [], [], []
    for c in range(k):
        xc = x[labels == c]
        if len(xc) == 0:
            continue
        mu = xc.mean(axis=0)
        dev = xc - mu
        _, s, vt = np.linalg.svd(dev, full_matrices=False)
        u = np.zeros((RANK, d))
        sd = np.zeros(RANK)
        r = min(RANK, len(s), max(len(xc) - 1, 0))
        u[:r] = vt[:r]
        sd[:r] = s[:r] / np.sqrt(max(len(xc) - 1, 1))
        res = dev - (dev @ u.T) @ u
        weights.append(len(xc))
        means.append(mu)
        directions.append(u)
        scales.append(sd)
        sizes.append(np.sqrt((res**2).sum() / max(len(xc) - 1, 1)))
        residuals.append(res)
    pooled = np.concatenate(residuals)
    _, s, vt = np.linalg.svd(pooled, full_matrices=False)
    r = min(RESIDUAL_RANK, len(s))
    tail_var = (s[r:] ** 2).sum() / len(pooled) / max(d - r, 1)
    w = np.asarray(weights, dtype=np.float64)
    return Generator(
        weights=w / w.sum(),
        means=np.asarray(means),
        directions=np.asarray(directions),
        scales=np.asarray(scales),
        residual_size=np.asarray(sizes),
        residual_directions=vt[:r],
        residual_scales=s[:r] / np.sqrt(len(pooled)),
        residual_tail=float(np.sqrt(tail_var)),
    )


def cached_generator(real: np.ndarray, cache_dir: Path, *, seed: int = 0) -> Generator:
    """`fit_generator(real)`, fitted once per input and kept on disk.

    k-means results can differ in the last bits between machines and thread counts; keeping
    the fit makes the generated rows, and so the tables built from them, stable here.
    """
    key = hashlib.sha256(np.ascontiguousarray(real, dtype=np.float32).tobytes())
    key.update(f"v{VERSION} seed{seed}".encode())
    path = cache_dir / f"synthetic-{key.hexdigest()[:16]}.npz"
    if path.exists():
        try:
            return Generator.load(path)
        except (OSError, KeyError, ValueError):
            pass
    gen = fit_generator(real, seed=seed)
    gen.save(path)
    return gen


def rows(
    real: np.ndarray, gen: Generator, n: int, *, seed: int, start: int = 0
) -> Iterator[np.ndarray]:
    """Rows `start` .. `n - 1` of the dataset, in chunks: `real` first, then generated ones.

    Generated row `i` (counting past the real ones) comes from chunk `i // CHUNK`, drawn with
    seed `(seed, chunk)`, so every size's dataset is a prefix of every larger one's.
    """
    n_real = len(real)
    pos = start
    while pos < min(n, n_real):
        stop = min(n, n_real, pos + CHUNK)
        yield np.asarray(real[pos:stop], dtype=np.float32)
        pos = stop
    while pos < n:
        chunk = (pos - n_real) // CHUNK
        chunk_start = n_real + chunk * CHUNK
        block = gen.sample(CHUNK, (seed, chunk))
        stop = min(n, chunk_start + CHUNK)
        yield block[pos - chunk_start : stop - chunk_start]
        pos = stop


def dataset(real: np.ndarray, gen: Generator, n: int, *, seed: int) -> np.ndarray:
    """All `n` rows at once (for tests and the bench's numpy comparison)."""
    parts = list(rows(real, gen, n, seed=seed))
    return np.concatenate(parts) if parts else np.zeros((0, real.shape[1]), np.float32)


def nearest_similarities(x: np.ndarray, against: np.ndarray | None = None) -> np.ndarray:
    """Cosine similarity of each row of `x` to its nearest neighbour (in `against`, else in
    `x` itself, excluding the row)."""
    x = np.asarray(x, dtype=np.float32)
    other = x if against is None else np.asarray(against, dtype=np.float32)
    best = np.empty(len(x), dtype=np.float32)
    for i in range(0, len(x), 1024):
        s = x[i : i + 1024] @ other.T
        if against is None:
            s[np.arange(s.shape[0]), np.arange(i, i + s.shape[0])] = -np.inf
        best[i : i + 1024] = s.max(axis=1)
    return best
