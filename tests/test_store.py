"""The corpus in Postgres, with the real default model, against a numpy brute force."""

import numpy as np
import pytest

from lib.core.corpus import load_items
from lib.core.embeddings.base import UnsupportedInput
from lib.core.embeddings.registry import load_model
from lib.core.store import corpus_table, ensure_corpus_table, nearest
from lib.core.vectors import embeddable, item_vectors


@pytest.fixture(scope="module")
def minilm():
    return load_model("all-MiniLM-L6-v2")


@pytest.fixture(scope="module")
def loaded(db, minilm):
    items = embeddable(minilm, load_items())
    vectors = item_vectors(minilm, items)
    table = ensure_corpus_table(db, minilm.info.name, items, vectors)
    return table, items, vectors


def test_text_only_model_skips_photos_and_refuses_images(minilm):
    items = load_items()
    kept = embeddable(minilm, items)
    assert all(it.kind == "text" for it in kept)
    assert len(kept) < len(items)
    photo = next(it for it in items if it.kind == "image")
    with pytest.raises(UnsupportedInput):
        minilm.embed([photo.load_image()])


def test_vectors_are_unit_length_float32(loaded):
    _, _, vectors = loaded
    assert vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)


def test_table_holds_every_embeddable_item_once(db, loaded):
    table, items, _ = loaded
    assert table == corpus_table("all-MiniLM-L6-v2")
    (count,) = db.fetchone(f"SELECT count(*) FROM {table}")
    assert count == len(items)


def test_reloading_the_same_corpus_does_not_rebuild(db, loaded, minilm):
    table, items, vectors = loaded
    (before,) = db.fetchone("SELECT built_at FROM lab_tables WHERE name = %s", (table,))
    ensure_corpus_table(db, minilm.info.name, items, vectors)
    (after,) = db.fetchone("SELECT built_at FROM lab_tables WHERE name = %s", (table,))
    assert before == after


def test_postgres_neighbours_equal_numpy_brute_force(db, loaded, minilm):
    table, items, vectors = loaded
    for text in ["a small cat", "a pickup truck", "index scan on a btree"]:
        q = minilm.embed([text], input_type="query")[0]
        got = nearest(db, table, q, k=10)
        dist = 1.0 - vectors @ q
        order = np.argsort(dist, kind="stable")[:10]
        assert [n.id for n in got] == [items[i].id for i in order]
        assert np.allclose([n.distance for n in got], dist[order], atol=1e-5)


def test_a_small_cat_finds_a_cat_first(db, loaded, minilm):
    table, _, _ = loaded
    q = minilm.embed(["a small cat"], input_type="query")[0]
    top = nearest(db, table, q, k=3)
    assert "cat" in top[0].content.lower()
