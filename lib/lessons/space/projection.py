"""A 2-D picture of an embedding space: PCA fitted on one model's vectors, and its inverse.

    >>> p = fit_projection(vectors, normalize=True)
    >>> xy = p.transform(vectors)          # (n, 2): where each vector lands on the map
    >>> back = p.inverse([[0.1, -0.2]])    # (1, d): a map position sent back into d dimensions

The inverse of a 2-D position is the d-dimensional point PCA would reconstruct there
(the mean plus the two axes scaled by the coordinates), scaled to unit length when the
model's own vectors have unit length, so that it can be compared with them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.decomposition import PCA

from lib.core.embeddings.base import InvalidVector, checked_vectors


@dataclass(frozen=True)
class Projection:
    """PCA to two axes: `mean` (d,), `components` (2, d), the variance each axis explains."""

    mean: np.ndarray
    components: np.ndarray
    explained: tuple[float, float]
    normalize: bool

    @property
    def dimension(self) -> int:
        return int(self.mean.shape[0])

    def transform(self, vectors: np.ndarray) -> np.ndarray:
        """Map positions (n, 2) of d-dimensional vectors (n, d) or (d,)."""
        arr = checked_vectors(vectors, self.dimension)
        return ((arr - self.mean) @ self.components.T).astype(np.float64)

    def inverse(self, points: np.ndarray | list) -> np.ndarray:
        """Vectors (n, d) for map positions (n, 2) or (2,), unit length if the model's are."""
        pts = np.asarray(points, dtype=np.float64)
        if pts.ndim == 1:
            pts = pts[None, :]
        if pts.ndim != 2 or pts.shape[1] != 2:
            raise InvalidVector(f"expected map positions of shape (n, 2), got {pts.shape}")
        if not np.isfinite(pts).all():
            raise InvalidVector("a map position contains NaN or infinity")
        out = self.mean + pts @ self.components
        if self.normalize:
            norms = np.linalg.norm(out, axis=1, keepdims=True)
            out = out / np.where(norms > 0, norms, 1.0)
        return checked_vectors(out, self.dimension, len(pts))


def fit_projection(vectors: np.ndarray, *, normalize: bool) -> Projection:
    """Fit PCA with two components on `vectors` (n, d), n >= 3; deterministic."""
    arr = checked_vectors(vectors, np.asarray(vectors).shape[-1])
    if len(arr) < 3:
        raise ValueError(f"a map needs at least 3 vectors, got {len(arr)}")
    pca = PCA(n_components=2, svd_solver="full").fit(arr.astype(np.float64))
    mean = pca.mean_.copy()
    components = pca.components_.copy()
    mean.setflags(write=False)
    components.setflags(write=False)
    ratio = pca.explained_variance_ratio_
    return Projection(mean, components, (float(ratio[0]), float(ratio[1])), normalize)
