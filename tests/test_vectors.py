"""The committed vectors of the shipped corpus: they cover it exactly, and they are the model's."""

import numpy as np

from lib.core.corpus import load_items, load_passages
from lib.core.embeddings.registry import load_model
from lib.core.vectors import check, item_vectors


def test_committed_vectors_cover_the_whole_corpus_for_the_default_model():
    assert check("all-MiniLM-L6-v2") == 0


def test_committed_item_vectors_equal_a_fresh_embedding(tmp_path):
    from lib.core.embeddings.cache import EmbeddingCache

    model = load_model("all-MiniLM-L6-v2")
    items = [it for it in load_items() if it.kind == "text"][:12]
    committed = item_vectors(model, items, cache=EmbeddingCache(tmp_path / "c.sqlite"))
    fresh = model.embed([it.text for it in items], input_type="document")
    assert np.allclose(committed, fresh, atol=1e-4)


def test_passages_are_enough_for_the_later_pages():
    assert len(load_passages()) >= 5000
