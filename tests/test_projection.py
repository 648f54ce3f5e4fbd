"""The map's projection: PCA to two axes, and its inverse back into the model's space."""

import numpy as np
import pytest

from lib.core.embeddings.base import InvalidVector
from lib.lessons.space.projection import fit_projection


def clustered_unit_vectors(n_per: int = 20, dim: int = 64, seed: int = 0) -> np.ndarray:
    """Four clusters of unit vectors around random directions, like a small corpus."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(4, dim))
    vecs = np.concatenate([c + 0.35 * rng.normal(size=(n_per, dim)) for c in centres])
    return (vecs / np.linalg.norm(vecs, axis=1, keepdims=True)).astype(np.float32)


def test_transform_then_inverse_of_a_corpus_point_lands_near_it():
    vecs = clustered_unit_vectors()
    proj = fit_projection(vecs, normalize=True)
    back = proj.inverse(proj.transform(vecs))
    cos_self = np.sum(back * vecs, axis=1)
    cos_all = back @ vecs.T
    # Each reconstruction is closer to its own vector than to the typical corpus vector, and
    # its nearest corpus vector sits in the same cluster.
    assert (cos_self > np.median(cos_all, axis=1)).all()
    nearest = np.argmax(cos_all, axis=1)
    assert (nearest // 20 == np.arange(len(vecs)) // 20).all()


def test_inverse_then_transform_returns_the_map_position_exactly_without_normalizing():
    vecs = clustered_unit_vectors()
    proj = fit_projection(vecs, normalize=False)
    points = np.array([[0.1, -0.2], [0.0, 0.0], [-0.5, 0.3]])
    assert np.allclose(proj.transform(proj.inverse(points)), points, atol=1e-5)


def test_inverse_is_unit_length_when_the_models_vectors_are():
    proj = fit_projection(clustered_unit_vectors(), normalize=True)
    back = proj.inverse([[0.3, 0.4], [-1.0, 2.0]])
    assert back.dtype == np.float32 and back.shape == (2, 64)
    assert np.allclose(np.linalg.norm(back, axis=1), 1.0, atol=1e-5)


def test_variance_explained_is_a_fraction_largest_first_and_the_fit_is_deterministic():
    vecs = clustered_unit_vectors()
    a, b = fit_projection(vecs, normalize=True), fit_projection(vecs, normalize=True)
    assert 0 < a.explained[1] <= a.explained[0] < 1
    assert sum(a.explained) <= 1
    assert np.array_equal(a.transform(vecs), b.transform(vecs))


def test_bad_inputs_raise_before_any_math():
    proj = fit_projection(clustered_unit_vectors(), normalize=True)
    with pytest.raises(InvalidVector):
        proj.inverse([[np.nan, 0.0]])
    with pytest.raises(InvalidVector):
        proj.inverse([[1.0, 2.0, 3.0]])
    with pytest.raises(InvalidVector):
        proj.transform(np.ones((2, 3)))
    with pytest.raises(ValueError):
        fit_projection(clustered_unit_vectors()[:2], normalize=True)
