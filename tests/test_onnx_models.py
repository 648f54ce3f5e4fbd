"""The offline ONNX models (paraphrase-MiniLM-L3-v2, all-MiniLM-L6-v2 int8): they embed with
the network blocked, into the 384-dimensional space of their own, and the cache never mixes
two models' vectors."""

import socket

import numpy as np
import pytest

from lib.core.embeddings import onnx_local
from lib.core.embeddings.cache import EmbeddingCache
from lib.core.embeddings.local import MINILM
from lib.core.embeddings.onnx_local import MINILM_INT8, MINILM_L3, mean_pool
from lib.core.embeddings.registry import default_model_name, load_model, model_choices
from lib.core.vectors import embed_with_cache

SENTENCES = [
    "A small cat sleeps on the sofa.",
    "The stock market fell sharply today.",
    "How do I create an index on a PostgreSQL table?",
    "I like pizza with mushrooms.",
    "Heavy rain is expected over the weekend.",
    "The train to Paris leaves at nine.",
]
# a paraphrase of each of the first three, none sharing its key words
PARAPHRASES = {
    "A little kitten is napping on the couch.": 0,
    "Share prices dropped steeply this afternoon.": 1,
    "Building an index for a Postgres relation": 2,
}


@pytest.fixture(scope="module")
def l3():
    return load_model(MINILM_L3.name)


@pytest.fixture(scope="module")
def minilm():
    return load_model(MINILM.name)


def test_both_onnx_models_are_offered_beside_minilm_which_stays_the_default(monkeypatch):
    monkeypatch.delenv("VOYAGE_API_KEY", raising=False)
    choices = {c.info.name: c for c in model_choices()}
    for info in (MINILM, MINILM_L3, MINILM_INT8):
        assert choices[info.name].available, choices[info.name].howto
    assert default_model_name() == MINILM.name
    for info in (MINILM_L3, MINILM_INT8):
        assert (info.dimension, info.modalities, info.normalized) == (384, {"text"}, True)


def test_paraphrase_l3_embeds_with_the_network_blocked(monkeypatch):
    import os

    assert os.environ.get("HF_HUB_OFFLINE") == "1"

    def refuse(*args, **kwargs):
        raise OSError("the network is blocked in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    model = load_model(MINILM_L3.name)  # a new object: its tokenizer and graph load now
    v = model.embed(SENTENCES, input_type="query")
    assert v.shape == (len(SENTENCES), 384) and v.dtype == np.float32
    assert np.isfinite(v).all()
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)


def test_the_graphs_output_461_is_the_mean_of_its_token_embeddings(l3):
    """What the package ships is the sentence-transformers model, Transformer then mean
    Pooling and no Normalize: 461 = ReduceSum(token embeddings × mask) / ReduceSum(mask)."""
    session, tokenizer = l3._load()
    encodings = tokenizer.encode_batch(SENTENCES)
    ids = np.array([e.ids for e in encodings], dtype=np.int64)
    mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
    assert (mask == 0).any(), "the batch has padding, so the mask matters"
    names = [o.name for o in session.get_outputs()]
    outputs = session.run(None, {"input_ids": ids, "attention_mask": mask})
    out = dict(zip(names, outputs, strict=True))
    tokens, pooled = out["onnx::Shape_422"], out["461"]
    assert tokens.shape == (*ids.shape, 384) and pooled.shape == (len(SENTENCES), 384)
    assert np.allclose(pooled, mean_pool(tokens, mask), atol=1e-5)
    norms = np.linalg.norm(pooled, axis=1)
    assert (norms > 2).all(), f"the original does not normalise ({norms}); the backend does"


def test_the_same_sentence_in_two_models_is_far_apart_though_both_have_384_dims(l3, minilm):
    a, b = l3.embed(SENTENCES), minilm.embed(SENTENCES)
    assert a.shape == b.shape
    cos = (a * b).sum(axis=1)
    print(f"cosine of the same sentence, {MINILM_L3.name} vs {MINILM.name}: {np.round(cos, 3)}")
    assert (cos < 0.5).all(), "different models, different spaces: no dimension error warns"


def test_paraphrase_l3_ranks_each_paraphrase_first(l3):
    docs = l3.embed(SENTENCES, input_type="document")
    for text, expected in PARAPHRASES.items():
        q = l3.embed([text], input_type="query")[0]
        sims = docs @ q
        print(f"{text!r}: {np.round(sims, 3)}")
        assert int(np.argmax(sims)) == expected
        assert sims[expected] - np.sort(sims)[-2] > 0.1, "first by a clear margin"


def test_int8_minilm_is_nearly_the_fp32_space(minilm):
    int8 = load_model(MINILM_INT8.name)
    cos = (int8.embed(SENTENCES) * minilm.embed(SENTENCES)).sum(axis=1)
    print(f"cosine of the same sentence, {MINILM_INT8.name} vs {MINILM.name}: {np.round(cos, 4)}")
    assert (cos > 0.99).all()


def test_paraphrase_l3_reports_what_it_truncates_at_128_tokens(l3):
    assert l3.truncated("a short text") is None
    long = " ".join(f"word{i}" for i in range(400))
    kept = l3.truncated(long)
    assert kept is not None and len(kept) < len(long) and long.startswith(kept.split()[0])
    # what it reads is what it embeds: the kept part gives the same vector as the whole text
    assert np.allclose(l3.embed([long]), l3.embed([kept]), atol=1e-5)


def test_a_short_text_embeds_alone_as_in_a_batch(l3):
    """Padding to the batch's longest text changes nothing (the mask hides it)."""
    alone = np.concatenate([l3.embed([s]) for s in SENTENCES])
    assert np.allclose(alone, l3.embed(SENTENCES), atol=1e-5)


def test_the_cache_keys_vectors_by_model_so_two_models_never_mix(tmp_path, l3, minilm):
    cache = EmbeddingCache(tmp_path / "c.sqlite")
    hashes = [f"h{i}" for i in range(len(SENTENCES))]

    def text(i):
        return SENTENCES[i]

    from_l3 = embed_with_cache(l3, hashes, text, cache=cache)
    from_minilm = embed_with_cache(minilm, hashes, text, cache=cache)  # same hashes, same dim
    assert np.allclose(from_minilm, minilm.embed(SENTENCES), atol=1e-5), "not l3's cached rows"
    got_l3 = cache.get_many(MINILM_L3.name, 384, hashes)
    got_minilm = cache.get_many(MINILM.name, 384, hashes)
    assert set(got_l3) == set(got_minilm) == set(hashes)
    for i, h in enumerate(hashes):
        assert np.array_equal(got_l3[h], from_l3[i])
        assert np.array_equal(got_minilm[h], from_minilm[i])
        assert float(got_l3[h] @ got_minilm[h]) < 0.5


def test_a_missing_package_makes_the_model_unavailable_with_the_fix(monkeypatch):
    monkeypatch.setattr(onnx_local, "_runtime_installed", lambda: False)
    choices = {c.info.name: c for c in model_choices()}
    for info in (MINILM_L3, MINILM_INT8):
        assert not choices[info.name].available
        assert "make install-runtime" in choices[info.name].howto
    assert choices[MINILM.name].available
