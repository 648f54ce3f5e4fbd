"""LID and relative contrast (lib/lessons/recall/hardness.py) on data whose dimension is known."""

import numpy as np
import pytest

from lib.lessons.recall.hardness import hardness, lid, query_distances, relative_contrast


def sphere(n: int, intrinsic: int, seed: int, dim: int = 384) -> np.ndarray:
    """`n` unit vectors spread over a (intrinsic - 1)-sphere, turned into `dim` dimensions."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, intrinsic))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    basis, _ = np.linalg.qr(np.random.default_rng(99).standard_normal((dim, intrinsic)))
    return (x @ basis.T).astype(np.float32)


def blocks(x: np.ndarray, size: int = 3000):
    return (x[i : i + size] for i in range(0, len(x), size))


def test_distances_in_blocks_equal_a_full_sort():
    data, queries = sphere(5000, 8, 1), sphere(20, 8, 2)
    got = query_distances(queries, blocks(data, 777), k=30)
    full = np.sqrt(np.maximum(2 - 2 * queries @ data.T, 0))
    assert np.allclose(got.nearest, np.sort(full, axis=1)[:, :30], atol=1e-5)
    assert np.allclose(got.mean, full.mean(axis=1), atol=1e-5)
    assert got.rows == 5000


def test_lid_recovers_the_dimension_of_a_sphere_and_orders_two_of_them():
    queries_low, queries_high = sphere(50, 6, 2), sphere(50, 24, 2)
    low = lid(query_distances(queries_low, blocks(sphere(40_000, 6, 1))).nearest)
    high = lid(query_distances(queries_high, blocks(sphere(40_000, 24, 1))).nearest)
    assert 3.5 < np.median(low) < 6.5, "a 5-sphere has local dimension 5"
    assert np.median(high) > 2 * np.median(low)


def test_relative_contrast_is_higher_where_the_dimension_is_lower():
    low = query_distances(sphere(50, 6, 2), blocks(sphere(20_000, 6, 1)))
    high = query_distances(sphere(50, 24, 2), blocks(sphere(20_000, 24, 1)))
    assert np.median(relative_contrast(low)) > np.median(relative_contrast(high)) > 1.0


def test_summary_reports_the_nearest_similarity_and_refuses_too_few_rows():
    data = sphere(3000, 10, 1)
    h = hardness(data[:20], blocks(data))
    assert h.nearest_similarity_median == pytest.approx(1.0, abs=1e-5), "each query is a row"
    with pytest.raises(ValueError, match="too few"):
        hardness(data[:5], [data[:50]])
