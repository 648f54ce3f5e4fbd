"""How hard a set of rows is for nearest-neighbour search, by the measures of the ANN literature
(Aumüller and Ceccarello, "The role of local intrinsic dimensionality in benchmarking nearest
neighbor search", SISAP 2019), for each query:

- its **local intrinsic dimensionality** (LID): how fast the number of rows grows with the
  distance around it, estimated from its k = 100 nearest distances (the maximum-likelihood
  "Hill" estimator); higher means the neighbours are crowded at similar distances;
- its **relative contrast** (RC): the mean distance to every row over the distance to its
  k-th nearest (k = 10); near 1 means the nearest rows barely stand out.

Distances are Euclidean between unit vectors (the cosine ranking, sqrt(2 - 2 cos)), computed
exactly with numpy, in blocks.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

LID_K = 100
RC_K = 10


@dataclass(frozen=True)
class QueryDistances:
    """For each query: its nearest distances (sorted, the first `k`) and the mean distance to
    every row."""

    nearest: np.ndarray  # (q, k)
    mean: np.ndarray  # (q,)
    rows: int


def query_distances(
    queries: np.ndarray, blocks: Iterable[np.ndarray], k: int = LID_K
) -> QueryDistances:
    """Exact nearest distances and mean distance of every query to the rows in `blocks`."""
    q = np.asarray(queries, dtype=np.float32)
    best = np.full((len(q), 0), np.inf, dtype=np.float32)
    total = np.zeros(len(q), dtype=np.float64)
    rows = 0
    for block in blocks:
        b = np.asarray(block, dtype=np.float32)
        d = np.sqrt(np.maximum(2.0 - 2.0 * (q @ b.T), 0.0))
        total += d.sum(axis=1, dtype=np.float64)
        rows += len(b)
        merged = np.concatenate([best, d], axis=1)
        keep = min(k, merged.shape[1])
        best = np.partition(merged, keep - 1, axis=1)[:, :keep]
    if rows < k + 1:
        raise ValueError(f"{rows} rows are too few for k = {k}")
    return QueryDistances(np.sort(best, axis=1), total / rows, rows)


def lid(nearest: np.ndarray, k: int = LID_K) -> np.ndarray:
    """The Hill estimate of each query's LID from its sorted nearest distances (q, >= k).

    With w the k-th distance: LID = -m / sum(log(d_i / w)) over the m distances in (0, w],
    using log1p((d - w) / w) for distances above w/2, as ELKI does, for precision."""
    d = np.asarray(nearest, dtype=np.float64)[:, :k]
    w = d[:, -1:]
    valid = d > 1e-5
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.where(d < w / 2, np.log(d / w), np.log1p((d - w) / w))
    s = np.where(valid, logs, 0.0).sum(axis=1)
    return -valid.sum(axis=1) / s


def relative_contrast(distances: QueryDistances, k: int = RC_K) -> np.ndarray:
    """Each query's mean distance to every row over its distance to its k-th nearest."""
    return distances.mean / distances.nearest[:, k - 1].astype(np.float64)


@dataclass(frozen=True)
class Hardness:
    """Summary of LID and RC over a query set against one set of rows."""

    rows: int
    lid_median: float
    lid_p90: float
    rc_median: float
    rc_p10: float
    nearest_similarity_median: float  # cosine similarity of each query's nearest row

    @classmethod
    def of(cls, distances: QueryDistances) -> Hardness:
        lids = lid(distances.nearest)
        rcs = relative_contrast(distances)
        nearest_cos = 1.0 - distances.nearest[:, 0].astype(np.float64) ** 2 / 2.0
        return cls(
            rows=distances.rows,
            lid_median=float(np.median(lids)),
            lid_p90=float(np.percentile(lids, 90)),
            rc_median=float(np.median(rcs)),
            rc_p10=float(np.percentile(rcs, 10)),
            nearest_similarity_median=float(np.median(nearest_cos)),
        )


def hardness(queries: np.ndarray, blocks: Iterable[np.ndarray]) -> Hardness:
    """LID (k = 100) and RC (k = 10) of `queries` against the rows in `blocks`."""
    return Hardness.of(query_distances(queries, blocks, k=max(LID_K, RC_K)))
