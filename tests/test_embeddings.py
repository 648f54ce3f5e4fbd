"""The embedding interface, the local model, the on-disk cache and the model registry."""

import numpy as np
import pytest

from lib.core.embeddings.base import InvalidVector, checked_vectors
from lib.core.embeddings.cache import EmbeddingCache
from lib.core.embeddings.local import MINILM
from lib.core.embeddings.registry import default_model_name, load_model, model_choices


@pytest.fixture(scope="module")
def minilm():
    return load_model(MINILM.name)


def test_minilm_embeds_a_batch_into_unit_float32_vectors(minilm):
    v = minilm.embed(["a small cat", "tabby cat", "a red car"], input_type="query")
    assert v.shape == (3, 384) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    sims = v @ v.T
    assert sims[0, 1] > sims[0, 2], "two cats should be closer than a cat and a car"


def test_minilm_reports_what_it_truncates(minilm):
    assert minilm.truncated("a short text") is None
    long = " ".join(f"word{i}" for i in range(400))
    kept = minilm.truncated(long)
    assert kept is not None and len(kept) < len(long)
    assert long.startswith(kept.split()[0])


@pytest.mark.parametrize(
    "bad, why",
    [
        (np.ones((2, 3)), "dimensions"),
        (np.array([[np.nan] * 4]), "NaN"),
        (np.array([[np.inf] * 4]), "NaN"),
        (np.ones((2, 2, 4)), "2-D"),
    ],
)
def test_checked_vectors_rejects_unfit_vectors(bad, why):
    with pytest.raises(InvalidVector, match=why):
        checked_vectors(bad, 4)


def test_cache_round_trips_vectors_by_model_and_hash(tmp_path):
    cache = EmbeddingCache(tmp_path / "c.sqlite")
    v = np.random.default_rng(0).standard_normal((3, 8)).astype(np.float32)
    cache.put_many("m", ["a", "b", "c"], v)
    got = cache.get_many("m", 8, ["a", "c", "zz"])
    assert set(got) == {"a", "c"}
    assert np.array_equal(got["c"], v[2])
    assert cache.get_many("other-model", 8, ["a"]) == {}
    assert cache.get_many("m", 16, ["a"]) == {}, "another dimension is another vector"


def test_without_a_key_or_weights_only_minilm_is_offered(monkeypatch):
    monkeypatch.delenv("VOYAGE_API_KEY", raising=False)
    monkeypatch.setenv("PGVECTOR_LAB_CLIP_PATH", "/nonexistent")
    choices = {c.info.name: c for c in model_choices()}
    assert choices["all-MiniLM-L6-v2"].available
    assert not choices["clip-ViT-B-32"].available and "make clip" in choices["clip-ViT-B-32"].howto
    assert not choices["voyage-multimodal-3.5"].available
    assert default_model_name() == "all-MiniLM-L6-v2"


def test_a_voyage_key_makes_the_lessons_model_the_default(monkeypatch):
    monkeypatch.setenv("VOYAGE_API_KEY", "pa-test")
    choices = {c.info.name: c for c in model_choices()}
    assert choices["voyage-multimodal-3.5"].available
    assert default_model_name() == "voyage-multimodal-3.5"
