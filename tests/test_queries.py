"""Typed and uploaded queries: checked, then embedded; the image path with a fake image model."""

import io

import numpy as np
import pytest
from fake_models import ColourModel, solid

from lib.core.embeddings.local import MINILM
from lib.core.embeddings.registry import load_model
from lib.core.queries import (
    MAX_CHARS,
    QueryError,
    check_text,
    image_input,
    image_vector,
    text_vector,
)


def png(im) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def minilm():
    return load_model(MINILM.name)


@pytest.mark.parametrize("text", ["", "   ", "\n\t", None])
def test_an_empty_query_is_refused_with_a_message(text):
    with pytest.raises(QueryError, match="empty"):
        check_text(ColourModel(), text)


def test_a_huge_text_is_refused():
    with pytest.raises(QueryError, match="characters"):
        check_text(ColourModel(), "x" * (MAX_CHARS + 1))


def test_a_short_text_is_read_whole(minilm):
    q = check_text(minilm, "  a small cat ")
    assert q.text == "a small cat" and not q.truncated


def test_a_text_beyond_the_models_limit_says_what_the_model_read(minilm):
    long = " ".join(f"word{i}" for i in range(600))
    q = check_text(minilm, long)
    assert q.truncated
    assert long.startswith(q.read.split()[0]) and len(q.read) < len(long)
    assert "word590" not in q.read


def test_a_text_query_is_a_unit_vector_of_the_models_dimension(minilm):
    v = text_vector(minilm, "a small cat")
    assert v.shape == (384,) and abs(float(np.linalg.norm(v)) - 1) < 1e-5


def test_an_image_for_a_text_only_model_gets_the_text_only_message():
    text_only = ColourModel(modalities=("text",), name="text-only")
    with pytest.raises(QueryError, match="text-only embeds text only"):
        image_input(text_only, png(solid((255, 0, 0))), "cat.png")


def test_a_bad_file_is_named_as_such_even_under_a_text_only_model():
    text_only = ColourModel(modalities=("text",), name="text-only")
    with pytest.raises(QueryError, match="not an image"):
        image_input(text_only, b"hello, not a picture", "notes.png")


def test_an_image_model_embeds_an_upload_next_to_the_matching_words():
    model = ColourModel()
    image = image_input(model, png(solid((250, 10, 10))), "red.png")
    v = image_vector(model, image)
    words = model.embed(["a red apple", "green grass", "blue sky"], input_type="document")
    assert int(np.argmax(words @ v)) == 0


def test_a_query_the_evals_embedded_is_read_from_the_cache_and_typed_text_is_not_stored(
    minilm, monkeypatch, tmp_path
):
    """resources.query_vector: a labelled query's vector comes from the embedding cache (here
    one planted there, unlike the model's, so that its source shows); other text is embedded
    and the cache on disk is left as it was."""
    from lib.core.embeddings.cache import EmbeddingCache
    from lib.harness.evals import query_key
    from lib.ui import resources

    monkeypatch.setenv("EMBEDDING_CACHE_PATH", str(tmp_path / "cache.sqlite"))
    cache = EmbeddingCache(tmp_path / "cache.sqlite")
    planted = np.full(minilm.info.dimension, 0.05, dtype=np.float32)
    cache.put_many(minilm.info.name, [query_key("labelled text")], planted[None, :])
    got = resources.query_vector(minilm.info.name, "labelled text")
    assert np.array_equal(got, planted)
    typed = resources.query_vector(minilm.info.name, "typed by an attendee")
    assert np.allclose(typed, text_vector(minilm, "typed by an attendee"))
    key = query_key("typed by an attendee")
    assert cache.get_many(minilm.info.name, minilm.info.dimension, [key]) == {}
