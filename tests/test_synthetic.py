"""The generator behind the recall tables, and the dataset it extends: real rows first (read
from the embedding cache), generated ones past them, held-out queries in no table.

On small slices: CI embeds a few thousand passages, never the whole corpus."""

import numpy as np
import pytest

from lib.dataset import synthetic
from lib.dataset.passages import N_QUERIES, load_dataset

FIT = 2000


@pytest.fixture(scope="module")
def ds():
    full = load_dataset()
    small = full.sliced(FIT)  # its generator is fitted to these 2,000 real rows
    small.embed(FIT + 1)
    return small


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
    assert n_real == FIT
    small = np.concatenate(list(ds.rows(500)))
    assert np.array_equal(small, ds.real[:500])
    big = np.concatenate(list(ds.rows(n_real + 2 * synthetic.CHUNK + 7)))
    mid = np.concatenate(list(ds.rows(n_real + synthetic.CHUNK + 3)))
    assert np.array_equal(big[: len(mid)], mid)
    assert np.array_equal(big[:n_real], np.asarray(ds.real))
    assert not np.array_equal(big[n_real : n_real + 5], big[:5])
    tail = np.concatenate(list(ds.rows(len(big), start=n_real + 100)))
    assert np.array_equal(tail, big[n_real + 100 :])


def test_real_rows_are_the_cached_vectors_of_their_passages_in_table_order(ds):
    from lib.core.embeddings.registry import load_model

    texts = [ds.passage_of(i).text for i in (1, 2, ds.n_real)]
    fresh = load_model(ds.model_name).embed(texts)
    rows = np.asarray(ds.real)[[0, 1, ds.n_real - 1]]
    assert np.allclose(rows, fresh, atol=1e-5)
    assert ds.passage_of(ds.n_real + 1) is None  # generated


def test_queries_are_held_out_of_every_table_and_say_where_they_come_from():
    full = load_dataset()
    q = {p.id for p in full.query_passages}
    assert len(q) == N_QUERIES
    assert not q & {full.passage_of(i).id for i in range(1, 5001)}
    assert len(full.hashes) == len(set(full.hashes)) == full.n_real + N_QUERIES
    sources = {p.source for p in full.query_passages}
    assert {"linux", "python"} <= sources  # a random sample of the corpus, across sources
    assert all(p.doc and p.where() for p in full.query_passages)


def test_a_saved_generator_loads_with_the_same_fingerprint(ds, tmp_path):
    path = tmp_path / "g.npz"
    ds.generator.save(path)
    assert synthetic.Generator.load(path).fingerprint() == ds.generator.fingerprint()
