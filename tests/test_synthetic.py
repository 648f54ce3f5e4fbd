"""The generator behind the recall tables: fitted to the real passage vectors, seeded."""

import numpy as np
import pytest
from scipy.stats import ks_2samp

from lib import synthetic
from lib.dataset import load_dataset


@pytest.fixture(scope="module")
def ds():
    return load_dataset()


def test_generated_nearest_neighbour_similarities_are_distributed_like_the_real_ones(ds):
    real = ds.real
    generated = ds.generator.sample(len(real), (ds.seed, 10_000))
    real_nn = synthetic.nearest_similarities(real)
    gen_nn = synthetic.nearest_similarities(generated)
    assert ks_2samp(real_nn, gen_nn).statistic < 0.1
    for q in (5, 25, 50, 75, 95):
        assert abs(np.percentile(real_nn, q) - np.percentile(gen_nn, q)) < 0.03, q


def test_generated_vectors_are_finite_unit_vectors_of_the_model_dimension(ds):
    x = ds.generator.sample(1000, 1)
    assert x.shape == (1000, 384) and x.dtype == np.float32
    assert np.isfinite(x).all()
    assert np.allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)


def test_the_same_seed_draws_the_same_vectors_and_another_seed_others(ds):
    a = ds.generator.sample(50, (0, 3))
    assert np.array_equal(a, ds.generator.sample(50, (0, 3)))
    assert not np.allclose(a, ds.generator.sample(50, (0, 4)))


def test_real_rows_come_first_and_every_size_is_a_prefix_of_a_larger_one(ds):
    n_real = ds.n_real
    small = synthetic.dataset(ds.real, ds.generator, 500, seed=ds.seed)
    assert np.array_equal(small, ds.real[:500])
    big = synthetic.dataset(ds.real, ds.generator, n_real + 2 * synthetic.CHUNK + 7, seed=0)
    mid = synthetic.dataset(ds.real, ds.generator, n_real + synthetic.CHUNK + 3, seed=0)
    assert np.array_equal(big[: len(mid)], mid)
    assert np.array_equal(big[:n_real], ds.real)
    chunks = list(synthetic.rows(ds.real, ds.generator, len(big), seed=0, start=0))
    assert sum(len(c) for c in chunks) == len(big)


def test_queries_are_held_out_of_every_table(ds):
    q = {p.id for p in ds.query_passages}
    r = {p.id for p in ds.real_passages}
    assert len(q) == 100 and not q & r
    assert len(q) + len(r) == 6334


def test_a_saved_generator_loads_with_the_same_fingerprint(ds, tmp_path):
    path = tmp_path / "g.npz"
    ds.generator.save(path)
    assert synthetic.Generator.load(path).fingerprint() == ds.generator.fingerprint()
